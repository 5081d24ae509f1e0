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

/// Appends to and verifies the audit log: chains of HMAC-linked events, one per writer (``AuditChainRegistry``), with
/// signed checkpoints of their heads.
enum AuditLog {
    /// Appends one event to one of this process's chains, and a signed checkpoint when one is due. Call it with the
    /// database handle of any transaction the caller is in: the event is then written in that transaction. Outside
    /// one, concurrent appends are committed together (``AuditGroupCommit``) and this returns once the transaction
    /// holding the event has committed; a new checkpoint is also published (checkpoint file, log, shipping).
    static func append(_ entry: AuditEntry, on database: any Database, now: Date) async throws {
        let context = try AuditContext.of(database)
        // Security notifications: rendered first (nil, without a query, for events that notify nobody), queued with
        // the event, so a rolled-back change sends nothing and a committed one always sends.
        let event = Pending(
            entry: entry, occurredMS: milliseconds(now), notification: try await context.notifier?.prepare(entry, on: database, now: now))
        if database.inTransaction {
            _ = try await write([event], chain: context.writerChain(), on: database)
        } else {
            try await context.groupCommit(for: context.writerChain()).append(event, on: database)
        }
    }

    /// One event waiting to be written.
    struct Pending: Sendable {
        var entry: AuditEntry
        var occurredMS: Int64
        var notification: SecurityNotifier.Prepared?
    }

    /// Writes `events` to `chain`, in order, in one transaction: the head row moves on by their number (which takes
    /// the chain's write lock; only appends to the same chain wait), each event is linked to the one before it, all
    /// go in with one INSERT, and a signed checkpoint is added when one is due.
    /// - Returns: whether a checkpoint was written (or the chain opened), to publish once committed.
    static func write(_ events: [Pending], chain: String, on database: any Database) async throws -> Bool {
        guard let last = events.last else { return false }
        let context = try AuditContext.of(database)
        let keys = context.keys, policy = context.policy
        return try await database.transaction { db -> Bool in
            let count = Int64(events.count)
            var (head, opened) = (try await advance(chain, by: count, on: db), false)
            if head == nil {
                try await AuditChainRegistry.register(chain, instance: context.instance, on: db, ms: events[0].occurredMS, keys: keys)
                (head, opened) = (try await advance(chain, by: count, on: db), true)
            }
            guard let head else { throw Abort(.internalServerError, reason: "The audit log is not initialised; run `twofold migrate`.") }
            // A plain multi-row INSERT: this runs for every security event, and building Fluent models costs reflection.
            var insert = db.sql.insert(into: AuditEvent.schema).columns(
                "id", "chain_id", "seq", "practice_id", "actor_id", "subject_id", "event", "ip", "user_agent", "details",
                "occurred_ms", "occurred_at", "prev_hash", "hash", "key_id")
            var previous = head.hash
            for (offset, event) in events.enumerated() {
                let entry = event.entry
                let content = AuditChain.Content(
                    seq: head.seq - count + 1 + Int64(offset), occurredMS: event.occurredMS, practiceID: entry.practiceID,
                    actorID: entry.actorID, subjectID: entry.subjectID, event: entry.type.rawValue, ip: entry.ip,
                    userAgent: String(entry.userAgent.prefix(256)), details: AuditChain.detailsJSON(entry.details), chain: chain)
                guard let mac = AuditChain.mac(previous: previous, content: content, keyID: keys.macKeyID, keys: keys)
                else { preconditionFailure("the current audit key is always configured") }
                insert = insert.values(
                    SQLBind(UUID()), SQLBind(chain), SQLBind(content.seq), SQLBind(content.practiceID), SQLBind(content.actorID),
                    SQLBind(content.subjectID), SQLBind(content.event), SQLBind(content.ip), SQLBind(content.userAgent),
                    SQLBind(content.details), SQLBind(event.occurredMS), SQLBind(date(event.occurredMS)), SQLBind(previous), SQLBind(mac),
                    SQLBind(keys.macKeyID))
                previous = mac
            }
            try await insert.run()
            var update = db.sql.update(AuditChainRegistry.table).set("hash", to: previous)
            let due = head.isCheckpointDue(now: last.occurredMS, policy: policy)
            if due {
                try await AuditCheckpoint.signed(chain: chain, kind: .head, seq: head.seq, head: previous, ms: last.occurredMS, keys: keys)
                    .insert(on: db)
                update = update.set("checkpoint_seq", to: head.seq).set("checkpoint_ms", to: last.occurredMS)
            }
            try await update.where("id", .equal, chain).run()
            for event in events { try await event.notification?.enqueue(on: db) }
            return due || opened
        }
    }

