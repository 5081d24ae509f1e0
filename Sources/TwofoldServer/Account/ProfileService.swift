import Fluent
import TwofoldCore
import Vapor

/// Changes to a user's own profile and password.
struct ProfileService {
    let request: Request

    static func validEmail(_ input: String) -> String? {
        let email = input.trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard email.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !email.contains(where: \.isWhitespace) else { return nil }
        return email
    }

    func update(session: CurrentSession, email: String, cellPhone: String) async throws {
        guard let email = Self.validEmail(email) else { throw Abort(.badRequest, reason: "Enter a valid email address, like name@example.org.") }
        let trimmedPhone = cellPhone.trimmingCharacters(in: .whitespacesAndNewlines)
        var phone: String?
        if !trimmedPhone.isEmpty {
            guard let normalized = SMSCodeService.normalizedPhone(trimmedPhone) else {
                throw Abort(.badRequest, reason: "Enter the cell phone number with 7 to 15 digits, for example +1 555 123 4567.")
            }
            phone = normalized
        }
        let user = session.user
        var changed: [String] = []
        if user.email != email { changed.append("email") }
        if user.cellPhone != phone { changed.append("cell_phone") }
        user.email = email
        user.cellPhone = phone
        try await user.save(on: request.db)
        if !changed.isEmpty {
            try await request.audit(.profileUpdated, practiceID: session.practiceID, actorID: session.userID, details: ["changed": changed.joined(separator: ",")])
        }
    }

    /// Sets a new password, ends every other session and forgets every remembered browser.
    /// - Returns: a fresh token for the current session.
    func changePassword(session: CurrentSession, current: String, new: String, confirmation: String) async throws -> String {
        guard await request.verifyPassword(current, against: session.user.passwordHash) else {
            try await request.audit(.reauthenticationFailed, practiceID: session.practiceID, actorID: session.userID)
            throw Reauthentication.Failure.wrongPassword
        }
        guard new == confirmation else { throw Abort(.badRequest, reason: "The two new passwords do not match.") }
        let hash = try await request.hashPassword(new)
        let token = SecureRandom.token()
        let userID = session.userID
        try await request.db.transaction { db in
            session.user.passwordHash = hash
            session.user.mustChangePassword = false
            try await session.user.save(on: db)
            try await SessionRecord.query(on: db).filter(\.$user.$id == userID).filter(\.$id != session.record.id!).delete()
            try await RememberedBrowser.query(on: db).filter(\.$user.$id == userID).delete()
            session.record.tokenHash = TwofoldCore.Digest.sha256Hex(token)
            session.record.reauthenticatedAt = request.now
            try await session.record.save(on: db)
            try await request.audit(.passwordChanged, practiceID: session.practiceID, actorID: userID, on: db)
        }
        return token
    }

    /// Forgets one of the user's remembered browsers; it will be asked for a code again.
    func revokeRememberedBrowser(id: UUID, session: CurrentSession) async throws {
        guard let browser = try await RememberedBrowser.query(on: request.db).filter(\.$id == id).filter(\.$user.$id == session.userID).first() else {
            throw Abort(.notFound, reason: "That browser is not remembered for your account.")
        }
        try await browser.delete(on: request.db)
        try await request.audit(.rememberedBrowserRevoked, practiceID: session.practiceID, actorID: session.userID, details: ["browser": browser.userAgent])
    }
}
