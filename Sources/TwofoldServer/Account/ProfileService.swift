import Fluent
import TwofoldCore
import Vapor

/// Changes to a user's own profile and password.
struct ProfileService {
    let context: ServiceContext

    static func validEmail(_ input: String) -> String? {
        let email = input.trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard email.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !email.contains(where: \.isWhitespace) else {
            return nil
        }
        return email
    }

    /// Saves the cell phone and, when the address changed, sends the new one a confirmation link (the address in use
    /// stays until it is confirmed).
    /// - Parameter verification: writes and queues that link (``Vapor/Request/emailVerification``).
    /// - Returns: whether a confirmation link was sent.
    @discardableResult
    func update(session: CurrentSession, email: String, cellPhone: String, verification: EmailVerification) async throws -> Bool {
        guard let email = Self.validEmail(email) else {
            throw Abort(.badRequest, reason: "Enter a valid email address, like name@example.org.")
        }
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
        // A new address is used only once its owner opens the link sent to it (typing the pending one again resends it).
        let newAddress = email.lowercased() != user.email.lowercased() ? email : nil
        if newAddress != nil { changed.append("pending_email") }
        if user.cellPhone != phone { changed.append("cell_phone") }
        user.cellPhone = phone
        let changedFields = changed.joined(separator: ",")
        try await context.database.transaction { db in
            try await user.save(on: db)
            if let newAddress {
                try await verification.requestChange(of: user, to: newAddress, administrator: nil, on: db)
            }
            if !changedFields.isEmpty {
                try await context.on(db).audit(
                    .profileUpdated, practiceID: session.practiceID, actorID: session.userID, details: ["changed": changedFields])
            }
        }
        return newAddress != nil
    }

    /// Wrong current passwords on the change-password form: the same budget as sign-in's per account (10 per 15 minutes).
    static func passwordChangeBucket(userID: UUID) -> String { "password-change:user:\(userID.uuidString.lowercased())" }

    /// Sets a new password, ends every other session and forgets every remembered browser.
    /// The current password is checked only after an attempt was reserved (so parallel guesses from a stolen session
    /// can never test more than the limit); the right one gives its reservation back.
    /// - Returns: a fresh token for the current session.
    func changePassword(session: CurrentSession, current: String, new: String, confirmation: String) async throws -> String {
        let throttle = ThrottleStore(database: context.database)
        let bucket = Self.passwordChangeBucket(userID: session.userID)
        let limit = context.policy.signIn.passwordPerAccount
        if case .blocked(let seconds) = try await throttle.reserve(bucket, limit: limit, now: context.now) {
            try await context.audit(
                .passwordChangeThrottled, practiceID: session.practiceID, actorID: session.userID, details: ["retry_after": String(seconds)]
            )
            throw PasswordChangeError.throttled(retryAfter: seconds)
        }
        guard await context.passwords.verify(current, against: session.user.passwordHash) else {
            try await context.audit(
                .passwordChangeFailed, practiceID: session.practiceID, actorID: session.userID,
                details: ["reason": "wrong_current_password"])
            throw Reauthentication.Failure.wrongPassword
        }
        try await throttle.release(bucket, limit: limit, now: context.now)
        guard new == confirmation else { throw Abort(.badRequest, reason: "The two new passwords do not match.") }
        let rules = try await PasswordRules.context(for: session.user, on: context.database)
        let hash = try await context.passwords.hash(new, context: rules)
        let meetsSingleFactorMinimum = PasswordRules.meetsSingleFactorMinimum(
            new, username: rules.username, practiceName: rules.practiceName)
        let token = context.random.token()
        let userID = session.userID
        try await context.database.transaction { db in
            session.user.passwordHash = hash
            session.user.passwordMeetsSingleFactorMinimum = meetsSingleFactorMinimum
            session.user.mustChangePassword = false
            try await session.user.save(on: db)
            try await SessionRecord.query(on: db).filter(\.$user.$id == userID).filter(\.$id != session.record.requireID()).delete()
            try await RememberedBrowser.query(on: db).filter(\.$user.$id == userID).delete()
            session.record.tokenHash = TwofoldCore.Digest.sha256Hex(token)
            session.record.reauthenticatedAt = context.now
            try await session.record.save(on: db)
            try await context.on(db).audit(.passwordChanged, practiceID: session.practiceID, actorID: userID)
        }
        return token
    }

    /// The answer for an id that names none of the user's remembered browsers.
    static let browserNotFound = Abort(.notFound, reason: "That browser is not remembered for your account.")

    /// Forgets one of the user's remembered browsers; it will be asked for a code again.
    func revokeRememberedBrowser(id: UUID, session: CurrentSession) async throws {
        guard
            let browser = try await RememberedBrowser.query(on: context.database).filter(\.$id == id).filter(\.$user.$id == session.userID)
                .first()
        else {
            throw Self.browserNotFound
        }
        try await browser.delete(on: context.database)
        try await context.audit(
            .rememberedBrowserRevoked, practiceID: session.practiceID, actorID: session.userID, details: ["browser": browser.userAgent])
    }
}

enum PasswordChangeError: AbortError, Equatable {
    case throttled(retryAfter: Int)

    var status: HTTPResponseStatus { .tooManyRequests }

    var reason: String {
        switch self {
        case .throttled(let seconds):
            "Too many wrong current passwords. For your security, password changes are paused; "
                + "try again in \(SignInError.duration(seconds))."
        }
    }

    var headers: HTTPHeaders {
        switch self {
        case .throttled(let seconds): ["Retry-After": String(seconds)]
        }
    }
}
