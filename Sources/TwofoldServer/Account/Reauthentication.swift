import Fluent
import TwofoldCore
import Vapor

/// Every change to a user's security settings needs their current password, or a password
/// confirmed within the last five minutes.
struct Reauthentication {
    static let validity: TimeInterval = 5 * 60
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

    static func isFresh(_ session: CurrentSession, now: Date) -> Bool {
        guard let at = session.record.reauthenticatedAt else { return false }
        return now.timeIntervalSince(at) < validity
    }

    /// Passes when `password` is right (and restarts the five minutes) or, with no password, when the last confirmation is recent.
    func confirm(password: String?, session: CurrentSession) async throws {
        let now = request.now
        guard let password, !password.isEmpty else {
            if Self.isFresh(session, now: now) { return }
            throw Failure.passwordRequired
        }
        let throttle = ThrottleStore(database: request.db)
        let key = "password:user:\(session.user.usernameKey)"
        if let seconds = try await throttle.secondsBlocked(key, limit: ThrottleLimits.passwordPerAccount, now: now) {
            throw SignInError.passwordThrottled(retryAfter: seconds)
        }
        guard await request.verifyPassword(password, against: session.user.passwordHash) else {
            try await throttle.record(key, limit: ThrottleLimits.passwordPerAccount, now: now)
            try await request.audit(.reauthenticationFailed, practiceID: session.practiceID, actorID: session.userID)
            throw Failure.wrongPassword
        }
        session.record.reauthenticatedAt = now
        try await session.record.save(on: request.db)
    }
}
