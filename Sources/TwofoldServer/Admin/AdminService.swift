import Fluent
import SQLKit
import TwofoldCore
import Vapor

/// What a practice administrator does to staff accounts and practice settings; shared by the pages and the API.
/// The changes that email a staff member (invitations, reset links, address confirmations) take the service that
/// sends the message from the caller, which knows the address links start with.
struct AdminService {
    let context: ServiceContext
    let admin: CurrentSession

    /// - Throws: ``AdminError/notAllowed`` unless `admin` has the Manage Accounts permission.
    init(context: ServiceContext, admin: CurrentSession) throws {
        guard admin.user.has(.manageAccounts) else { throw AdminError.notAllowed }
        self.context = context
        self.admin = admin
    }

    var directory: StaffDirectory { StaffDirectory(database: context.database, practice: admin.practice) }

    /// Every administrative change is confirmed with the administrator's own password, each time.
    func confirmAdminPassword(_ password: String?) async throws {
        guard let password, !password.isEmpty else { throw Reauthentication.Failure.passwordRequired }
        try await Reauthentication(context: context).confirm(password: password, session: admin)
    }

    // MARK: two-factor authentication for a staff member

    /// Requires 2FA of a staff member: at their next sign-in they must enroll before anything else.
    func requireTwoFactor(of userID: UUID, adminPassword: String?) async throws -> User {
        let user = try await directory.user(userID)
        guard let cell = user.cellPhone, !cell.isEmpty else { throw AdminError.noCellPhone(name: user.fullName) }
        try await confirmAdminPassword(adminPassword)
        user.twoFactorRequired = true
        try await user.save(on: context.database)
        try await context.audit(
            .adminTwoFactorRequired, practiceID: admin.practiceID, actorID: admin.userID, subjectID: user.id,
            details: ["username": user.username, "email": user.email, "cell": SMSCodeService.maskedPhone(cell)])
        return user
    }

