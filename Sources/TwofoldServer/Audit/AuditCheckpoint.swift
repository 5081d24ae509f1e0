import Crypto
import Fluent
import Foundation
import SQLKit
import TwofoldCore
import Vapor

/// A signed statement "chain `chain` had `seq` events ending in `head` at `ms`". Kept in the database and, one JSON
/// line each, in `audit-checkpoints.jsonl`: someone who rewrites the database cannot sign a new one, so removing the
/// newest events and rolling the head back, or recomputing the chain, contradicts a checkpoint.
struct AuditCheckpoint: Codable, Sendable, Equatable {
    enum Kind: String, Codable, Sendable {
        /// Where the unkeyed SHA-256 segment (events written before keyed links) ends; written once, by the migration.
        case legacyEnd = "legacy-end"
        /// The head of a keyed chain.
        case head
        /// A per-instance chain was registered (seq 0, the all-zero head): signed before its first event, so a chain
        /// removed with its registry row is still named by the checkpoints.
        case open
    }

    static let table = "audit_checkpoints"
    static let mainChain = "main"

    var chain: String
    var kind: Kind
    var seq: Int64
    var head: String
    var ms: Int64
    var keyID: String
    var signature: String

    enum CodingKeys: String, CodingKey {
        case chain, kind, seq, head, ms
        case keyID = "key_id"
        case signature
    }

    var time: Date { Date(timeIntervalSince1970: Double(ms) / 1000) }

    /// What is signed: length-prefixed fields under a purpose label.
    var signedMessage: [UInt8] {
        let fields = ["twofold-audit-checkpoint-v1", chain, kind.rawValue, String(seq), head, String(ms), keyID]
        return Array(fields.map { "\($0.utf8.count):\($0)" }.joined(separator: "|").utf8)
    }

    static func signed(chain: String = mainChain, kind: Kind, seq: Int64, head: String, ms: Int64, keys: AuditKeys) throws
        -> AuditCheckpoint
    {
        var checkpoint = AuditCheckpoint(chain: chain, kind: kind, seq: seq, head: head, ms: ms, keyID: keys.signingKeyID, signature: "")
        checkpoint.signature = try keys.signingKey.signature(for: checkpoint.signedMessage).base64EncodedString()
        return checkpoint
    }

    /// Why the signature does not hold, or `nil` when it does.
    func signatureProblem(keys: AuditKeys) -> String? {
        guard let key = keys.publicKeys[keyID] else {
            return
                "is signed with key \(keyID), which is not one of this server's (add the old sealing key to TWOFOLD_PREVIOUS_SECRET_KEYS)"
        }
        guard let signature = Data(base64Encoded: signature), key.isValidSignature(signature, for: signedMessage) else {
            return "has a signature that does not verify: it was forged or changed"
        }
        return nil
    }

    var label: String {
        kind == .open
            ? "opening checkpoint of chain \(chain) (\(time.ISO8601Format()))" : "checkpoint at event #\(seq) (\(time.ISO8601Format()))"
    }

    var jsonLine: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    // MARK: Database

    func insert(on database: any Database) async throws {
        try await database.sql.insert(into: Self.table)
            .columns("id", "chain_id", "kind", "seq", "head", "created_ms", "key_id", "signature")
            .values(
                SQLBind(UUID()), SQLBind(chain), SQLBind(kind.rawValue), SQLBind(seq), SQLBind(head), SQLBind(ms), SQLBind(keyID),
                SQLBind(signature)
            )
            .run()
    }

    private struct Row: Decodable {
        var chain_id: String
        var kind: String
        var seq: Int64
        var head: String
        var created_ms: Int64
        var key_id: String
        var signature: String
    }

    /// Every checkpoint in the database (optionally only those of `chain` after `seq`), by chain and then oldest
    /// first. A row whose kind is not one Twofold writes reads as a head checkpoint, whose signature then fails.
    static func all(on database: any Database, chain: String? = nil, after seq: Int64? = nil) async throws -> [AuditCheckpoint] {
        var query = database.sql.select().columns("chain_id", "kind", "seq", "head", "created_ms", "key_id", "signature").from(table)
        if let chain { query = query.where("chain_id", .equal, chain) }
        if let seq { query = query.where("seq", .greaterThan, seq) }
        return try await query.orderBy("chain_id").orderBy("seq").orderBy("created_ms").all(decoding: Row.self).map {
            AuditCheckpoint(
                chain: $0.chain_id, kind: Kind(rawValue: $0.kind) ?? .head, seq: $0.seq, head: $0.head, ms: $0.created_ms,
                keyID: $0.key_id, signature: $0.signature)
        }
    }

    // MARK: File

