import Fluent
import Foundation
import SQLKit
import Vapor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The registry of audit chains: one row per chain, holding its head. Each process appends to chains of its own
/// (``AuditContext/writerChain()``), so writers in different processes, and the writer tasks of one process, never
/// wait on one another's head row. Each chain is opened by a signed `open` checkpoint, so a chain removed together
/// with its registry row still shows in every copy of the checkpoints.
enum AuditChainRegistry {
    static let table = "audit_chains"

    enum Status: String, Sendable {
        /// A chain that a running (or crashed) process appends to.
        case open
        /// The single chain of the log before per-instance chains; nothing is appended to it any more.
        case closed
    }

    struct Row: Decodable, Sendable {
        var id: String
        var created_ms: Int64
        var instance: String
        var key_id: String
        var status: String
        var seq: Int64
        var hash: String
        var checkpoint_seq: Int64?
        var checkpoint_ms: Int64?

        var head: AuditLog.HeadRow { .init(seq: seq, hash: hash, checkpoint_seq: checkpoint_seq, checkpoint_ms: checkpoint_ms) }
    }

    static let columns = ["id", "created_ms", "instance", "key_id", "status", "seq", "hash", "checkpoint_seq", "checkpoint_ms"]

    /// Every registered chain, oldest first.
    static func all(on database: any Database) async throws -> [Row] {
        try await database.sql.select().columns(columns.map { SQLIdentifier($0) }).from(table)
            .orderBy("created_ms").orderBy("id").all(decoding: Row.self)
    }

    /// Registers chain `id` with an empty head and signs its `open` checkpoint, unless it is registered already
    /// (another task of this process won the race). Runs in the caller's transaction.
    static func register(_ id: String, instance: String, on database: any Database, ms: Int64, keys: AuditKeys) async throws {
        let inserted = try await database.sql.raw(
            """
            INSERT INTO \(ident: table) (id, created_ms, instance, key_id, status, seq, hash)
            VALUES (\(bind: id), \(bind: ms), \(bind: instance), \(bind: keys.signingKeyID), \(bind: Status.open.rawValue), \(bind: Int64(0)), \(bind: AuditChainHead.genesisHash))
            ON CONFLICT (id) DO NOTHING RETURNING id
            """
        ).first()
        guard inserted != nil else { return }
        try await AuditCheckpoint.signed(chain: id, kind: .open, seq: 0, head: AuditChainHead.genesisHash, ms: ms, keys: keys).insert(
            on: database)
        try await database.sql.update(table).set("checkpoint_seq", to: Int64(0)).set("checkpoint_ms", to: ms).where("id", .equal, id).run()
    }

    /// A new chain id: 12 hex digits, unique enough that two processes never pick the same (and if they did, both
    /// would append to one chain through its head row, which stays correct).
    static func newID() -> String {
        String(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(12))
    }

    /// "host pid 1234": which process wrote a chain, for the operator reading the registry.
    static func instanceLabel() -> String {
        var name = [CChar](repeating: 0, count: 256)
        let host = gethostname(&name, name.count) == 0 ? String(cString: name) : "unknown host"
        return "\(host) pid \(getpid())"
    }
}

/// One chain per writer instead of the single head row: the `audit_chains` registry, a `chain_id` on every event
/// (unique with `seq` instead of `seq` alone) and on every checkpoint. The log written so far becomes the closed
/// `main` chain: its events keep their links and checkpoints, and the migration signs its head if events came after
/// its newest checkpoint. New events go to the per-instance chains.
struct AddPerInstanceAuditChains: AsyncMigration {
    static let uniqueName = "uq:audit_events.chain_id+seq"

