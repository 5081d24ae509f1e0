import Fluent
import SQLKit
import TwofoldCore
import Vapor

/// What a practice administrator does to staff accounts and practice settings; shared by the pages and the API.
struct AdminService {
    let request: Request
    let admin: CurrentSession

    init(request: Request, admin: CurrentSession) throws {
        guard admin.user.has(.manageAccounts) else { throw AdminError.notAllowed }
        self.request = request
        self.admin = admin
    }

    var directory: StaffDirectory { StaffDirectory(database: request.db, practice: admin.practice) }

    /// Every administrative change is confirmed with the administrator's own password, each time.
    func confirmAdminPassword(_ password: String?) async throws {
        guard let password, !password.isEmpty else { throw Reauthentication.Failure.passwordRequired }
        try await Reauthentication(request: request).confirm(password: password, session: admin)
    }

    // MARK: two-factor authentication for a staff member

    /// Requires 2FA of a staff member: at their next sign-in they must enroll before anything else.
    func requireTwoFactor(of userID: UUID, adminPassword: String?) async throws -> User {
        let user = try await directory.user(userID)
        guard let cell = user.cellPhone, !cell.isEmpty else { throw AdminError.noCellPhone(name: user.fullName) }
        try await confirmAdminPassword(adminPassword)
        user.twoFactorRequired = true
        try await user.save(on: request.db)
        try await request.audit(.adminTwoFactorRequired, practiceID: admin.practiceID, actorID: admin.userID, subjectID: user.id,
                                details: ["username": user.username, "email": user.email, "cell": SMSCodeService.maskedPhone(cell)])
        return user
    }

    /// The lost-phone path: removes the user's factors, recovery codes and remembered browsers and signs them out everywhere.
    func disableTwoFactor(of userID: UUID, adminPassword: String?) async throws -> User {
        let user = try await directory.user(userID)
        guard user.id != admin.userID else { throw AdminError.ownTwoFactor }
        try await confirmAdminPassword(adminPassword)
        let removed = try await Factor.query(on: request.db).filter(\.$user.$id == userID).count()
        try await request.db.transaction { db in
            try await Factor.query(on: db).filter(\.$user.$id == userID).delete()
            try await TwoFactorReset.clearSecondaryState(userID: userID, on: db)
            try await SessionRecord.query(on: db).filter(\.$user.$id == userID).delete()
            try await SecondFactorGuard.clearAll(userID: userID, on: db)
            try await request.audit(.adminTwoFactorDisabled, practiceID: admin.practiceID, actorID: admin.userID, subjectID: userID,
                                    details: ["username": user.username, "factors_removed": String(removed)], on: db)
        }
        return user
    }

    // MARK: staff accounts

    struct StaffInput {
        var username: String
        var firstName: String
        var lastName: String
        var email: String
        var cellPhone: String?
        var role: User.Role
        var manageAccounts: Bool
        var primaryProviderID: UUID?
    }

    func createStaff(_ input: StaffInput, temporaryPassword: String, adminPassword: String?) async throws -> User {
        try await confirmAdminPassword(adminPassword)
        let provider = try await validProvider(input.primaryProviderID)
        let user = try await AccountProvisioning(database: request.db, passwords: request.passwordHasher, now: request.now).createUser(.init(
            practiceID: admin.practiceID, username: input.username, firstName: input.firstName, lastName: input.lastName, email: input.email,
            cellPhone: input.cellPhone, role: input.role, permissions: input.manageAccounts ? [.manageAccounts] : [], password: temporaryPassword),
            actorID: admin.userID)
        user.mustChangePassword = true
        user.primaryProviderID = provider
        try await user.save(on: request.db)
        return user
    }

