import Fluent
import Foundation
import SQLKit
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

/// Appends to and verifies the hash-chained audit log.
enum AuditLog {
    /// Appends one event. Call it with the database handle of any transaction the caller is in.
    static func append(_ entry: AuditEntry, on database: any Database, now: Date) async throws {
        try await database.transaction { db in
            // Advancing the head row first takes its write lock, so concurrent writers
            // (several instances on one PostgreSQL) line up and the chain stays linear.
            guard let head = try await db.sql.raw("""
                UPDATE \(ident: AuditChainHead.table) SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash
                """).first(decoding: HeadRow.self)
            else { throw Abort(.internalServerError, reason: "The audit log is not initialised; run `twofold migrate`.") }
            let occurredMS = Int64((now.timeIntervalSince1970 * 1000).rounded(.down))
            let content = AuditChain.Content(
                seq: head.seq, occurredMS: occurredMS, practiceID: entry.practiceID, actorID: entry.actorID,
                subjectID: entry.subjectID, event: entry.type.rawValue, ip: entry.ip,
                userAgent: String(entry.userAgent.prefix(256)), details: AuditChain.detailsJSON(entry.details))
            let hash = AuditChain.hash(previous: head.hash, content: content)
            // A plain INSERT: this runs for every security event, and building a Fluent model costs reflection.
            try await db.sql.insert(into: AuditEvent.schema)
                .columns("id", "seq", "practice_id", "actor_id", "subject_id", "event", "ip", "user_agent", "details",
                         "occurred_ms", "occurred_at", "prev_hash", "hash")
                .values(SQLBind(UUID()), SQLBind(content.seq), SQLBind(content.practiceID), SQLBind(content.actorID), SQLBind(content.subjectID),
                        SQLBind(content.event), SQLBind(content.ip), SQLBind(content.userAgent), SQLBind(content.details),
                        SQLBind(occurredMS), SQLBind(Date(timeIntervalSince1970: Double(occurredMS) / 1000)), SQLBind(head.hash), SQLBind(hash))
                .run()
            try await db.sql.update(AuditChainHead.table).set("hash", to: hash).where("id", .equal, 1).run()
        }
    }

    private struct HeadRow: Decodable {
        var seq: Int64
        var hash: String
    }

    /// The outcome of walking the chain from the first event to the head.
    struct Verification: Sendable {
        var checked: Int
        var problem: String?
        var isIntact: Bool { problem == nil }
    }

    /// Walks every event in order and checks each link; names the first bad event.
    static func verify(on database: any Database) async throws -> Verification {
        var previous = AuditChainHead.genesisHash
        var expectedSeq: Int64 = 1
        var checked = 0
        let pageSize = 1000
        while true {
            let page = try await AuditEvent.query(on: database)
                .filter(\.$seq >= expectedSeq).sort(\.$seq).limit(pageSize).all()
            for event in page {
                if event.seq != expectedSeq {
                    return Verification(checked: checked, problem: "event #\(expectedSeq) is missing (next is #\(event.seq)): a row was removed")
                }
                if event.prevHash != previous {
                    return Verification(checked: checked, problem: "event #\(event.seq) does not link to event #\(event.seq - 1): a row was removed or inserted")
                }
                let content = AuditChain.Content(
                    seq: event.seq, occurredMS: event.occurredMS, practiceID: event.practiceID, actorID: event.actorID,
                    subjectID: event.subjectID, event: event.event, ip: event.ip, userAgent: event.userAgent, details: event.details)
                if AuditChain.hash(previous: previous, content: content) != event.hash {
                    return Verification(checked: checked, problem: "event #\(event.seq) (\(event.event)) was changed after it was written")
                }
                previous = event.hash
                expectedSeq += 1
                checked += 1
            }
            if page.count < pageSize { break }
        }
        let head = try await database.sql.raw("SELECT seq, hash FROM \(ident: AuditChainHead.table) WHERE id = 1").first(decoding: HeadRow.self)
        if let head, head.seq != expectedSeq - 1 || head.hash != previous {
            return Verification(checked: checked, problem: "the chain ends at event #\(expectedSeq - 1) but the head records #\(head.seq): the newest events were removed or altered")
        }
        return Verification(checked: checked, problem: nil)
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
