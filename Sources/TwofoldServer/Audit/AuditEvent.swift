import Fluent
import Foundation
import SQLKit

/// One security event. Rows are only ever inserted; each carries the link (an HMAC under the audit key) of its
/// predecessor, so a changed, removed or inserted row breaks the chain (`twofold audit verify`).
final class AuditEvent: Model, @unchecked Sendable {
    static let schema = "audit_events"

    @ID(key: .id) var id: UUID?
    /// The chain (``AuditChainRegistry``) the event belongs to; `seq` counts within it.
    @Field(key: "chain_id") var chainID: String
    @Field(key: "seq") var seq: Int64
    @OptionalField(key: "practice_id") var practiceID: UUID?
    @OptionalField(key: "actor_id") var actorID: UUID?
    @OptionalField(key: "subject_id") var subjectID: UUID?
    @Field(key: "event") var event: String
    @Field(key: "ip") var ip: String
    @Field(key: "user_agent") var userAgent: String
    /// Sorted-key JSON with the event's particulars; never a secret.
    @Field(key: "details") var details: String
    /// Milliseconds since 1970, the form that is hashed (exact on every database).
    @Field(key: "occurred_ms") var occurredMS: Int64
    @Field(key: "occurred_at") var occurredAt: Date
    @Field(key: "prev_hash") var prevHash: String
    @Field(key: "hash") var hash: String
    /// The audit key (``AuditKeys/macKeyID``) of a keyed link; `nil` in the unkeyed first segment.
    @OptionalField(key: "key_id") var keyID: String?

    init() {}
}

/// The single head row of the log before per-instance chains (``AddPerInstanceAuditChains`` moves it into the
/// registry as the `main` chain); only the migrations that built it still name it.
enum AuditChainHead {
    static let table = "audit_chain_head"
    static let genesisHash = String(repeating: "0", count: 64)
}

struct CreateAuditEvent: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(AuditEvent.schema)
            .id()
            .field("seq", .int64, .required)
            .field("practice_id", .uuid)
            .field("actor_id", .uuid)
            .field("subject_id", .uuid)
            .field("event", .string, .required)
            .field("ip", .string, .required)
            .field("user_agent", .string, .required)
            .field("details", .string, .required)
            .field("occurred_ms", .int64, .required)
            .field("occurred_at", .datetime, .required)
            .field("prev_hash", .string, .required)
            .field("hash", .string, .required)
            .unique(on: "seq")
            .create()
        try await database.sqlIndex(name: "audit_practice_idx", on: AuditEvent.schema, columns: ["practice_id", "seq"])
        try await database.schema(AuditChainHead.table)
            .field("id", .int, .required)
            .field("seq", .int64, .required)
            .field("hash", .string, .required)
            .unique(on: "id")
            .create()
        try await database.sql.insert(into: AuditChainHead.table)
            .columns("id", "seq", "hash")
            .values(SQLBind(1), SQLBind(Int64(0)), SQLBind(AuditChainHead.genesisHash))
            .run()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(AuditChainHead.table).delete()
        try await database.schema(AuditEvent.schema).delete()
    }
}
