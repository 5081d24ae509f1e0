import Fluent
import TwofoldCore
import Vapor

/// Every change to a user's security settings needs their current password, or a password
/// confirmed within ``TwofoldPolicy/Reauthentication/validity``.
struct Reauthentication {
    let context: ServiceContext

    enum Failure: AbortError {
        case passwordRequired
        case wrongPassword

        var status: HTTPResponseStatus { self == .passwordRequired ? .unauthorized : .forbidden }
        var reason: String {
            switch self {
            case .passwordRequired: "Enter your current password to confirm this change."
            case .wrongPassword: "Your current password is not correct."
            }
        }
    }

    /// Whether the session's user confirmed their password less than the policy's validity before `now`.
    static func isFresh(_ session: CurrentSession, at now: Date, policy: TwofoldPolicy) -> Bool {
        guard let at = session.record.reauthenticatedAt else { return false }
        return now.timeIntervalSince(at) < policy.reauthentication.validity
    }

    /// Passes when `password` is right (and restarts the validity) or, with no password, when the last confirmation is recent.
    func confirm(password: String?, session: CurrentSession) async throws {
        let now = context.now
        guard let password, !password.isEmpty else {
            if Self.isFresh(session, at: now, policy: context.policy) { return }
            throw Failure.passwordRequired
        }
        // Guesses from a signed-in session have their own allowance per user (a hijacked session cannot lock the
        // owner's sign-in), reserved before bcrypt runs and given back when the password is right.
        let throttle = ThrottleStore(database: context.database)
        let key = "reauth:user:\(try session.user.requireID().uuidString.lowercased())"
        if let seconds = try await throttle.reserve(key, limit: context.policy.signIn.passwordPerAccount, now: now).retryAfter {
            try await context.audit(
                .signInThrottled, practiceID: session.practiceID, actorID: session.userID, details: ["reason": "reauthentication"])
            throw SignInError.passwordThrottled(retryAfter: seconds)
        }
        guard await context.passwords.verify(password, against: session.user.passwordHash) else {
            try await context.audit(.reauthenticationFailed, practiceID: session.practiceID, actorID: session.userID)
            throw Failure.wrongPassword
        }
        try await throttle.release(key, limit: context.policy.signIn.passwordPerAccount, now: now)
        session.record.reauthenticatedAt = now
        try await session.record.save(on: context.database)
    }
}