    /// Moves the head of `chain` on by `count` events and returns it (its seq is the last of them), or `nil` when the
    /// chain is not registered yet.
    private static func advance(_ chain: String, by count: Int64, on db: any Database) async throws -> HeadRow? {
        try await db.sql.raw(
            """
            UPDATE \(ident: AuditChainRegistry.table) SET seq = seq + \(bind: count) WHERE id = \(bind: chain) RETURNING seq, hash, checkpoint_seq, checkpoint_ms
            """
        ).first(decoding: HeadRow.self)
    }

    /// Writes a checkpoint of every chain's head that has events after its last checkpoint, when that is older than
    /// the policy's interval (`force`: whenever events came after it), then publishes what is not yet published.
    /// The maintenance task calls this, so a quiet chain, and the chain of a process that has stopped, is
    /// checkpointed too.
    static func checkpointIfDue(on database: any Database, now: Date, force: Bool = false) async throws {
        let context = try AuditContext.of(database)
        let keys = context.keys, policy = context.policy
        let ms = milliseconds(now)
        let pending = try await database.sql.raw(
            """
            SELECT id FROM \(ident: AuditChainRegistry.table) WHERE seq > COALESCE(checkpoint_seq, -1) ORDER BY created_ms, id
            """
        ).all(decoding: ChainID.self)
        for chain in pending.map(\.id) {
            try await database.transaction { db in
                guard
                    let head = try await db.sql.raw(
                        """
                        UPDATE \(ident: AuditChainRegistry.table) SET seq = seq WHERE id = \(bind: chain) RETURNING seq, hash, checkpoint_seq, checkpoint_ms
                        """
                    ).first(decoding: HeadRow.self)
                else { return }
                guard head.seq > (head.checkpoint_seq ?? -1), force || ms - (head.checkpoint_ms ?? 0) >= Int64(policy.interval * 1000)
                else { return }
                try await AuditCheckpoint.signed(chain: chain, kind: .head, seq: head.seq, head: head.hash, ms: ms, keys: keys).insert(
                    on: db)
                try await db.sql.update(AuditChainRegistry.table).set("checkpoint_seq", to: head.seq).set("checkpoint_ms", to: ms)
                    .where("id", .equal, chain).run()
            }
        }
        if !database.inTransaction { try await AuditCheckpoint.publish(on: database) }
    }

    private struct ChainID: Decodable { var id: String }

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

    /// The outcome of walking every chain from its first event to its head.
    struct Verification: Sendable {
        var checked: Int
        var checkpoints: Int = 0
        var chains: Int = 0
        var problem: String?
        var isIntact: Bool { problem == nil }
    }