    func prepare(on database: any Database) async throws {
        try await database.schema(AuditChainRegistry.table)
            .field("id", .string, .required)
            .field("created_ms", .int64, .required)
            .field("instance", .string, .required)
            .field("key_id", .string, .required)
            .field("status", .string, .required)
            .field("seq", .int64, .required)
            .field("hash", .string, .required)
            .field("checkpoint_seq", .int64)
            .field("checkpoint_ms", .int64)
            .unique(on: "id")
            .create()
        let keys = try AuditContext.of(database).keys
        let now = AuditLog.milliseconds(Date())
        try await database.transaction { db in
            guard
                let head = try await db.sql.raw(
                    "SELECT seq, hash, checkpoint_seq, checkpoint_ms FROM \(ident: AuditChainHead.table) WHERE id = 1"
                )
                .first(decoding: AuditLog.HeadRow.self)
            else { throw Abort(.internalServerError, reason: "The audit log has no head row.") }
            let first = try await db.sql.raw("SELECT MIN(occurred_ms) AS ms FROM \(ident: AuditEvent.schema)").first(
                decoding: MinimumMS.self)?.ms
            try await db.sql.insert(into: AuditChainRegistry.table)
                .columns(AuditChainRegistry.columns)
                .values(
                    SQLBind(AuditCheckpoint.mainChain), SQLBind(first ?? now), SQLBind("the single chain before per-instance chains"),
                    SQLBind(keys.signingKeyID), SQLBind(AuditChainRegistry.Status.closed.rawValue), SQLBind(head.seq), SQLBind(head.hash),
                    SQLBind(head.checkpoint_seq), SQLBind(head.checkpoint_ms)
                )
                .run()
            // The closed chain's end must be signed, or its newest events could be removed without a trace.
            if head.seq > (head.checkpoint_seq ?? -1) {
                try await AuditCheckpoint.signed(kind: .head, seq: head.seq, head: head.hash, ms: now, keys: keys).insert(on: db)
                try await db.sql.update(AuditChainRegistry.table).set("checkpoint_seq", to: head.seq).set("checkpoint_ms", to: now)
                    .where("id", .equal, AuditCheckpoint.mainChain).run()
            }
        }
        if database.isPostgres {
            // In place: no copy of the table, and the old rows take the default.
            try await database.sql.raw("ALTER TABLE \(ident: AuditEvent.schema) ADD COLUMN chain_id TEXT NOT NULL DEFAULT 'main'").run()
            try await database.sql.raw("ALTER TABLE \(ident: AuditEvent.schema) ALTER COLUMN chain_id DROP DEFAULT").run()
            try await database.sql.raw("ALTER TABLE \(ident: AuditEvent.schema) DROP CONSTRAINT \(ident: "uq:audit_events.seq")").run()
            try await database.sql.raw(
                "ALTER TABLE \(ident: AuditEvent.schema) ADD CONSTRAINT \(ident: Self.uniqueName) UNIQUE (chain_id, seq)"
            ).run()
            try await database.sql.raw("DROP INDEX IF EXISTS \(ident: "audit_practice_idx")").run()
        } else {
            // SQLite cannot drop a table constraint: rebuild the table with the new one and copy every row.
            try await Self.rebuildEvents(on: database, withChain: true)
        }
        try await database.sqlIndex(name: "audit_practice_time_idx", on: AuditEvent.schema, columns: ["practice_id", "occurred_ms"])
        try await database.sqlIndex(name: "audit_checkpoints_chain_idx", on: AuditCheckpoint.table, columns: ["chain_id", "seq"])
        try await database.schema(AuditChainHead.table).delete()
        if !database.inTransaction { try? await AuditCheckpoint.publish(on: database) }
    }

    private struct MinimumMS: Decodable { var ms: Int64? }