    /// Creates a staff account without a usable password and emails them an invitation to choose one, in one
    /// transaction: there is never an invited account without its message, nor a message without its account.
    func inviteStaff(_ input: StaffInput, adminPassword: String?) async throws -> (User, Invitation) {
        try await confirmAdminPassword(adminPassword)
        let provider = try await validProvider(input.primaryProviderID)
        let invitations = InvitationService(request: request)
        let (request, admin) = (self.request, self.admin)
        return try await request.db.transaction { db in
            let user = try await AccountProvisioning(database: db, passwords: request.passwordHasher, now: request.now).createUser(.init(
                practiceID: admin.practiceID, username: input.username, firstName: input.firstName, lastName: input.lastName, email: input.email,
                cellPhone: input.cellPhone, role: input.role, permissions: input.manageAccounts ? [.manageAccounts] : [], password: nil),
                actorID: admin.userID)
            user.primaryProviderID = provider
            try await user.save(on: db)
            let invitation = try await invitations.send(to: user, practice: admin.practice, invitedBy: admin.user, on: db)
            return (user, invitation)
        }
    }

    /// Sends a staff member whose invitation is not accepted yet a new link (the old one stops working) valid 7 more days.
    func resendInvitation(of userID: UUID, adminPassword: String?) async throws -> Invitation {
        let user = try await directory.user(userID)
        guard let invitation = try await Invitation.query(on: request.db).filter(\.$userID == userID).first() else { throw InvitationError.notOpen }
        guard invitation.acceptedAt == nil else { throw InvitationError.alreadyAccepted }
        try await confirmAdminPassword(adminPassword)
        let invitations = InvitationService(request: request)
        let admin = self.admin
        return try await request.db.transaction { db in
            try await invitations.send(to: user, practice: admin.practice, invitedBy: admin.user, on: db)
        }
    }

    /// Withdraws a staff member's open invitation: the link stops working at once.
    func revokeInvitation(of userID: UUID, adminPassword: String?) async throws {
        let user = try await directory.user(userID)
        guard let invitation = try await Invitation.query(on: request.db).filter(\.$userID == userID).first(), invitation.state(at: request.now) == .open else {
            throw InvitationError.notOpen
        }
        try await confirmAdminPassword(adminPassword)
        try await InvitationService(request: request).revoke(user: user, actorID: admin.userID)
    }

