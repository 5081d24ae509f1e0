import Fluent
import Foundation

/// A text message the `outbox` sender kept instead of sending; read with `twofold outbox list`.
final class OutboxMessage: Model, @unchecked Sendable {
    static let schema = "outbox_messages"

    @ID(key: .id) var id: UUID?
    @Field(key: "recipient") var recipient: String
    @Field(key: "body") var body: String
    @Field(key: "created_at") var createdAt: Date

    init() {}

    init(recipient: String, body: String, createdAt: Date) {
        self.recipient = recipient
        self.body = body
        self.createdAt = createdAt
    }
}

struct CreateOutboxMessage: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(OutboxMessage.schema)
            .id()
            .field("recipient", .string, .required)
            .field("body", .string, .required)
            .field("created_at", .datetime, .required)
            .create()
        try await database.sqlIndex(name: "outbox_created_idx", on: OutboxMessage.schema, columns: ["created_at"])
    }

    func revert(on database: any Database) async throws {
        try await database.schema(OutboxMessage.schema).delete()
    }
}