    /// Walks every registered chain in order and checks each link, the shown time and every checkpoint in the
    /// database and in `external` (read from a checkpoint file, with its line numbers); checks that the registry,
    /// the checkpoints and the events name the same chains; names the first problem.
    static func verify(
        on database: any Database, keys: AuditKeys? = nil,
        external: [(line: Int, checkpoint: AuditCheckpoint)] = [], source: String = "the checkpoint file"
    ) async throws -> Verification {
        let keys = try keys ?? AuditContext.of(database).keys
        // Checkpoints before the registry: every head a checkpoint read here names is then at or below the registry's.
        var stored = try await AuditCheckpoint.all(on: database)
        let chains = try await AuditChainRegistry.all(on: database)
        var checked = 0
        func failed(_ problem: String) -> Verification {
            Verification(checked: checked, checkpoints: stored.count + external.count, chains: chains.count, problem: problem)
        }

        // Every checkpoint must carry a good signature.
        for checkpoint in stored {
            if let problem = checkpoint.signatureProblem(keys: keys) { return failed("the \(checkpoint.label) in the database \(problem)") }
        }
        for (line, checkpoint) in external {
            if let problem = checkpoint.signatureProblem(keys: keys) {
                return failed("the \(checkpoint.label) on line \(line) of \(source) \(problem)")
            }
        }
        // The registry, the checkpoints and the events must name the same chains.
        let registered = Set(chains.map(\.id))
        for (line, checkpoint) in external where !registered.contains(checkpoint.chain) {
            return failed(
                "chain \(checkpoint.chain), named by the \(checkpoint.label) on line \(line) of \(source), is not in the registry: the chain was removed together with its registry row"
            )
        }
        for checkpoint in stored where !registered.contains(checkpoint.chain) {
            return failed(
                "chain \(checkpoint.chain), named by the \(checkpoint.label) in the database, is not in the registry: its registry row was removed"
            )
        }
        let eventChains = try await database.sql.raw("SELECT DISTINCT chain_id FROM \(ident: AuditEvent.schema)").all(
            decoding: EventChain.self
        ).map(\.chain_id)
        if let stray = eventChains.sorted().first(where: { !registered.contains($0) }) {
            return failed(
                "events of chain \(stray) are in the log but the chain is not in the registry: its registry row was removed, or the events were inserted"
            )
        }
        // The file's checkpoints must also be in the database.
        for (line, checkpoint) in external where !stored.contains(checkpoint) {
            return failed(
                "the \(checkpoint.label) on line \(line) of \(source) is missing from the database: checkpoints were removed, or the log was rewritten"
            )
        }

        for chain in chains {
            var own = stored.filter { $0.chain == chain.id }
            if chain.id != AuditCheckpoint.mainChain, !own.contains(where: { $0.kind == .open }) {
                // Registered after the checkpoints were read: read its own again.
                own = try await AuditCheckpoint.all(on: database, chain: chain.id)
                stored += own.filter { !stored.contains($0) }
                if let problem = own.lazy.compactMap({ $0.signatureProblem(keys: keys) }).first {
                    return failed("a checkpoint of chain \(chain.id) in the database \(problem)")
                }
                guard own.contains(where: { $0.kind == .open && $0.seq == 0 && $0.head == AuditChainHead.genesisHash }) else {
                    return failed(
                        "chain \(chain.id) (\(chain.instance)) has no signed opening checkpoint: its registry row was forged, or its checkpoints were removed"
                    )
                }
            }
            let externalOwn = external.filter { $0.checkpoint.chain == chain.id }
            if let problem = try await verify(
                chain: chain, on: database, keys: keys, stored: own, external: externalOwn, source: source, checked: &checked)
            {
                return failed(problem)
            }
        }
        return Verification(checked: checked, checkpoints: stored.count + external.count, chains: chains.count, problem: nil)
    }

    private struct EventChain: Decodable { var chain_id: String }

