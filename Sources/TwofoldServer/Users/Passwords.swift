import Vapor

/// Password rules shared by every place a password is set or checked.
enum PasswordRules {
    static let minimumLength = 8
    /// bcrypt reads only the first 72 bytes; longer passwords are refused rather than silently truncated.
    static let maximumBytes = 72

    /// The reason a new password is unacceptable, or nil when it is fine.
    static func problem(with password: String) -> String? {
        if password.count < minimumLength { return "Choose a password of at least \(minimumLength) characters." }
        if password.utf8.count > maximumBytes { return "Choose a password of at most \(maximumBytes) bytes (bcrypt ignores anything longer)." }
        return nil
    }
}

extension Request {
    /// Checks a password off the event loop; never true for passwords bcrypt would truncate.
    func verifyPassword(_ password: String, against hash: String?) async -> Bool {
        guard password.utf8.count <= PasswordRules.maximumBytes else { return false }
        do {
            return try await passwordHasher.verify(password, created: hash ?? twofold.decoyPasswordHash)
        } catch {
            return false
        }
    }

    func hashPassword(_ password: String) async throws -> String {
        if let problem = PasswordRules.problem(with: password) { throw Abort(.badRequest, reason: problem) }
        return try await passwordHasher.hash(password)
    }
}
