import Fluent
import Foundation
import NIOConcurrencyHelpers
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// The second-factor rules called directly, without HTTP: each test builds the ``ServiceContext`` it needs — its own
/// moment, its own policy, its own randomness — and hands it to ``SecondFactorCheck`` and ``SMSCodeService``.
@Suite("Second-factor rules with an injected clock, policy and randomness")
struct VerificationRuleTests {
    private static let start = Date(timeIntervalSince1970: 1_900_000_600)

    /// A practice, a user and one authenticator app whose key the test knows.
    private func setUp(_ ctx: TestContext) async throws -> (User, Practice, Factor, OTPSecret) {
        let practice = try await Fixtures.practice(ctx)
        let user = try await Fixtures.user(ctx, practice: practice)
        let secret = OTPSecret(bytes: Array(0..<20))
        let factor = Factor(userID: try user.requireID(), kind: .totp, nickname: "Phone")
        factor.status = .active
        factor.sealedSecret = Data(
            try ctx.app.twofold.sealer.seal(secret.bytes, context: TOTPVerifier.sealingContext(for: try factor.requireID())))
        try await factor.create(on: ctx.app.db)
        return (user, practice, factor, secret)
    }

    private func context(_ ctx: TestContext, at now: Date, policy: TwofoldPolicy = .standard, random: RandomSource = .system)
        -> ServiceContext
    {
        var context = ctx.app.serviceContext(ip: "192.0.2.7", userAgent: "rule test").at(now)
        context.policy = policy
        context.random = random
        return context
    }

    /// A fresh copy of the user, as a real caller reads it.
    private func reload(_ user: User, _ ctx: TestContext) async throws -> User {
        try #require(try await User.find(user.requireID(), on: ctx.app.db))
    }

    private func code(_ secret: OTPSecret, at date: Date) throws -> String {
        TOTP(secret: secret, parameters: try OTPParameters(digits: 6)).code(at: date)
    }

    @Test func aCodeIsCheckedAtTheContextsMomentNotTheWallClock() async throws {
        try await withTestApp { ctx in
            let (user, _, factor, secret) = try await setUp(ctx)
            let check = SecondFactorCheck(context: context(ctx, at: Self.start))
            let outcome = try await check.check(
                try code(secret, at: Self.start), user: try await reload(user, ctx), factors: [factor], smsFactor: nil, channel: .stepUp)
            guard case .accepted = outcome else {
                Issue.record("the code of the context's moment was refused: \(outcome)")
                return
            }
            // A code of an hour later is wrong at this moment, and counted.
            let later = try await check.check(
                try code(secret, at: Self.start.addingTimeInterval(3600)), user: try await reload(user, ctx), factors: [factor],
                smsFactor: nil, channel: .stepUp)
            guard case .wrong(let failures) = later else {
                Issue.record("a code of another hour was not refused: \(later)")
                return
            }
            #expect(failures == 1)
        }
    }

    @Test func aStricterInjectedPolicyLocksSooner() async throws {
        var policy = TwofoldPolicy.standard
        policy.lockout = SecondFactorLockoutPolicy(
            freeAttempts: 1, maximumDelay: 5, lockEvery: 3, lockDuration: 600, permanentLockAt: 9, pendingSignInLimit: 10)
        try await withTestApp { ctx in
            let (user, _, factor, _) = try await setUp(ctx)
            let channel = SecondFactorChannel.validate(apiKeyID: UUID())
            var now = Self.start
            for expected in 1...3 {
                let outcome = try await SecondFactorCheck(context: context(ctx, at: now, policy: policy)).check(
                    "000000", user: try await reload(user, ctx), factors: [factor], smsFactor: nil, channel: channel)
                guard case .wrong(let failures) = outcome else {
                    Issue.record("guess \(expected) was not counted as wrong: \(outcome)")
                    return
                }
                #expect(failures == expected)
                now += 120
            }
            // The third failure started the policy's 10-minute lock, and the log says so.
            let locks = try await AuditEvent.query(on: ctx.app.db).filter(\.$event == AuditEventType.secondFactorLocked.rawValue).all()
            #expect(locks.count == 1)
            #expect(locks.first?.details.contains("\"minutes\":\"10\"") == true)
            let locked = context(ctx, at: now, policy: policy)
            await #expect(throws: SignInError.self) {
                _ = try await SecondFactorCheck(context: locked).check(
                    "000000", user: try await reload(user, ctx), factors: [factor], smsFactor: nil, channel: channel)
            }
            // Once the injected lock has passed, the channel checks codes again.
            let after = try await SecondFactorCheck(context: context(ctx, at: now + 601, policy: policy)).check(
                "000000", user: try await reload(user, ctx), factors: [factor], smsFactor: nil, channel: channel)
            guard case .wrong(4) = after else {
                Issue.record("the channel stayed locked past the policy's lock: \(after)")
                return
            }
        }
    }

    @Test func aParallelBurstEvaluatesNoMoreGuessesThanTheInjectedPolicyAllows() async throws {
        var policy = TwofoldPolicy.standard
        policy.lockout.freeAttempts = 3
        try await withTestApp { ctx in
            let (user, _, factor, _) = try await setUp(ctx)
            let context = context(ctx, at: Self.start, policy: policy)
            let evaluated = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<10 {
                    group.addTask {
                        let fresh = try #require(try await User.find(user.requireID(), on: ctx.app.db))
                        do {
                            _ = try await SecondFactorCheck(context: context).check(
                                "000000", user: fresh, factors: [factor], smsFactor: nil, channel: .stepUp)
                            return true
                        } catch is SignInError {
                            return false
                        }
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(evaluated == 3)
        }
    }

    @Test func injectedRandomnessAndLifetimeDecideTheTextMessageCode() async throws {
        var policy = TwofoldPolicy.standard
        policy.sms.codeLifetime = 3 * 60
        let sevens = RandomSource { count in Array(repeating: 7, count: count) }
        try await withTestApp { ctx in
            let (user, practice, _, _) = try await setUp(ctx)
            let userID = try user.requireID()
            try await SMSCodeService(context: context(ctx, at: Self.start, policy: policy, random: sevens)).send(
                to: "+15551234567", user: user, practice: practice, purpose: .signIn, factorID: nil)
            let message = try #require(try await OutboxMessage.query(on: ctx.app.db).first())
            #expect(message.body.hasPrefix("777777 is your"))
            #expect(message.body.contains("expires in 3 minutes"))
            // Past the injected lifetime the code is gone; within it, it works once.
            let late = SMSCodeService(context: context(ctx, at: Self.start.addingTimeInterval(181), policy: policy))
            #expect(try await late.redeem("777777", userID: userID, purpose: .signIn) == nil)
            let inTime = SMSCodeService(context: context(ctx, at: Self.start.addingTimeInterval(179), policy: policy))
            #expect(try await inTime.redeem("777777", userID: userID, purpose: .signIn) != nil)
            #expect(try await inTime.redeem("777777", userID: userID, purpose: .signIn) == nil)
        }
    }

    @Test func randomDigitsAreUniformAndSkipBiasedBytes() {
        // 250…255 would favour 0…5; they are drawn again.
        let counter = NIOLockedValueBox<[UInt8]>([255, 250, 3, 251, 9, 12])
        let source = RandomSource { count in
            counter.withLockedValue { bytes in
                let taken = Array(bytes.prefix(count))
                bytes.removeFirst(min(count, bytes.count))
                return taken + Array(repeating: 0, count: count - taken.count)
            }
        }
        #expect(source.digits(3) == "392")
    }
}
