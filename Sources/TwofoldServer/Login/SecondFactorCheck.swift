import Fluent
import TwofoldCore
import Vapor

/// The one second-factor check every channel uses — sign-in, turning 2FA off, `/api/v1/validate`, RADIUS, step-up
/// and EPCS signing — for typed codes (authenticator app, or a text-message code where it counts), passkey
/// assertions and push approvals. It normalises codes the same way everywhere, reserves the attempt on the channel's
/// counter *before* looking at the proof (so a parallel burst evaluates at most the limit), claims the
/// authenticator's time step (a code works once), and records the success or failure against the lockout policy.
/// Channels add only their own bookkeeping and answer.
struct SecondFactorCheck {
    let context: ServiceContext

    enum Outcome {
        /// The code matched this factor; its time step (or the text-message code) is used up.
        case accepted(Factor)
        /// An authenticator code whose time step was already used.
        case replayed(failures: Int)
        case wrong(failures: Int)
    }

    /// What a user may type: 6 to 8 digits; spaces and hyphens (as in "123 456" or "123-456") are ignored.
    static func normalize(_ raw: String) -> String? {
        let code = raw.filter { !$0.isWhitespace && $0 != "-" }
        guard (6...8).contains(code.count), code.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return code
    }

    /// Checks `code` (already normalised) against the user's authenticator apps in `factors`, then, when
    /// `smsFactor` is given, against the user's live text-message code.
    /// - Parameters:
    ///   - afterReserving: runs once the account's attempt is reserved and before the code is checked (the sign-in
    ///     reserves an attempt of the pending sign-in there, so that a request told to wait uses none).
    ///   - auditFailure: whether the lockout policy's failure event is written (channels that write one rejection
    ///     event of their own pass false).
    /// - Throws: ``SignInError`` when the channel is locked or must wait; the attempt is then not counted.
    func check(
        _ code: String, user: User, factors: [Factor], smsFactor: Factor?, channel: SecondFactorChannel,
        auditFailure: Bool = false, afterReserving: () async throws -> Void = {}
    ) async throws -> Outcome {
        let guardRail = SecondFactorGuard(context: context)
        let attempt = try await guardRail.reserve(user: user, channel: channel)
        try await afterReserving()
        let match = try await TOTPVerifier(database: context.database, sealer: context.sealer, now: context.now)
            .firstMatch(code, among: factors.filter { $0.kind == .totp })
        if case .accepted(let factor) = match {
            try await guardRail.recordSuccess(attempt, user: user, kind: "totp")
            return .accepted(factor)
        }
        if let smsFactor, try await SMSCodeService(context: context).redeem(code, userID: try user.requireID(), purpose: .signIn) != nil {
            try await guardRail.recordSuccess(attempt, user: user, kind: "sms")
            smsFactor.lastUsedAt = context.now
            try await smsFactor.save(on: context.database)
            return .accepted(smsFactor)
        }
        if case .replayed = match {
            try await guardRail.recordFailure(attempt, user: user, method: "totp", auditing: false)
            return .replayed(failures: attempt.failures)
        }
        let candidates = factors.filter { $0.kind == .totp } + (smsFactor.map { [$0] } ?? [])
        let method = candidates.count == 1 ? candidates[0].kind.rawValue : "code"
        try await guardRail.recordFailure(attempt, user: user, method: method, auditing: auditFailure)
        return .wrong(failures: attempt.failures)
    }

    /// A proof other than a typed code — a passkey assertion — judged under the same rules: the attempt is reserved on
    /// `channel` before `evaluate` looks at the proof, an accepted proof clears the channel's failures, and a refusal
    /// (an error for which `isRefusal` is true) stays counted and is audited as a failure of `method` before it is
    /// rethrown. Other errors (the database) are rethrown as they are.
    /// - Parameters:
    ///   - afterReserving: as for codes (the pending sign-in's own attempt).
    ///   - afterRefusal: runs after a refusal is recorded (the sign-in ends a pending sign-in at its limit there).
    /// - Throws: ``SignInError`` when the channel is locked or must wait, before `evaluate` runs.
    func check<Accepted>(
        proof method: String, user: User, channel: SecondFactorChannel, isRefusal: (any Error) -> Bool,
        afterReserving: () async throws -> Void = {}, afterRefusal: () async throws -> Void = {},
        evaluate: () async throws -> Accepted
    ) async throws -> Accepted {
        let guardRail = SecondFactorGuard(context: context)
        let attempt = try await guardRail.reserve(user: user, channel: channel)
        try await afterReserving()
        let accepted: Accepted
        do {
            accepted = try await evaluate()
        } catch where isRefusal(error) {
            try await guardRail.recordFailure(attempt, user: user, method: method)
            try await afterRefusal()
            throw error
        }
        try await guardRail.recordSuccess(attempt, user: user, kind: method)
        return accepted
    }

    /// A proof that takes no guess — a push request approved on the user's device, bounded by the push limits —
    /// spent by `claim` (true for exactly one caller); an accepted one clears the sign-in channel's failures.
    func checkApproval(method: String, user: User, claim: () async throws -> Bool) async throws -> Bool {
        guard try await claim() else { return false }
        try await SecondFactorGuard(context: context).recordSuccess(user: user, kind: method)
        return true
    }
}
