import Fluent
import Foundation
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// Practices and users made the way the CLI makes them.
enum Fixtures {
    static let password = "correct horse battery"

    static func practice(_ ctx: TestContext, name: String = "Riverside Family Medicine", mandatory: Bool = false) async throws -> Practice {
        try await AccountProvisioning(database: ctx.app.db, passwords: ctx.app.password.async, now: ctx.clock.now)
            .createPractice(name: name, mandatoryTwoFactor: mandatory)
    }

    static func user(
        _ ctx: TestContext, practice: Practice, username: String = "dr.smith", cell: String? = "+15551234567",
        role: User.Role = .provider, admin: Bool = false
    ) async throws -> User {
        try await AccountProvisioning(database: ctx.app.db, passwords: ctx.app.password.async, now: ctx.clock.now).createUser(
            .init(
                practiceID: practice.id!, username: username, firstName: "Sam", lastName: "Smith", email: "\(username)@example.org",
                cellPhone: cell, role: role, permissions: admin ? [.manageAccounts] : [], password: password))
    }

    /// The code an authenticator app would show for `secret` at `date`.
    static func code(_ secret: String, at date: Date, digits: Int = 6) throws -> String {
        TOTP(secret: try OTPSecret(base32: secret), parameters: try OTPParameters(digits: digits)).code(at: date)
    }

    static func latestOutboxCode(_ ctx: TestContext, to phone: String = "+15551234567") async throws -> String? {
        let message = try await OutboxMessage.query(on: ctx.app.db).filter(\.$recipient == phone).sort(\.$createdAt, .descending).first()
        return message?.body.split(separator: " ").first.map(String.init)
    }
}
