import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// The same cases against every channel that checks typed codes: sign-in, validate, RADIUS and step-up all go
/// through ``SecondFactorCheck``.
@Suite("One code check for every channel")
struct SecondFactorCheckTests {
    enum Channel: String, CaseIterable, Sendable {
        case signIn, validate, radius, stepUp

        func value() -> SecondFactorChannel {
            switch self {
            case .signIn: .signIn
            case .validate: .validate(apiKeyID: UUID(uuidString: "00000000-0000-0000-0000-0000000000a1")!)
            case .radius: .radius(clientID: UUID(uuidString: "00000000-0000-0000-0000-0000000000b2")!)
            case .stepUp: .stepUp
            }
        }
    }

    private func setUp(_ ctx: TestContext) async throws -> (User, [Factor], String) {
        let practice = try await Fixtures.practice(ctx)
        _ = try await Fixtures.user(ctx, practice: practice)
        let enrolled = try await Flows.enrollTOTP(ctx)
        ctx.clock.advance(30)
        let user = try #require(try await User.query(on: ctx.app.db).filter(\.$username == "dr.smith").first())
        let factors = try await Factor.query(on: ctx.app.db).filter(\.$user.$id == user.id!).filter(\.$status == .active).all()
        return (user, factors, enrolled.secret)
    }

    private func check(_ ctx: TestContext, _ code: String, user: User, factors: [Factor], channel: Channel) async throws
        -> SecondFactorCheck.Outcome
    {
        // A fresh copy of the user: the counters are read from the database, as on a real request.
        let fresh = try #require(try await User.find(user.id, on: ctx.app.db))
        return try await SecondFactorCheck(context: ctx.app.serviceContext(ip: "192.0.2.1", userAgent: "test")).check(
            code, user: fresh, factors: factors, smsFactor: nil, channel: channel.value())
    }

    @Test func inputIsNormalisedTheSameWayEverywhere() {
        #expect(SecondFactorCheck.normalize("123 456") == "123456")
        #expect(SecondFactorCheck.normalize(" 123-456 ") == "123456")
        #expect(SecondFactorCheck.normalize("12345678") == "12345678")
        #expect(SecondFactorCheck.normalize("12345") == nil)
        #expect(SecondFactorCheck.normalize("123456789") == nil)
        #expect(SecondFactorCheck.normalize("12345a") == nil)
        #expect(SecondFactorCheck.normalize("１２３４５６") == nil)
    }

    @Test(arguments: Channel.allCases)
    func aCodeWorksOnceAndAWrongOneCounts(channel: Channel) async throws {
        try await withTestApp { ctx in
            let (user, factors, secret) = try await setUp(ctx)
            let code = try Fixtures.code(secret, at: ctx.clock.now)
            guard case .accepted = try await check(ctx, code, user: user, factors: factors, channel: channel) else {
                Issue.record("the current code was not accepted on \(channel)")
                return
            }
            guard case .replayed = try await check(ctx, code, user: user, factors: factors, channel: channel) else {
                Issue.record("a used code was not refused as a replay on \(channel)")
                return
            }
            ctx.clock.advance(61)
            guard case .wrong(let failures) = try await check(ctx, "000000", user: user, factors: factors, channel: channel) else {
                Issue.record("a wrong code was not refused on \(channel)")
                return
            }
            #expect(failures >= 1)
        }
    }

    @Test(arguments: Channel.allCases)
    func aParallelBurstOfOneCodeLetsExactlyOneThrough(channel: Channel) async throws {
        try await withTestApp { ctx in
            let (user, factors, secret) = try await setUp(ctx)
            let code = try Fixtures.code(secret, at: ctx.clock.now)
            let accepted = try await withThrowingTaskGroup(of: Bool.self) { group in
                for _ in 0..<12 {
                    group.addTask {
                        do {
                            if case .accepted = try await check(ctx, code, user: user, factors: factors, channel: channel) { return true }
                        } catch is SignInError {
                            // told to wait: the burst went past what the channel allows at once
                        }
                        return false
                    }
                }
                return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            #expect(accepted == 1)
        }
    }

    @Test(arguments: Channel.allCases)
    func guessesStopAtTheLockoutAndStayOnTheirChannel(channel: Channel) async throws {
        try await withTestApp { ctx in
            let (user, factors, secret) = try await setUp(ctx)
            var refusedToCheck = false
            for _ in 0..<12 {
                do {
                    _ = try await check(ctx, "000000", user: user, factors: factors, channel: channel)
                } catch is SignInError {
                    refusedToCheck = true
                    break
                }
            }
            // Back-to-back guesses are stopped before the twelfth: the policy makes the caller wait.
            #expect(refusedToCheck)
            if channel != .signIn {
                // Another channel's guesses leave the web sign-in alone.
                ctx.clock.advance(31)
                let code = try Fixtures.code(secret, at: ctx.clock.now)
                guard case .accepted = try await check(ctx, code, user: user, factors: factors, channel: .signIn) else {
                    Issue.record("guesses on \(channel) locked the sign-in")
                    return
                }
            }
        }
    }
}