    /// Recreates `audit_events` (SQLite) with `chain_id` and the (chain, seq) constraint, or without both for
    /// ``revert(on:)``; the rows keep every value.
    static func rebuildEvents(on database: any Database, withChain: Bool) async throws {
        let shared = [
            "id", "seq", "practice_id", "actor_id", "subject_id", "event", "ip", "user_agent", "details",
            "occurred_ms", "occurred_at", "prev_hash", "hash", "key_id",
        ]
        let rebuilt = AuditEvent.schema + "_rebuilt"
        try await database.transaction { db in
            var schema = db.schema(rebuilt)
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
                .field("key_id", .string)
            schema =
                withChain
                ? schema.field("chain_id", .string, .required).unique(on: "chain_id", "seq", name: Self.uniqueName)
                : schema.unique(on: "seq", name: "uq:audit_events.seq")
            try await schema.create()
            let columns = SQLList(shared.map { SQLIdentifier($0) })
            if withChain {
                try await db.sql.raw(
                    "INSERT INTO \(ident: rebuilt) (\(columns), chain_id) SELECT \(columns), 'main' FROM \(ident: AuditEvent.schema)"
                ).run()
            } else {
                try await db.sql.raw("INSERT INTO \(ident: rebuilt) (\(columns)) SELECT \(columns) FROM \(ident: AuditEvent.schema)").run()
            }
            try await db.sql.raw("DROP TABLE \(ident: AuditEvent.schema)").run()
            try await db.sql.raw("ALTER TABLE \(ident: rebuilt) RENAME TO \(ident: AuditEvent.schema)").run()
        }
    }

    /// Back to the single head row; refused while per-instance chains hold events, which the old layout cannot keep.
    func revert(on database: any Database) async throws {
        let others =
            try await database.sql.raw("SELECT COUNT(*) AS n FROM \(ident: AuditEvent.schema) WHERE chain_id <> 'main'").first(
                decoding: Count.self)?.n ?? 0
        guard others == 0 else {
            throw Abort(
                .conflict,
                reason: "The audit log has \(others) events in per-instance chains; they cannot be moved back into a single chain.")
        }
        let main = try await database.sql.select().columns(AuditChainRegistry.columns.map { SQLIdentifier($0) }).from(
            AuditChainRegistry.table
        )
        .where("id", .equal, AuditCheckpoint.mainChain).first(decoding: AuditChainRegistry.Row.self)
        try await database.schema(AuditChainHead.table)
            .field("id", .int, .required)
            .field("seq", .int64, .required)
            .field("hash", .string, .required)
            .field("checkpoint_seq", .int64)
            .field("checkpoint_ms", .int64)
            .unique(on: "id")
            .create()
        try await database.sql.insert(into: AuditChainHead.table)
            .columns("id", "seq", "hash", "checkpoint_seq", "checkpoint_ms")
            .values(
                SQLBind(1), SQLBind(main?.seq ?? 0), SQLBind(main?.hash ?? AuditChainHead.genesisHash), SQLBind(main?.checkpoint_seq),
                SQLBind(main?.checkpoint_ms)
            )
            .run()
        try await database.sql.raw("DELETE FROM \(ident: AuditCheckpoint.table) WHERE chain_id <> 'main'").run()
        try await database.sql.raw("DROP INDEX IF EXISTS \(ident: "audit_checkpoints_chain_idx")").run()
        try await database.sql.raw("DROP INDEX IF EXISTS \(ident: "audit_practice_time_idx")").run()
        if database.isPostgres {
            try await database.sql.raw("ALTER TABLE \(ident: AuditEvent.schema) DROP CONSTRAINT \(ident: Self.uniqueName)").run()
            try await database.sql.raw(
                "ALTER TABLE \(ident: AuditEvent.schema) ADD CONSTRAINT \(ident: "uq:audit_events.seq") UNIQUE (seq)"
            ).run()
            try await database.sql.raw("ALTER TABLE \(ident: AuditEvent.schema) DROP COLUMN chain_id").run()
        } else {
            try await Self.rebuildEvents(on: database, withChain: false)
        }
        try await database.sqlIndex(name: "audit_practice_idx", on: AuditEvent.schema, columns: ["practice_id", "seq"])
        try await database.schema(AuditChainRegistry.table).delete()
    }

    private struct Count: Decodable { var n: Int }
}