    /// Walks one chain up to the head its registry row recorded; `nil` when it holds.
    private static func verify(
        chain: AuditChainRegistry.Row, on database: any Database, keys: AuditKeys, stored: [AuditCheckpoint],
        external: [(line: Int, checkpoint: AuditCheckpoint)], source: String, checked: inout Int
    ) async throws -> String? {
        let isMain = chain.id == AuditCheckpoint.mainChain
        let label = isMain ? "" : " of chain \(chain.id)"
        // The main chain's signed end of the unkeyed segment: every later event must be keyed.
        var legacyEnd: Int64 = 0
        if isMain {
            let legacyEnds = Set(stored.filter { $0.kind == .legacyEnd }.map(\.seq))
            guard legacyEnds.count == 1, let end = legacyEnds.first else {
                return legacyEnds.isEmpty
                    ? "no signed checkpoint records where the keyed chain begins: checkpoints were removed, or the chain was recomputed without the audit key"
                    : "signed checkpoints disagree on where the keyed chain begins"
            }
            legacyEnd = end
        }
        var expectations: [Int64: [(String, String)]] = [:]
        for checkpoint in stored {
            expectations[checkpoint.seq, default: []].append((checkpoint.head, "the \(checkpoint.label)\(label) in the database"))
        }
        for (line, checkpoint) in external {
            expectations[checkpoint.seq, default: []].append(
                (checkpoint.head, "the \(checkpoint.label)\(label) on line \(line) of \(source)"))
        }
        if let mismatch = expectations[0]?.first(where: { $0.0 != AuditChainHead.genesisHash }) {
            return "\(mismatch.1) does not match the start of the chain"
        }

        var previous = AuditChainHead.genesisHash
        var expectedSeq: Int64 = 1
        let pageSize = 1000
        while expectedSeq <= chain.seq {
            let page = try await AuditEvent.query(on: database).filter(\.$chainID == chain.id)
                .filter(\.$seq >= expectedSeq).filter(\.$seq <= chain.seq).sort(\.$seq).limit(pageSize).all()
            for event in page {
                let name = "event #\(event.seq) (\(event.event))\(label)"
                if event.seq != expectedSeq {
                    return "event #\(expectedSeq)\(label) is missing (next is #\(event.seq)): a row was removed"
                }
                if event.prevHash != previous {
                    return "\(name) does not link to event #\(event.seq - 1): a row was removed, inserted or moved"
                }
                let content = AuditChain.Content(
                    seq: event.seq, occurredMS: event.occurredMS, practiceID: event.practiceID, actorID: event.actorID,
                    subjectID: event.subjectID, event: event.event, ip: event.ip, userAgent: event.userAgent, details: event.details,
                    chain: event.chainID)
                if isMain, event.seq <= legacyEnd {
                    if event.keyID != nil || AuditChain.hash(previous: previous, content: content) != event.hash {
                        return "\(name) was changed after it was written"
                    }
                } else {
                    guard let keyID = event.keyID else {
                        return isMain
                            ? "\(name) has no keyed link although keyed links began after event #\(legacyEnd): the chain was recomputed without the audit key"
                            : "\(name) has no keyed link: the chain was recomputed without the audit key"
                    }
                    guard let mac = AuditChain.mac(previous: previous, content: content, keyID: keyID, keys: keys) else {
                        return
                            "\(name) is linked with audit key \(keyID), which is not configured (add the old sealing key to TWOFOLD_PREVIOUS_SECRET_KEYS)"
                    }
                    if !ConstantTime.equals(Array(mac.utf8), Array(event.hash.utf8)) {
                        return
                            "\(name) was changed after it was written, moved from another chain, or its link was recomputed without the audit key"
                    }
                }
                if abs(event.occurredAt.timeIntervalSince1970 * 1000 - Double(event.occurredMS)) >= 1 {
                    return
                        "\(name) shows the time \(event.occurredAt.ISO8601Format()) but was written at \(date(event.occurredMS).ISO8601Format()): its time was changed"
                }
                if let mismatch = expectations[event.seq]?.first(where: { $0.0 != event.hash }) {
                    return isMain && event.seq == legacyEnd
                        ? "\(name) does not match \(mismatch.1): events up to #\(event.seq) were changed and their chain recomputed"
                        : "\(name) does not match \(mismatch.1): the log was rewritten"
                }
                previous = event.hash
                expectedSeq += 1
                checked += 1
            }
            if page.count < pageSize { break }
        }
        let last = expectedSeq - 1
        if let beyond = expectations.keys.filter({ $0 > last }).max(), let source = expectations[beyond]?.first {
            return
                "chain \(chain.id) ends at event #\(last) but \(source.1) records event #\(beyond): the newest events were removed and the head rolled back"
        }
        if last != chain.seq || previous != chain.hash {
            return last == 0 && chain.seq > 0
                ? "chain \(chain.id) (\(chain.instance)) is registered with \(chain.seq) events but none is in the log: its events were removed"
                : "chain \(chain.id) ends at event #\(last) but its registry row records #\(chain.seq): the newest events were removed or altered"
        }
        // Rows past the head that the registry row does not account for (re-read: appends go on meanwhile).
        let beyond = try await AuditEvent.query(on: database).filter(\.$chainID == chain.id).filter(\.$seq > chain.seq).max(\.$seq)
        if let beyond {
            let now =
                try await database.sql.select().column("seq").from(AuditChainRegistry.table).where("id", .equal, chain.id).first(
                    decoding: SeqRow.self)?.seq ?? 0
            if beyond > now { return "event #\(beyond)\(label) lies beyond the head of the chain (#\(now)): a row was inserted" }
        }
        return nil
    }

    private struct SeqRow: Decodable { var seq: Int64 }
}

extension Request {
    /// Records a security event with this request's client address and browser.
    func audit(
        _ type: AuditEventType, practiceID: UUID?, actorID: UUID? = nil, subjectID: UUID? = nil, details: [String: String] = [:],
        on database: (any Database)? = nil
    ) async throws {
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

    func callAsFunction(
        _ type: AuditEventType, practiceID: UUID?, actorID: UUID? = nil, subjectID: UUID? = nil, details: [String: String] = [:]
    ) async throws {
        let entry = AuditEntry(
            type: type, practiceID: practiceID, actorID: actorID, subjectID: subjectID ?? actorID,
            ip: ip, userAgent: userAgent, details: details)
        try await AuditLog.append(entry, on: database, now: now)
    }
}

extension Request {
    var auditRecorder: AuditRecorder {
        AuditRecorder(database: db, now: now, ip: clientIP, userAgent: headers.first(name: .userAgent) ?? "")
    }
}
