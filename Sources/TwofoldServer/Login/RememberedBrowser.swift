import Fluent
import Foundation

/// A browser the user asked us not to ask again for a second factor; the cookie holds the token, we keep its hash.
final class RememberedBrowser: Model, @unchecked Sendable {
    static let schema = "remembered_browsers"

    @ID(key: .id) var id: UUID?
    @Parent(key: "user_id") var user: User
    @Field(key: "token_hash") var tokenHash: String
    @Field(key: "user_agent") var userAgent: String
    @Field(key: "last_ip") var lastIP: String
    /// When the browser was remembered (Twofold's clock): the practice's current number of days counts from here.
    @OptionalField(key: "created_at") var createdAt: Date?
    @Field(key: "expires_at") var expiresAt: Date
    @OptionalField(key: "last_used_at") var lastUsedAt: Date?

    init() {}

    init(userID: UUID, tokenHash: String, userAgent: String, lastIP: String, createdAt: Date, expiresAt: Date) {
        self.createdAt = createdAt
        self.$user.id = userID
        self.tokenHash = tokenHash
        self.userAgent = userAgent
        self.lastIP = lastIP
        self.expiresAt = expiresAt
    }
}

struct CreateRememberedBrowser: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(RememberedBrowser.schema)
            .id()
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("token_hash", .string, .required)
            .field("user_agent", .string, .required)
            .field("last_ip", .string, .required)
            .field("created_at", .datetime)
            .field("expires_at", .datetime, .required)
            .field("last_used_at", .datetime)
            .unique(on: "token_hash")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(RememberedBrowser.schema).delete()
    }
}
