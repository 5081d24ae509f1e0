import Fluent
import Foundation

/// A key an integrating system (EHR, VPN, PAM module) uses as `Authorization: Bearer tfk_…`.
/// Only its SHA-256 is stored; the key itself is shown once when it is created.
final class APIKey: Model, @unchecked Sendable {
    static let schema = "api_keys"
    static let prefix = "tfk_"

    @ID(key: .id) var id: UUID?
    @Parent(key: "practice_id") var practice: Practice
    @Field(key: "name") var name: String
    /// The first characters of the key, to recognise it in lists.
    @Field(key: "hint") var hint: String
    @Field(key: "key_hash") var keyHash: String
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?
    @OptionalField(key: "revoked_at") var revokedAt: Date?
    @OptionalField(key: "last_used_at") var lastUsedAt: Date?

    init() {}

    init(practiceID: UUID, name: String, hint: String, keyHash: String) {
        self.$practice.id = practiceID
        self.name = name
        self.hint = hint
        self.keyHash = keyHash
    }
}

struct CreateAPIKey: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(APIKey.schema)
            .id()
            .field("practice_id", .uuid, .required, .references(Practice.schema, .id, onDelete: .cascade))
            .field("name", .string, .required)
            .field("hint", .string, .required)
            .field("key_hash", .string, .required)
            .field("created_at", .datetime)
            .field("revoked_at", .datetime)
            .field("last_used_at", .datetime)
            .unique(on: "key_hash")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(APIKey.schema).delete()
    }
}
