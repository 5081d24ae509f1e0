import Fluent
import Foundation

/// A one-time code sent by text message: random, stored hashed, single use, expires after ``TwofoldPolicy/SMS/codeLifetime``.
/// A user has at most one live code per purpose (a new one voids the old) and each code takes ``TwofoldPolicy/SMS/guessesPerCode`` guesses.
final class SMSCode: Model, @unchecked Sendable {
    static let schema = "sms_codes"

    enum Purpose: String, Codable, Sendable {
        case signIn = "sign_in"
        case enrollment
    }

    @ID(key: .id) var id: UUID?
    @Parent(key: "user_id") var user: User
    @OptionalParent(key: "factor_id") var factor: Factor?
    @Field(key: "phone") var phone: String
    @Field(key: "purpose") var purpose: Purpose
    @Field(key: "code_hash") var codeHash: String
    @Field(key: "created_at") var createdAt: Date
    @Field(key: "expires_at") var expiresAt: Date
    @OptionalField(key: "used_at") var usedAt: Date?
    @Field(key: "delivered") var delivered: Bool
    /// Codes checked against this one so far (reserved before each check).
    @Field(key: "attempts") var attempts: Int

    init() {}

    init(
        id: UUID = UUID(), userID: UUID, factorID: UUID?, phone: String, purpose: Purpose, codeHash: String, now: Date,
        lifetime: TimeInterval
    ) {
        self.id = id
        self.$user.id = userID
        self.$factor.id = factorID
        self.phone = phone
        self.purpose = purpose
        self.codeHash = codeHash
        self.createdAt = now
        self.expiresAt = now.addingTimeInterval(lifetime)
        self.delivered = false
        self.attempts = 0
    }
}

struct CreateSMSCode: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(SMSCode.schema)
            .id()
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("factor_id", .uuid, .references(Factor.schema, .id, onDelete: .cascade))
            .field("phone", .string, .required)
            .field("purpose", .string, .required)
            .field("code_hash", .string, .required)
            .field("created_at", .datetime, .required)
            .field("expires_at", .datetime, .required)
            .field("used_at", .datetime)
            .field("delivered", .bool, .required)
            .create()
        try await database.sqlIndex(name: "sms_codes_user_idx", on: SMSCode.schema, columns: ["user_id", "created_at"])
        try await database.sqlIndex(name: "sms_codes_phone_idx", on: SMSCode.schema, columns: ["phone", "created_at"])
    }

    func revert(on database: any Database) async throws {
        try await database.schema(SMSCode.schema).delete()
    }
}

struct AddAttemptsToSMSCode: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(SMSCode.schema).field("attempts", .int, .required, .sql(.default(0))).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(SMSCode.schema).deleteField("attempts").update()
    }
}
