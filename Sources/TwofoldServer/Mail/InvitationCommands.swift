import Fluent
import Foundation
import TwofoldCore
import Vapor

/// `twofold user invite --practice ID --username U --first-name F --last-name L --email E [--cell PHONE]
/// [--role provider|staff] [--manage-accounts]`: creates the user without a password and emails them an invitation
/// to choose one (links start with `TWOFOLD_PUBLIC_URL`).
struct InviteUserCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "practice", help: "The practice id (from `twofold practice create`).") var practice: String?
        @Option(name: "username", help: "The sign-in name, unique on this server.") var username: String?
        @Option(name: "first-name", help: "First name.") var firstName: String?
        @Option(name: "last-name", help: "Last name.") var lastName: String?
        @Option(name: "email", help: "Email address: the invitation goes there.") var email: String?
        @Option(name: "cell", help: "Cell phone for text-message codes, e.g. +15551234567.") var cell: String?
        @Option(name: "role", help: "provider or staff (default staff).") var role: String?
        @Flag(name: "manage-accounts", help: "Grant the Manage Accounts permission (practice administrator).") var manageAccounts: Bool
    }

    /// The help states the standard invitation lifetime (no application is configured yet when help is shown).
    var help: String {
        "Creates a user without a password and emails them an invitation (valid \(TwofoldPolicy.standard.invitation.validityDays) "
            + "days) to choose one; prints the user id."
    }

    func run(using context: CommandContext, signature: Signature) async throws {
        let (practiceID, role) = try UserCommandOptions.validated(
            practice: signature.practice, username: signature.username, firstName: signature.firstName, lastName: signature.lastName,
            email: signature.email, role: signature.role)
        let app = context.application
        try await prepareDatabase(app)
        guard let practice = try await Practice.find(practiceID, on: app.db) else {
            throw CLIError("there is no practice with id \(practiceID)")
        }
        let invitations = InvitationService(application: app)
        let now = app.twofold.clock.now()
        let input = AccountProvisioning.NewUser(
            practiceID: practiceID, username: signature.username!, firstName: signature.firstName!, lastName: signature.lastName!,
            email: signature.email!, cellPhone: signature.cell, role: role, permissions: signature.manageAccounts ? [.manageAccounts] : [],
            password: nil)
        let passwords = app.password.async
        let (user, invitation): (User, Invitation)
        do {
            (user, invitation) = try await app.db.transaction { db in
                let user = try await AccountProvisioning(database: db, passwords: passwords, now: now).createUser(input)
                return (user, try await invitations.send(to: user, practice: practice, invitedBy: nil, on: db))
            }
        } catch let error as any AbortError {
            throw CLIError(error.reason)
        }
        context.console.print(try user.requireID().uuidString)
        context.console.print(
            "An invitation to \(user.email) was queued; its link is valid until \(InvitationService.displayDate(invitation.expiresAt)).")
    }
}

extension InvitationService {
    /// After a CSV import: invites each of `usernames` (in `practiceID`) that was imported without a password hash
    /// and has an email address. Returns how many were invited.
    func inviteImported(usernames: [String], practiceID: UUID) async throws -> Int {
        guard let practice = try await Practice.find(practiceID, on: database) else { return 0 }
        let keys = usernames.map(User.key(for:))
        var count = 0
        for start in stride(from: 0, to: keys.count, by: 1000) {
            let chunk = Array(keys[start..<min(start + 1000, keys.count)])
            let users = try await User.query(on: database).filter(\.$practice.$id == practiceID).filter(\.$usernameKey ~~ chunk)
                .filter(\.$passwordHash == Importer.unusablePasswordHash).all()
            for user in users where !user.email.isEmpty {
                try await database.transaction { db in
                    _ = try await send(to: user, practice: practice, invitedBy: nil, on: db)
                }
                count += 1
            }
        }
        return count
    }
}