    func updateStaff(_ id: UUID, _ input: StaffInput, adminPassword: String?) async throws -> User {
        let user = try await directory.user(id)
        try await confirmAdminPassword(adminPassword)
        guard let email = ProfileService.validEmail(input.email) else { throw AdminError.invalid("Enter a valid email address.") }
        guard !input.firstName.trimmingCharacters(in: .whitespaces).isEmpty, !input.lastName.trimmingCharacters(in: .whitespaces).isEmpty else {
            throw AdminError.invalid("First and last name are required.")
        }
        var cell: String?
        if let raw = input.cellPhone, !raw.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let normalized = SMSCodeService.normalizedPhone(raw) else { throw AdminError.invalid("The cell phone needs 7 to 15 digits, e.g. +1 555 123 4567.") }
            cell = normalized
        }
        if user.id == admin.userID && !input.manageAccounts {
            throw AdminError.invalid("You cannot remove your own Manage Accounts permission. Ask another administrator.")
        }
        user.firstName = input.firstName.trimmingCharacters(in: .whitespaces)
        user.lastName = input.lastName.trimmingCharacters(in: .whitespaces)
        // A changed address is used once its owner opens the confirmation link sent to it; until then the old one stays.
        let newAddress = email.lowercased() != user.email.lowercased() ? email : nil
        user.cellPhone = cell
        user.role = input.role
        user.permissions = input.manageAccounts ? [User.Permission.manageAccounts.rawValue] : []
        user.primaryProviderID = try await validProvider(input.primaryProviderID)
        let (request, admin) = (self.request, self.admin)
        try await request.db.transaction { db in
            try await user.save(on: db)
            if let newAddress { try await EmailVerification(request: request).requestChange(of: user, to: newAddress, administrator: admin.user, on: db) }
            try await request.audit(.userUpdated, practiceID: admin.practiceID, actorID: admin.userID, subjectID: user.id,
                                    details: ["username": user.username, "role": user.role.rawValue, "manage_accounts": String(input.manageAccounts)], on: db)
        }
        return user
    }

    /// Emails a staff member a link to choose a new password (30 minutes, single use), to their verified address.
    /// Their password keeps working until they use the link; the reset asks for their second factor when the practice does.
    func sendPasswordReset(to userID: UUID, adminPassword: String?) async throws -> User {
        let user = try await directory.user(userID)
        guard user.emailVerifiedAt != nil, !user.email.isEmpty else { throw PasswordResetError.noVerifiedEmail(name: user.fullName) }
        try await confirmAdminPassword(adminPassword)
        try await PasswordResetService(request: request).sendLink(to: user, by: admin.user)
        return user
    }

    /// Deletes a staff account; its audit events stay (they refer to the id, not the row).
    func deleteStaff(_ id: UUID, adminPassword: String?) async throws {
        let user = try await directory.user(id)
        guard user.id != admin.userID else { throw AdminError.ownAccount }
        try await confirmAdminPassword(adminPassword)
        try await request.db.transaction { db in
            try await User.query(on: db).filter(\.$primaryProviderID == id).set(\.$primaryProviderID, to: nil).update()
            try await user.delete(on: db)
            try await request.audit(.userDeleted, practiceID: admin.practiceID, actorID: admin.userID, subjectID: id,
                                    details: ["username": user.username, "name": user.fullName], on: db)
        }
    }

    private func validProvider(_ id: UUID?) async throws -> UUID? {
        guard let id else { return nil }
        let provider = try await directory.user(id)
        guard provider.role == .provider else { throw AdminError.invalid("The primary provider must be a provider of your practice.") }
        return id
    }

    // MARK: practice settings

    struct SettingsChange {
        var name: String?
        var mandatoryTwoFactor: Bool?
        var rememberBrowserDays: Int?
        var inactivityMinutes: Int?
        var otpDigits: Int?
        var allowSMS: Bool?
        var allowTOTP: Bool?
        var allowPush: Bool? = nil
        var allowPasskeys: Bool? = nil
        var allowPasswordless: Bool? = nil
        var refuseClonedPasskeys: Bool? = nil
        var sessionLifetimeHours: Int? = nil
        var accessTokenMinutes: Int? = nil
        var refreshTokenDays: Int? = nil
        var resetRequiresSecondFactor: Bool? = nil
        /// nil leaves it; an empty string removes it.
        var notificationCopyAddress: String? = nil
    }

    func updateSettings(_ change: SettingsChange, adminPassword: String?) async throws -> Practice {
        var problems: [String] = []
        if let name = change.name, !(1...120).contains(name.trimmingCharacters(in: .whitespaces).count) { problems.append("the name must be 1 to 120 characters") }
        if let days = change.rememberBrowserDays, !(0...90).contains(days) { problems.append("remember-browser days must be 0 to 90 (0 turns it off)") }
        if let minutes = change.inactivityMinutes, !(5...720).contains(minutes) { problems.append("the inactivity timeout must be 5 to 720 minutes") }
        if let hours = change.sessionLifetimeHours, !PracticeDefaults.sessionLifetimeRange.contains(hours) {
            problems.append("the session lifetime must be \(PracticeDefaults.sessionLifetimeRange.lowerBound) to \(PracticeDefaults.sessionLifetimeRange.upperBound) hours")
        }
        if let minutes = change.accessTokenMinutes, !PracticeDefaults.accessTokenMinutesRange.contains(minutes) {
            let range = PracticeDefaults.accessTokenMinutesRange
            problems.append("the access token lifetime must be \(range.lowerBound) to \(range.upperBound) minutes")
        }
        if let days = change.refreshTokenDays, !PracticeDefaults.refreshTokenDaysRange.contains(days) {
            let range = PracticeDefaults.refreshTokenDaysRange
            problems.append("the refresh token lifetime must be \(range.lowerBound) to \(range.upperBound) days")
        }
        if let digits = change.otpDigits, ![6, 7, 8].contains(digits) { problems.append("codes must have 6, 7 or 8 digits") }
        var copyAddress: String??
        if let raw = change.notificationCopyAddress?.trimmingCharacters(in: .whitespacesAndNewlines) {
            if raw.isEmpty { copyAddress = .some(nil) } else if let valid = ProfileService.validEmail(raw) { copyAddress = .some(valid) } else {
                problems.append("the notification copy address must be a valid email address (or empty)")
            }
        }
        let practice = admin.practice
        if (change.allowSMS ?? practice.allowSMS) == false && (change.allowTOTP ?? practice.allowTOTP) == false && (change.allowPush ?? practice.allowPush) == false
            && (change.allowPasskeys ?? practice.allowPasskeys) == false {
            problems.append("allow at least one method (authenticator app, text message, push device or passkey)")
        }

        guard problems.isEmpty else { throw AdminError.invalid("Settings not saved: " + problems.joined(separator: "; ") + ".") }
        try await confirmAdminPassword(adminPassword)
        var changed: [String: String] = [:]
        func apply<T: Equatable & CustomStringConvertible>(_ key: String, _ value: T?, _ path: ReferenceWritableKeyPath<Practice, T>) {
            guard let value, practice[keyPath: path] != value else { return }
            changed[key] = "\(practice[keyPath: path]) → \(value)"
            practice[keyPath: path] = value
        }
        apply("name", change.name?.trimmingCharacters(in: .whitespaces), \.name)
        apply("mandatory_two_factor", change.mandatoryTwoFactor, \.mandatoryTwoFactor)
        apply("remember_browser_days", change.rememberBrowserDays, \.rememberBrowserDays)
        apply("inactivity_minutes", change.inactivityMinutes, \.inactivityMinutes)
        apply("otp_digits", change.otpDigits, \.otpDigits)
        apply("allow_sms", change.allowSMS, \.allowSMS)
        apply("allow_totp", change.allowTOTP, \.allowTOTP)
        apply("allow_push", change.allowPush, \.allowPush)
        apply("allow_passkeys", change.allowPasskeys, \.allowPasskeys)
        apply("allow_passwordless", change.allowPasswordless, \.allowPasswordless)
        apply("refuse_cloned_passkeys", change.refuseClonedPasskeys, \.refuseClonedPasskeys)
        apply("session_lifetime_hours", change.sessionLifetimeHours, \.sessionLifetimeHours)
        apply("oidc_access_token_minutes", change.accessTokenMinutes, \.accessTokenMinutes)
        apply("oidc_refresh_token_days", change.refreshTokenDays, \.refreshTokenDays)
        apply("reset_requires_second_factor", change.resetRequiresSecondFactor, \.resetRequiresSecondFactor)
        if let copyAddress, copyAddress?.lowercased() != practice.notificationCopyAddress?.lowercased() {
            changed["notification_copy_address"] = "\(practice.notificationCopyAddress ?? "none") → \(copyAddress ?? "none")"
            practice.notificationCopyAddress = copyAddress
        }
        guard !changed.isEmpty else { return practice }
        try await practice.save(on: request.db)
        if change.allowSMS == false, changed["allow_sms"] != nil {
            // Codes already sent stop working the moment text messages are switched off.
            try await request.db.sql.raw("""
                DELETE FROM \(ident: SMSCode.schema) WHERE user_id IN (SELECT id FROM \(ident: User.schema) WHERE practice_id = \(bind: try practice.requireID()))
                """).run()
        }
        try await request.audit(.practiceSettingsChanged, practiceID: admin.practiceID, actorID: admin.userID, details: changed)
        return practice
    }
}
