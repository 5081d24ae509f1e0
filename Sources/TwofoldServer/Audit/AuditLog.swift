import Fluent
import Foundation
import SQLKit
import TwofoldCore
import Vapor

/// Who did what to whom, from where: the particulars of one audit entry.
struct AuditEntry: Sendable {
    var type: AuditEventType
    var practiceID: UUID?
    var actorID: UUID?
    var subjectID: UUID?
    var ip: String = ""
    var userAgent: String = ""
    var details: [String: String] = [:]
}

/// Appends to and verifies the audit log: a chain of HMAC-linked events, with signed checkpoints of its head.
enum AuditLog {
    /// Appends one event, and a signed checkpoint when one is due. Call it with the database handle of any
    /// transaction the caller is in; outside one, a new checkpoint also goes to the checkpoint file.
    static func append(_ entry: AuditEntry, on database: any Database, now: Date) async throws {
        let context = try AuditContext.of(database)
        let keys = context.keys, policy = context.policy
        // Security notifications: rendered first (nil, without a query, for events that notify nobody), queued below
        // with the event, so a rolled-back change sends nothing and a committed one always sends.
        let notification = try await context.notifier?.prepare(entry, on: database, now: now)
        let checkpointed = try await database.transaction { db -> Bool in
            // Advancing the head row first takes its write lock, so concurrent writers
            // (several instances on one PostgreSQL) line up and the chain stays linear.
            guard let head = try await db.sql.raw("""
                UPDATE \(ident: AuditChainHead.table) SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash, checkpoint_seq, checkpoint_ms
                """).first(decoding: HeadRow.self)
            else { throw Abort(.internalServerError, reason: "The audit log is not initialised; run `twofold migrate`.") }
            let occurredMS = milliseconds(now)
            let content = AuditChain.Content(
                seq: head.seq, occurredMS: occurredMS, practiceID: entry.practiceID, actorID: entry.actorID,
                subjectID: entry.subjectID, event: entry.type.rawValue, ip: entry.ip,
                userAgent: String(entry.userAgent.prefix(256)), details: AuditChain.detailsJSON(entry.details))
            guard let mac = AuditChain.mac(previous: head.hash, content: content, keyID: keys.macKeyID, keys: keys)
            else { preconditionFailure("the current audit key is always configured") }
            // A plain INSERT: this runs for every security event, and building a Fluent model costs reflection.
            try await db.sql.insert(into: AuditEvent.schema)
                .columns("id", "seq", "practice_id", "actor_id", "subject_id", "event", "ip", "user_agent", "details",
                         "occurred_ms", "occurred_at", "prev_hash", "hash", "key_id")
                .values(SQLBind(UUID()), SQLBind(content.seq), SQLBind(content.practiceID), SQLBind(content.actorID), SQLBind(content.subjectID),
                        SQLBind(content.event), SQLBind(content.ip), SQLBind(content.userAgent), SQLBind(content.details),
                        SQLBind(occurredMS), SQLBind(date(occurredMS)), SQLBind(head.hash), SQLBind(mac), SQLBind(keys.macKeyID))
                .run()
            var update = db.sql.update(AuditChainHead.table).set("hash", to: mac)
            let due = head.isCheckpointDue(now: occurredMS, policy: policy)
            if due {
                try await AuditCheckpoint.signed(kind: .head, seq: head.seq, head: mac, ms: occurredMS, keys: keys).insert(on: db)
                update = update.set("checkpoint_seq", to: head.seq).set("checkpoint_ms", to: occurredMS)
            }
            try await update.where("id", .equal, 1).run()
            try await notification?.enqueue(on: db)
            return due
        }
        // Inside a caller's transaction the checkpoint is not committed yet; the maintenance task publishes it.
        if checkpointed, !database.inTransaction { try? await AuditCheckpoint.publish(on: database) }
    }

