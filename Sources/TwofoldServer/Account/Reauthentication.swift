import Fluent
import TwofoldCore
import Vapor

/// Every change to a user's security settings needs their current password, or a password
/// confirmed within ``TwofoldPolicy/Reauthentication/validity``.
struct Reauthentication {
    let request: Request

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

    static func isFresh(_ session: CurrentSession, in request: Request) -> Bool {
        guard let at = session.record.reauthenticatedAt else { return false }
        return request.now.timeIntervalSince(at) < request.policy.reauthentication.validity
    }

    /// Passes when `password` is right (and restarts the validity) or, with no password, when the last confirmation is recent.
    func confirm(password: String?, session: CurrentSession) async throws {
        let now = request.now
        guard let password, !password.isEmpty else {
            if Self.isFresh(session, in: request) { return }
            throw Failure.passwordRequired
        }
        // Guesses from a signed-in session have their own allowance per user (a hijacked session cannot lock the
        // owner's sign-in), reserved before bcrypt runs and given back when the password is right.
        let throttle = ThrottleStore(database: request.db)
        let key = "reauth:user:\(try session.user.requireID().uuidString.lowercased())"
        if let seconds = try await throttle.reserve(key, limit: request.policy.signIn.passwordPerAccount, now: now).retryAfter {
            try await request.audit(
                .signInThrottled, practiceID: session.practiceID, actorID: session.userID, details: ["reason": "reauthentication"])
            throw SignInError.passwordThrottled(retryAfter: seconds)
        }
        guard await request.verifyPassword(password, against: session.user.passwordHash) else {
            try await request.audit(.reauthenticationFailed, practiceID: session.practiceID, actorID: session.userID)
            throw Failure.wrongPassword
        }
        try await throttle.release(key, limit: request.policy.signIn.passwordPerAccount, now: now)
        session.record.reauthenticatedAt = now
        try await session.record.save(on: request.db)
    }
}