    /// The lost-phone path: removes the user's factors, recovery codes and remembered browsers and signs them out everywhere.
    func disableTwoFactor(of userID: UUID, adminPassword: String?) async throws -> User {
        let user = try await directory.user(userID)
        guard user.id != admin.userID else { throw AdminError.ownTwoFactor }
        try await confirmAdminPassword(adminPassword)
        let removed = try await Factor.query(on: context.database).filter(\.$user.$id == userID).count()
        try await context.database.transaction { db in
            try await Factor.query(on: db).filter(\.$user.$id == userID).delete()
            try await TwoFactorReset.clearSecondaryState(userID: userID, on: db)
            try await SessionRecord.query(on: db).filter(\.$user.$id == userID).delete()
            try await SecondFactorGuard.clearAll(userID: userID, on: db)
            try await context.on(db).audit(
                .adminTwoFactorDisabled, practiceID: admin.practiceID, actorID: admin.userID, subjectID: userID,
                details: ["username": user.username, "factors_removed": String(removed)])
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

        /// The account to create in `practiceID`, with `password` (nil: none usable yet, for an invitation).
        func newUser(in practiceID: UUID, password: String?) -> AccountProvisioning.NewUser {
            .init(
                practiceID: practiceID, username: username, firstName: firstName, lastName: lastName, email: email,
                cellPhone: cellPhone, role: role, permissions: manageAccounts ? [.manageAccounts] : [], password: password)
        }
    }

    func createStaff(_ input: StaffInput, temporaryPassword: String, adminPassword: String?) async throws -> User {
        try await confirmAdminPassword(adminPassword)
        let provider = try await validProvider(input.primaryProviderID)
        let user = try await AccountProvisioning(database: context.database, passwords: context.passwords.hasher, now: context.now)
            .createUser(input.newUser(in: admin.practiceID, password: temporaryPassword), actorID: admin.userID)
        user.mustChangePassword = true
        user.primaryProviderID = provider
        try await user.save(on: context.database)
        return user
    }

    /// Creates a staff account without a usable password and emails them an invitation to choose one (with
    /// `invitations`), in one transaction: there is never an invited account without its message, nor a message
    /// without its account.
    func inviteStaff(_ input: StaffInput, adminPassword: String?, invitations: InvitationService) async throws -> (User, Invitation) {
        try await confirmAdminPassword(adminPassword)
        let provider = try await validProvider(input.primaryProviderID)
        let (context, admin) = (self.context, self.admin)
        return try await context.database.transaction { db in
            let user = try await AccountProvisioning(database: db, passwords: context.passwords.hasher, now: context.now).createUser(
                input.newUser(in: admin.practiceID, password: nil), actorID: admin.userID)
            user.primaryProviderID = provider
            try await user.save(on: db)
            let invitation = try await invitations.send(to: user, practice: admin.practice, invitedBy: admin.user, on: db)
            return (user, invitation)
        }
    }

    /// Sends a staff member whose invitation is not accepted yet a new link (the old one stops working) valid 7 more days.
    func resendInvitation(of userID: UUID, adminPassword: String?, invitations: InvitationService) async throws -> Invitation {
        let user = try await directory.user(userID)
        guard let invitation = try await Invitation.query(on: context.database).filter(\.$userID == userID).first() else {
            throw InvitationError.notOpen
        }
        guard invitation.acceptedAt == nil else { throw InvitationError.alreadyAccepted }
        try await confirmAdminPassword(adminPassword)
        let admin = self.admin
        return try await context.database.transaction { db in
            try await invitations.send(to: user, practice: admin.practice, invitedBy: admin.user, on: db)
        }
    }

    /// Withdraws a staff member's open invitation: the link stops working at once.
    func revokeInvitation(of userID: UUID, adminPassword: String?, invitations: InvitationService) async throws {
        let user = try await directory.user(userID)
        guard let invitation = try await Invitation.query(on: context.database).filter(\.$userID == userID).first(),
            invitation.state(at: context.now) == .open
        else {
            throw InvitationError.notOpen
        }
        try await confirmAdminPassword(adminPassword)
        try await invitations.revoke(user: user, actorID: admin.userID)
    }

    /// Saves a staff member's details; a changed email address is confirmed by its owner first (`emailVerification`
    /// sends the link to it).
    func updateStaff(_ id: UUID, _ input: StaffInput, adminPassword: String?, emailVerification: EmailVerification) async throws -> User {
        let user = try await directory.user(id)
        try await confirmAdminPassword(adminPassword)
        guard let email = ProfileService.validEmail(input.email) else { throw AdminError.invalid("Enter a valid email address.") }
        guard !input.firstName.trimmingCharacters(in: .whitespaces).isEmpty, !input.lastName.trimmingCharacters(in: .whitespaces).isEmpty
        else {
            throw AdminError.invalid("First and last name are required.")
        }
        var cell: String?
        if let raw = input.cellPhone, !raw.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let normalized = SMSCodeService.normalizedPhone(raw) else {
                throw AdminError.invalid("The cell phone needs 7 to 15 digits, e.g. +1 555 123 4567.")
            }
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
        let (context, admin) = (self.context, self.admin)
        try await context.database.transaction { db in
            try await user.save(on: db)
            if let newAddress {
                try await emailVerification.requestChange(of: user, to: newAddress, administrator: admin.user, on: db)
            }
            try await context.on(db).audit(
                .userUpdated, practiceID: admin.practiceID, actorID: admin.userID, subjectID: user.id,
                details: ["username": user.username, "role": user.role.rawValue, "manage_accounts": String(input.manageAccounts)])
        }
        return user
    }

    /// Emails a staff member a link to choose a new password (30 minutes, single use), to their verified address.
    /// Their password keeps working until they use the link; the reset asks for their second factor when the practice does.
    func sendPasswordReset(to userID: UUID, adminPassword: String?, resets: PasswordResetService) async throws -> User {
        let user = try await directory.user(userID)
        guard user.emailVerifiedAt != nil, !user.email.isEmpty else { throw PasswordResetError.noVerifiedEmail(name: user.fullName) }
        try await confirmAdminPassword(adminPassword)
        try await resets.sendLink(to: user, by: admin.user)
        return user
    }

    /// Deletes a staff account; its audit events stay (they refer to the id, not the row).
    func deleteStaff(_ id: UUID, adminPassword: String?) async throws {
        let user = try await directory.user(id)
        guard user.id != admin.userID else { throw AdminError.ownAccount }
        try await confirmAdminPassword(adminPassword)
        try await context.database.transaction { db in
            try await User.query(on: db).filter(\.$primaryProviderID == id).set(\.$primaryProviderID, to: nil).update()
            try await user.delete(on: db)
            try await context.on(db).audit(
                .userDeleted, practiceID: admin.practiceID, actorID: admin.userID, subjectID: id,
                details: ["username": user.username, "name": user.fullName])
        }
    }

    private func validProvider(_ id: UUID?) async throws -> UUID? {
        guard let id else { return nil }
        let provider = try await directory.user(id)
        guard provider.role == .provider else { throw AdminError.invalid("The primary provider must be a provider of your practice.") }
        return id
    }

    // MARK: practice settings

    /// Changes the practice's settings: validated as a whole against the policy's bounds, confirmed with the
    /// administrator's password, saved and audited with the fields that changed.
    func updateSettings(_ patch: PracticeSettings.Patch, adminPassword: String?) async throws -> Practice {
        let practice = admin.practice
        let current = PracticeSettings(practice)
        let (next, unreadable) = patch.applied(to: current)
        let problems = unreadable + next.problems(policy: context.policy.practice)
        guard problems.isEmpty else { throw AdminError.invalid("Settings not saved: " + problems.joined(separator: "; ") + ".") }
        try await confirmAdminPassword(adminPassword)
        let changed = next.changes(from: current)
        next.apply(to: practice)
        guard !changed.isEmpty else { return practice }
        try await practice.save(on: context.database)
        if !next.allowSMS, changed["allow_sms"] != nil {
            // Codes already sent stop working the moment text messages are switched off.
            try await context.database.sql.raw(
                """
                DELETE FROM \(ident: SMSCode.schema) WHERE user_id IN (SELECT id FROM \(ident: User.schema) WHERE practice_id = \(bind: try practice.requireID()))
                """
            ).run()
        }
        try await context.audit(.practiceSettingsChanged, practiceID: admin.practiceID, actorID: admin.userID, details: changed)
        return practice
    }
}