    /// Writes a checkpoint of the head when events came after the last one and it is older than the policy's
    /// interval (`force`: whenever events came after it), then publishes what is not yet in the file.
    /// The maintenance task calls this, so a quiet log is checkpointed too.
    static func checkpointIfDue(on database: any Database, now: Date, force: Bool = false) async throws {
        let context = try AuditContext.of(database)
        let keys = context.keys, policy = context.policy
        try await database.transaction { db in
            guard let head = try await db.sql.raw("""
                UPDATE \(ident: AuditChainHead.table) SET seq = seq WHERE id = 1 RETURNING seq, hash, checkpoint_seq, checkpoint_ms
                """).first(decoding: HeadRow.self)
            else { throw Abort(.internalServerError, reason: "The audit log is not initialised; run `twofold migrate`.") }
            let ms = milliseconds(now)
            guard head.seq > (head.checkpoint_seq ?? -1), force || ms - (head.checkpoint_ms ?? 0) >= Int64(policy.interval * 1000) else { return }
            try await AuditCheckpoint.signed(kind: .head, seq: head.seq, head: head.hash, ms: ms, keys: keys).insert(on: db)
            try await db.sql.update(AuditChainHead.table).set("checkpoint_seq", to: head.seq).set("checkpoint_ms", to: ms).where("id", .equal, 1).run()
        }
        if !database.inTransaction { try await AuditCheckpoint.publish(on: database) }
    }

    static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }
    static func date(_ ms: Int64) -> Date { Date(timeIntervalSince1970: Double(ms) / 1000) }

    struct HeadRow: Decodable {
        var seq: Int64
        var hash: String
        var checkpoint_seq: Int64?
        var checkpoint_ms: Int64?

        /// Event `seq` was just appended: due `every` events after the last checkpoint, or `interval` after it.
        func isCheckpointDue(now: Int64, policy: AuditCheckpointPolicy) -> Bool {
            seq - (checkpoint_seq ?? 0) >= policy.every || now - (checkpoint_ms ?? 0) >= Int64(policy.interval * 1000)
        }
    }

    /// The outcome of walking the chain from the first event to the head.
    struct Verification: Sendable {
        var checked: Int
        var checkpoints: Int = 0
        var problem: String?
        var isIntact: Bool { problem == nil }
    }

    /// Walks every event in order and checks each link, the shown time and every checkpoint in the database and in
    /// `external` (read from a checkpoint file, with its line numbers); names the first problem.
    static func verify(on database: any Database, keys: AuditKeys? = nil,
                       external: [(line: Int, checkpoint: AuditCheckpoint)] = [], source: String = "the checkpoint file") async throws -> Verification {
        let keys = try keys ?? AuditContext.of(database).keys
        let stored = try await AuditCheckpoint.all(on: database)
        func failed(_ checked: Int, _ problem: String) -> Verification {
            Verification(checked: checked, checkpoints: stored.count + external.count, problem: problem)
        }

        // Every checkpoint must carry a good signature; the file's must also be in the database.
        for checkpoint in stored {
            if let problem = checkpoint.signatureProblem(keys: keys) { return failed(0, "the \(checkpoint.label) in the database \(problem)") }
        }
        for (line, checkpoint) in external {
            if let problem = checkpoint.signatureProblem(keys: keys) { return failed(0, "the \(checkpoint.label) on line \(line) of \(source) \(problem)") }
            if !stored.contains(checkpoint) {
                return failed(0, "the \(checkpoint.label) on line \(line) of \(source) is missing from the database: checkpoints were removed, or the log was rewritten")
            }
        }
        // The signed end of the unkeyed segment: every later event must be keyed.
        let legacyEnds = Set(stored.filter { $0.kind == .legacyEnd }.map(\.seq))
        guard legacyEnds.count == 1, let legacyEnd = legacyEnds.first else {
            return failed(0, legacyEnds.isEmpty
                ? "no signed checkpoint records where the keyed chain begins: checkpoints were removed, or the chain was recomputed without the audit key"
                : "signed checkpoints disagree on where the keyed chain begins")
        }
        var expectations: [Int64: [(String, String)]] = [:]
        for checkpoint in stored { expectations[checkpoint.seq, default: []].append((checkpoint.head, "the \(checkpoint.label) in the database")) }
        for (line, checkpoint) in external { expectations[checkpoint.seq, default: []].append((checkpoint.head, "the \(checkpoint.label) on line \(line) of \(source)")) }
        if legacyEnd == 0, let mismatch = expectations[0]?.first(where: { $0.0 != AuditChainHead.genesisHash }) {
            return failed(0, "\(mismatch.1) does not match the start of the chain")
        }

        var previous = AuditChainHead.genesisHash
        var expectedSeq: Int64 = 1
        var checked = 0
        let pageSize = 1000
        while true {
            let page = try await AuditEvent.query(on: database)
                .filter(\.$seq >= expectedSeq).sort(\.$seq).limit(pageSize).all()
            for event in page {
                let name = "event #\(event.seq) (\(event.event))"
                if event.seq != expectedSeq {
                    return failed(checked, "event #\(expectedSeq) is missing (next is #\(event.seq)): a row was removed")
                }
                if event.prevHash != previous {
                    return failed(checked, "\(name) does not link to event #\(event.seq - 1): a row was removed, inserted or moved")
                }
                let content = AuditChain.Content(
                    seq: event.seq, occurredMS: event.occurredMS, practiceID: event.practiceID, actorID: event.actorID,
                    subjectID: event.subjectID, event: event.event, ip: event.ip, userAgent: event.userAgent, details: event.details)
                if event.seq <= legacyEnd {
                    if event.keyID != nil || AuditChain.hash(previous: previous, content: content) != event.hash {
                        return failed(checked, "\(name) was changed after it was written")
                    }
                } else {
                    guard let keyID = event.keyID else {
                        return failed(checked, "\(name) has no keyed link although keyed links began after event #\(legacyEnd): the chain was recomputed without the audit key")
                    }
                    guard let mac = AuditChain.mac(previous: previous, content: content, keyID: keyID, keys: keys) else {
                        return failed(checked, "\(name) is linked with audit key \(keyID), which is not configured (add the old sealing key to TWOFOLD_PREVIOUS_SECRET_KEYS)")
                    }
                    if !ConstantTime.equals(Array(mac.utf8), Array(event.hash.utf8)) {
                        return failed(checked, "\(name) was changed after it was written, or its link was recomputed without the audit key")
                    }
                }
                if abs(event.occurredAt.timeIntervalSince1970 * 1000 - Double(event.occurredMS)) >= 1 {
                    return failed(checked, "\(name) shows the time \(event.occurredAt.ISO8601Format()) but was written at \(date(event.occurredMS).ISO8601Format()): its time was changed")
                }
                if let mismatch = expectations[event.seq]?.first(where: { $0.0 != event.hash }) {
                    return failed(checked, event.seq == legacyEnd
                        ? "\(name) does not match \(mismatch.1): events up to #\(event.seq) were changed and their chain recomputed"
                        : "\(name) does not match \(mismatch.1): the log was rewritten")
                }
                previous = event.hash
                expectedSeq += 1
                checked += 1
            }
            if page.count < pageSize { break }
        }
        let last = expectedSeq - 1
        if let beyond = expectations.keys.filter({ $0 > last }).max(), let source = expectations[beyond]?.first {
            return failed(checked, "the log ends at event #\(last) but \(source.1) records event #\(beyond): the newest events were removed and the head rolled back")
        }
        let head = try await database.sql.raw("SELECT seq, hash FROM \(ident: AuditChainHead.table) WHERE id = 1").first(decoding: HeadRow.self)
        if let head, head.seq != last || head.hash != previous {
            return failed(checked, "the chain ends at event #\(last) but the head records #\(head.seq): the newest events were removed or altered")
        }
        return Verification(checked: checked, checkpoints: stored.count + external.count, problem: nil)
    }
}

