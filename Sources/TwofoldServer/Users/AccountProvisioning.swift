import Fluent
import TwofoldCore
import Vapor

/// Creating practices and users, shared by the CLI and (later) the administration pages.
struct AccountProvisioning {
    let database: any Database
    let passwords: AsyncPasswordHasher
    let now: Date

    struct NewUser {
        var practiceID: UUID
        var username: String
        var firstName: String
        var lastName: String
        var email: String
        var cellPhone: String?
        var role: User.Role
        var permissions: [User.Permission]
        /// nil for an invited user: no usable password until they accept their invitation and choose one.
        var password: String?
    }

    static let usernamePattern = "letters, digits, '.', '_', '-' and '@', 2 to 64 characters"

    static func isValidUsername(_ username: String) -> Bool {
        (2...64).contains(username.count) && username.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-@".contains($0)) }
    }

    func createPractice(name rawName: String, mandatoryTwoFactor: Bool) async throws -> Practice {
        let name = rawName.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...120).contains(name.count) else { throw Abort(.badRequest, reason: "The practice name must be 1 to 120 characters.") }
        let practice = Practice(name: name, mandatoryTwoFactor: mandatoryTwoFactor)
        try await practice.create(on: database)
        try await AuditLog.append(
            AuditEntry(
                type: .practiceCreated, practiceID: practice.id,
                details: ["name": name, "mandatory_two_factor": String(mandatoryTwoFactor)]), on: database, now: now)
        return practice
    }

    func createUser(_ input: NewUser, actorID: UUID? = nil) async throws -> User {
        var problems: [String] = []
        let username = input.username.trimmingCharacters(in: .whitespacesAndNewlines)
        if !Self.isValidUsername(username) { problems.append("the username may use \(Self.usernamePattern)") }
        if input.firstName.trimmingCharacters(in: .whitespaces).isEmpty { problems.append("a first name is required") }
        if input.lastName.trimmingCharacters(in: .whitespaces).isEmpty { problems.append("a last name is required") }
        let email = ProfileService.validEmail(input.email)
        if email == nil { problems.append("the email address is not valid") }
        var cell: String?
        if let raw = input.cellPhone, !raw.trimmingCharacters(in: .whitespaces).isEmpty {
            cell = SMSCodeService.normalizedPhone(raw)
            if cell == nil { problems.append("the cell phone needs 7 to 15 digits, e.g. +1 555 123 4567") }
        }
        guard let practice = try await Practice.find(input.practiceID, on: database) else {
            throw Abort(.notFound, reason: "There is no practice with id \(input.practiceID).")
        }
        // A new user has no factor yet: the password is their only one unless the practice requires 2FA.
        let rules = PasswordRules.Context(hasSecondFactor: practice.mandatoryTwoFactor, username: username, practiceName: practice.name)
        if let password = input.password, let problem = PasswordRules.problem(with: password, context: rules) {
            problems.append(problem.prefix(1).lowercased() + problem.dropFirst().dropLast())
        }
        if try await User.query(on: database).filter(\.$usernameKey == User.key(for: username)).first() != nil {
            problems.append("the username \(username) is already taken")
        }
        guard problems.isEmpty else {
            throw Abort(.badRequest, reason: "Cannot create the user: " + problems.joined(separator: "; ") + ".")
        }
        var hash = InvitationService.unusablePasswordHash
        if let password = input.password { hash = try await passwords.hash(password) }
        let user = User(
            practiceID: input.practiceID, username: username, firstName: input.firstName.trimmingCharacters(in: .whitespaces),
            lastName: input.lastName.trimmingCharacters(in: .whitespaces), email: email!, cellPhone: cell,
            role: input.role, permissions: input.permissions, passwordHash: hash)
        user.passwordMeetsSingleFactorMinimum =
            input.password.map { PasswordRules.meetsSingleFactorMinimum($0, username: username, practiceName: practice.name) } ?? false
        // An address an administrator (or the CLI) enters counts as verified; later changes wait for a confirmation link.
        user.emailVerifiedAt = now
        try await user.create(on: database)
        try await AuditLog.append(
            AuditEntry(
                type: .userCreated, practiceID: input.practiceID, actorID: actorID, subjectID: user.id,
                details: [
                    "username": username, "role": input.role.rawValue,
                    "permissions": input.permissions.map(\.rawValue).joined(separator: ","),
                ]),
            on: database, now: now)
        return user
    }
}
