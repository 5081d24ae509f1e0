import Fluent
import Foundation
import SQLKit

/// Addresses (an IPv4 address or an IPv6 /64) from which a user completed a sign-in. The right password from
/// such an address gets an allowance of its own when strangers have spent the account's password allowance.
enum KnownSignInAddress {
    static let schema = "known_sign_in_addresses"
    /// An address is forgotten when the user has not signed in from it for this long.
    static let retention: TimeInterval = 90 * 86_400

    static func record(userID: UUID, address: String, now: Date, on database: any Database) async throws {
        try await database.sql.raw(
            """
            INSERT INTO \(ident: schema) (user_id, address, last_success_at) VALUES (\(bind: userID), \(bind: address), \(bind: now))
            ON CONFLICT (user_id, address) DO UPDATE SET last_success_at = \(bind: now)
            """
        ).run()
    }

    static func contains(userID: UUID, address: String, now: Date = Date(), on database: any Database) async throws -> Bool {
        try await database.sql.raw(
            """
            SELECT address FROM \(ident: schema) WHERE user_id = \(bind: userID) AND address = \(bind: address)
            """
        ).first() != nil
    }
}

struct CreateKnownSignInAddress: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(KnownSignInAddress.schema)
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("address", .string, .required)
            .field("last_success_at", .datetime, .required)
            .unique(on: "user_id", "address")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(KnownSignInAddress.schema).delete()
    }
}