extension Request {
    /// Records a security event with this request's client address and browser.
    func audit(_ type: AuditEventType, practiceID: UUID?, actorID: UUID? = nil, subjectID: UUID? = nil, details: [String: String] = [:], on database: (any Database)? = nil) async throws {
        let entry = AuditEntry(
            type: type, practiceID: practiceID, actorID: actorID, subjectID: subjectID ?? actorID,
            ip: clientIP, userAgent: headers.first(name: .userAgent) ?? "", details: details)
        try await AuditLog.append(entry, on: database ?? db, now: now)
    }
}

/// Records audit events for one caller (its client address and browser), for services that take their
/// dependencies explicitly instead of a `Request`.
struct AuditRecorder: Sendable {
    var database: any Database
    var now: Date
    var ip: String
    var userAgent: String

    func callAsFunction(_ type: AuditEventType, practiceID: UUID?, actorID: UUID? = nil, subjectID: UUID? = nil, details: [String: String] = [:]) async throws {
        let entry = AuditEntry(type: type, practiceID: practiceID, actorID: actorID, subjectID: subjectID ?? actorID,
                               ip: ip, userAgent: userAgent, details: details)
        try await AuditLog.append(entry, on: database, now: now)
    }
}

extension Request {
    var auditRecorder: AuditRecorder {
        AuditRecorder(database: db, now: now, ip: clientIP, userAgent: headers.first(name: .userAgent) ?? "")
    }
}