    /// Appends every committed checkpoint not yet published to the checkpoint file, logs each at info level and
    /// hands each to the shippers (``AuditShipping``). Safe to call from several tasks: each checkpoint goes out once
    /// per process.
    static func publish(on database: any Database) async throws {
        let context = try AuditContext.of(database)
        var known: [String: Int64]?
        context.publishing { published in
            known = published
            return published
        }
        if known == nil { known = try context.policy.file.map { try lastSeqs(inFile: $0) } ?? [:] }
        let since = known ?? [:]
        // Only chains whose newest checkpoint is past what was published: one registry read and a query per such chain.
        var fresh: [AuditCheckpoint] = []
        for chain in try await AuditChainRegistry.all(on: database) where (chain.checkpoint_seq ?? -1) > (since[chain.id] ?? -1) {
            fresh += try await all(on: database, chain: chain.id, after: since[chain.id] ?? -1)
        }
        let file = context.policy.file
        var shipped: [AuditCheckpoint] = []
        try context.publishing { published in
            var published = published ?? since
            let unpublished = fresh.filter { $0.seq > (published[$0.chain] ?? -1) }
            guard !unpublished.isEmpty else { return published }
            if let file { try append(unpublished.map(\.jsonLine), to: file) }
            for checkpoint in unpublished {
                context.logger.info(
                    "Audit checkpoint",
                    metadata: [
                        "audit_checkpoint": .string(checkpoint.jsonLine), "chain": .string(checkpoint.chain),
                        "seq": .stringConvertible(checkpoint.seq), "head": .string(checkpoint.head),
                    ])
                published[checkpoint.chain] = max(published[checkpoint.chain] ?? -1, checkpoint.seq)
            }
            shipped = unpublished
            return published
        }
        if !shipped.isEmpty { context.shipping?.ship(shipped) }
    }

    private static func append(_ lines: [String], to path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o644]) else {
                throw Abort(.internalServerError, reason: "The audit checkpoint file \(path) cannot be created.")
            }
        }
        guard let handle = FileHandle(forWritingAtPath: path) else {
            throw Abort(.internalServerError, reason: "The audit checkpoint file \(path) cannot be opened for writing.")
        }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(lines.map { $0 + "\n" }.joined().utf8))
        try handle.synchronize()
    }

    /// Per chain, the newest checkpoint already in the file.
    private static func lastSeqs(inFile path: String) throws -> [String: Int64] {
        guard FileManager.default.fileExists(atPath: path) else { return [:] }
        var seqs: [String: Int64] = [:]
        for (_, checkpoint) in try read(file: path) { seqs[checkpoint.chain] = max(seqs[checkpoint.chain] ?? -1, checkpoint.seq) }
        return seqs
    }

    /// Reads a checkpoint file: one JSON object per line; blank lines are skipped.
    /// - Throws: a ``CLIError`` naming the first line that is not a checkpoint.
    static func read(file path: String) throws -> [(line: Int, checkpoint: AuditCheckpoint)] {
        guard let data = FileManager.default.contents(atPath: path) else { throw CLIError("cannot read the checkpoint file \(path)") }
        var result: [(line: Int, checkpoint: AuditCheckpoint)] = []
        for (index, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            guard let checkpoint = try? JSONDecoder().decode(AuditCheckpoint.self, from: Data(text.utf8)) else {
                throw CLIError("line \(index + 1) of \(path) is not an audit checkpoint")
            }
            result.append((index + 1, checkpoint))
        }
        return result
    }
}

/// Keyed links, checkpoints and a key id per event. The events written so far stay as they are: an unkeyed first
/// segment, sealed by a signed `legacy-end` checkpoint of the head as it is now; new events continue from that head.
struct AddKeyedAuditChain: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(AuditEvent.schema).field("key_id", .string).update()
        try await database.schema(AuditChainHead.table).field("checkpoint_seq", .int64).update()
        try await database.schema(AuditChainHead.table).field("checkpoint_ms", .int64).update()
        try await database.schema(AuditCheckpoint.table)
            .id()
            .field("chain_id", .string, .required)
            .field("kind", .string, .required)
            .field("seq", .int64, .required)
            .field("head", .string, .required)
            .field("created_ms", .int64, .required)
            .field("key_id", .string, .required)
            .field("signature", .string, .required)
            .create()
        try await database.sqlIndex(name: "audit_checkpoints_seq_idx", on: AuditCheckpoint.table, columns: ["seq"])
        try await Self.sealLegacySegment(on: database, now: Date())
    }

    /// Signs the current head as the end of the unkeyed segment and makes it the last checkpoint.
    static func sealLegacySegment(on database: any Database, now: Date) async throws {
        let keys = try AuditContext.of(database).keys
        try await database.transaction { db in
            guard
                let head = try await db.sql.raw("SELECT seq, hash FROM \(ident: AuditChainHead.table) WHERE id = 1").first(
                    decoding: AuditLog.HeadRow.self)
            else { throw Abort(.internalServerError, reason: "The audit log has no head row.") }
            let ms = AuditLog.milliseconds(now)
            try await AuditCheckpoint.signed(kind: .legacyEnd, seq: head.seq, head: head.hash, ms: ms, keys: keys).insert(on: db)
            try await db.sql.update(AuditChainHead.table).set("checkpoint_seq", to: head.seq).set("checkpoint_ms", to: ms).where(
                "id", .equal, 1
            ).run()
        }
        if !database.inTransaction { try? await AuditCheckpoint.publish(on: database) }
    }

    func revert(on database: any Database) async throws {
        try await database.schema(AuditCheckpoint.table).delete()
        try await database.schema(AuditChainHead.table).deleteField("checkpoint_ms").update()
        try await database.schema(AuditChainHead.table).deleteField("checkpoint_seq").update()
        try await database.schema(AuditEvent.schema).deleteField("key_id").update()
    }
}
