import Fluent
import Foundation
import SQLKit
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// One test per attack of the audit threat model: someone who can read and write the database, but not the
/// sealing key file or the checkpoint file.
@Suite("Audit integrity against database access")
struct AuditIntegrityTests {
    private struct Row: Decodable {
        var id: UUID
        var seq: Int64
        var hash: String
    }

    static func events(_ ctx: TestContext) async throws -> [AuditEvent] {
        try await AuditEvent.query(on: ctx.app.db).filter(\.$chainID != AuditCheckpoint.mainChain).sort(\.$seq).all()
    }

    static func problem(_ ctx: TestContext, external: [(line: Int, checkpoint: AuditCheckpoint)] = []) async throws -> String {
        try #require(try await AuditLog.verify(on: ctx.app.db, external: external).problem)
    }

    static func content(_ event: AuditEvent) -> AuditChain.Content {
        .init(
            seq: event.seq, occurredMS: event.occurredMS, practiceID: event.practiceID, actorID: event.actorID, subjectID: event.subjectID,
            event: event.event, ip: event.ip, userAgent: event.userAgent, details: event.details)
    }

    /// Rewrites every link from the first event on, with `link`, and moves the head, as an attacker with only the
    /// database would after editing an event.
    static func recompute(_ ctx: TestContext, keyID: String?, link: (String, AuditChain.Content) -> String) async throws {
        var previous = AuditChainHead.genesisHash
        for event in try await events(ctx) {
            let hash = link(previous, content(event))
            try await ctx.app.db.sql.update(AuditEvent.schema).set("prev_hash", to: previous).set("hash", to: hash)
                .set("key_id", to: SQLBind(keyID)).where("id", .equal, event.id!).run()
            previous = hash
        }
        try await ctx.app.db.sql.update(AuditChainRegistry.table).set("hash", to: previous).where("id", .equal, try chain(ctx)).run()
    }

    /// The one chain these tests write to (each test app appends to a single chain of its own).
    static func chain(_ ctx: TestContext) throws -> String {
        try #require(try ctx.app.auditContext.writerChains.first)
    }

    /// Rolls the registry row of the test's chain back to `event`, as an attacker hiding removed events would.
    static func rollBack(_ ctx: TestContext, to event: AuditEvent) async throws {
        try await ctx.app.db.sql.raw(
            "UPDATE audit_chains SET seq = \(bind: event.seq), hash = \(bind: event.hash) WHERE id = \(bind: event.chainID)"
        ).run()
    }

    static func checkpointFile() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("twofold-checkpoints-\(UUID().uuidString).jsonl").path
    }

    @Test func aCleanLogVerifiesWithItsCheckpoints() async throws {
        try await withTestApp { ctx in
            try await AuditChainTests.someEvents(ctx)
            try await AuditLog.checkpointIfDue(on: ctx.app.db, now: ctx.clock.now, force: true)
            let result = try await AuditLog.verify(on: ctx.app.db)
            #expect(result.isIntact, "\(result.problem ?? "")")
            #expect(result.checked == (try await Self.events(ctx)).count)
            #expect(result.checkpoints >= 3) // the start of the keyed main chain, the opening of the test's chain, its head
            #expect(result.chains == 2)
            #expect(try await Self.events(ctx).allSatisfy { $0.keyID == (try? ctx.app.auditContext.keys.macKeyID) })
        }
    }

    @Test func editedDetailIsDetected() async throws {
        try await withTestApp { ctx in
            try await AuditChainTests.someEvents(ctx)
            try await ctx.app.db.sql.raw("UPDATE audit_events SET details = '{\"username\":\"mallory\"}' WHERE seq = 3").run()
            let problem = try await Self.problem(ctx)
            #expect(problem.contains("event #3"))
            #expect(problem.contains("changed"))
        }
    }

    @Test func insertedRowIsDetected() async throws {
        try await withTestApp { ctx in
            try await AuditChainTests.someEvents(ctx)
            let events = try await Self.events(ctx)
            for event in events.reversed() where event.seq >= 3 {
                try await ctx.app.db.sql.raw("UPDATE audit_events SET seq = \(bind: event.seq + 1) WHERE id = \(bind: event.id!)").run()
            }
            // A copy of #2 with a forged link, claiming its key id.
            let copy = events[1]
            try await ctx.app.db.sql.insert(into: AuditEvent.schema)
                .columns(
                    "id", "chain_id", "seq", "event", "ip", "user_agent", "details", "occurred_ms", "occurred_at", "prev_hash", "hash",
                    "key_id"
                )
                .values(
                    SQLBind(UUID()), SQLBind(copy.chainID), SQLBind(Int64(3)), SQLBind("sign_in.succeeded"), SQLBind("10.6.6.6"),
                    SQLBind(""), SQLBind("{}"),
                    SQLBind(copy.occurredMS), SQLBind(copy.occurredAt), SQLBind(copy.hash), SQLBind(String(repeating: "a", count: 64)),
                    SQLBind(copy.keyID)
                )
                .run()
            try await ctx.app.db.sql.raw("UPDATE audit_chains SET seq = seq + 1 WHERE id = \(bind: copy.chainID)").run()
            let problem = try await Self.problem(ctx)
            #expect(problem.contains("event #3 (sign_in.succeeded)"))
        }
    }

    @Test func deletedMiddleRowIsDetected() async throws {
        try await withTestApp { ctx in
            try await AuditChainTests.someEvents(ctx)
            try await ctx.app.db.sql.raw("DELETE FROM audit_events WHERE seq = 3").run()
            #expect(try await Self.problem(ctx).contains("event #3 of chain \(try Self.chain(ctx)) is missing"))
        }
    }

    @Test func reorderedRowsAreDetected() async throws {
        try await withTestApp { ctx in
            try await AuditChainTests.someEvents(ctx)
            let events = try await Self.events(ctx)
            try await ctx.app.db.sql.raw("UPDATE audit_events SET seq = -1 WHERE id = \(bind: events[1].id!)").run()
            try await ctx.app.db.sql.raw("UPDATE audit_events SET seq = 2 WHERE id = \(bind: events[2].id!)").run()
            try await ctx.app.db.sql.raw("UPDATE audit_events SET seq = 3 WHERE id = \(bind: events[1].id!)").run()
            let problem = try await Self.problem(ctx)
            #expect(problem.contains("event #2 (\(events[2].event))"))
        }
    }

    @Test func truncationWithTheHeadRolledBackIsDetectedByTheCheckpointTable() async throws {
        try await withTestApp { ctx in
            try await AuditChainTests.someEvents(ctx)
            try await AuditLog.checkpointIfDue(on: ctx.app.db, now: ctx.clock.now, force: true)
            let events = try await Self.events(ctx)
            let kept = events[events.count - 3]
            try await ctx.app.db.sql.raw("DELETE FROM audit_events WHERE seq > \(bind: kept.seq)").run()
            try await Self.rollBack(ctx, to: kept)
            let problem = try await Self.problem(ctx)
            #expect(problem.contains("ends at event #\(kept.seq)"))
            #expect(problem.contains("event #\(events.count)"))
            #expect(problem.contains("rolled back"))
        }
    }

    @Test func truncationWithTheCheckpointsRemovedIsDetectedByTheCheckpointFile() async throws {
        try await withTestApp { ctx in
            let file = Self.checkpointFile()
            defer { try? FileManager.default.removeItem(atPath: file) }
            try ctx.app.auditContext.policy.file = file
            try await AuditChainTests.someEvents(ctx)
            try await AuditLog.checkpointIfDue(on: ctx.app.db, now: ctx.clock.now, force: true)
            let events = try await Self.events(ctx)
            let kept = events[events.count - 3]
            try await ctx.app.db.sql.raw("DELETE FROM audit_events WHERE seq > \(bind: kept.seq)").run()
            try await ctx.app.db.sql.raw("DELETE FROM audit_checkpoints WHERE seq > \(bind: kept.seq)").run()
            try await Self.rollBack(ctx, to: kept)
            // The database alone is consistent again; the file kept outside it is not.
            #expect(try await AuditLog.verify(on: ctx.app.db).isIntact)
            let problem = try await Self.problem(ctx, external: try AuditCheckpoint.read(file: file))
            #expect(problem.contains("checkpoint at event #\(events.count)"))
            #expect(problem.contains("missing from the database"))
        }
    }

    @Test func theExportedCheckpointFileVerifies() async throws {
        try await withTestApp { ctx in
            let file = Self.checkpointFile()
            defer { try? FileManager.default.removeItem(atPath: file) }
            try ctx.app.auditContext.policy = AuditCheckpointPolicy(every: 3, interval: 3600, file: file)
            try await AuditChainTests.someEvents(ctx)
            try await AuditLog.checkpointIfDue(on: ctx.app.db, now: ctx.clock.now, force: true)
            let lines = try AuditCheckpoint.read(file: file)
            #expect(lines.count >= 2)
            #expect(Set(lines.map(\.checkpoint.seq)).count == lines.count) // each checkpoint once
            #expect(lines.last?.checkpoint.seq == (try await Self.events(ctx)).last?.seq)
            let result = try await AuditLog.verify(on: ctx.app.db, external: lines)
            #expect(result.isIntact, "\(result.problem ?? "")")

            // A forged line is caught by its signature.
            var forged = try #require(lines.last).checkpoint
            forged.seq += 5
            let problem = try await Self.problem(ctx, external: lines + [(line: 99, checkpoint: forged)])
            #expect(problem.contains("line 99"))
            #expect(problem.contains("does not verify"))
        }
    }

    @Test func checkpointsAreWrittenEveryNEvents() async throws {
        try await withTestApp { ctx in
            try ctx.app.auditContext.policy = AuditCheckpointPolicy(every: 3, interval: 3600)
            let practice = try await Fixtures.practice(ctx)
            for _ in 0..<8 {
                try await AuditLog.append(AuditEntry(type: .signOut, practiceID: practice.id), on: ctx.app.db, now: ctx.clock.now)
            }
            let heads = try await AuditCheckpoint.all(on: ctx.app.db).filter { $0.kind == .head }.map(\.seq)
            #expect(heads.contains(3) && heads.contains(6)) // the chain opens with checkpoint_seq 0
            ctx.clock.advance(3601)
            try await AuditLog.append(AuditEntry(type: .signOut, practiceID: practice.id), on: ctx.app.db, now: ctx.clock.now)
            #expect(try await AuditCheckpoint.all(on: ctx.app.db).map(\.seq).contains(10))
            #expect(try await AuditLog.verify(on: ctx.app.db).isIntact)
        }
    }

    @Test func chainRecomputedWithPlainSHA256IsDetected() async throws {
        try await withTestApp { ctx in
            try await AuditChainTests.someEvents(ctx)
            try await ctx.app.db.sql.raw("UPDATE audit_events SET ip = '10.6.6.6' WHERE seq = 3").run()
            try await Self.recompute(ctx, keyID: nil) { AuditChain.hash(previous: $0, content: $1) }
            let problem = try await Self.problem(ctx)
            #expect(problem.contains("event #1"))
            #expect(problem.contains("without the audit key"))
        }
    }

    @Test func chainRecomputedWithAnotherKeyIsDetected() async throws {
        try await withTestApp { ctx in
            try await AuditChainTests.someEvents(ctx)
            try await ctx.app.db.sql.raw("UPDATE audit_events SET ip = '10.6.6.6' WHERE seq = 3").run()
            let keyID = try ctx.app.auditContext.keys.macKeyID
            let guess = AuditKeys(sealer: SecretSealer(current: .generate()))
            try await Self.recompute(ctx, keyID: keyID) { previous, content in
                AuditChain.mac(previous: previous, content: content, keyID: guess.macKeyID, keys: guess)!
            }
            let problem = try await Self.problem(ctx)
            #expect(problem.contains("event #1"))
            #expect(problem.contains("without the audit key"))
        }
    }

    @Test func backdatedShownTimeIsDetected() async throws {
        try await withTestApp { ctx in
            try await AuditChainTests.someEvents(ctx)
            let third = try #require(try await Self.events(ctx).first { $0.seq == 3 })
            try await ctx.app.db.sql.update(AuditEvent.schema).set("occurred_at", to: third.occurredAt.addingTimeInterval(-86_400))
                .where("seq", .equal, 3).run()
            let problem = try await Self.problem(ctx)
            #expect(problem.contains("event #3"))
            #expect(problem.contains("time was changed"))
            // Moving the covered time along with it breaks the link instead.
            try await ctx.app.db.sql.raw("UPDATE audit_events SET occurred_ms = occurred_ms - 86400000 WHERE seq = 3").run()
            let changed = try await Self.problem(ctx)
            #expect(changed.contains("event #3 (\(third.event))") && changed.contains("was changed"))
        }
    }

    @Test func removingTheStartOfTheKeyedChainIsDetected() async throws {
        try await withTestApp { ctx in
            try await AuditChainTests.someEvents(ctx)
            try await ctx.app.db.sql.raw("DELETE FROM audit_checkpoints WHERE kind = 'legacy-end'").run()
            #expect(try await Self.problem(ctx).contains("where the keyed chain begins"))
        }
    }

    @Test func aLogWithEventsMigratesToPerInstanceChains() async throws {
        try await withTestApp { ctx in
            let db = ctx.app.db
            let keys = try ctx.app.auditContext.keys
            // Back to the layout before per-instance chains, with a log as an older Twofold left it: three SHA-256
            // events, no key ids and no checkpoints, sealed by the keyed-links migration, then three keyed events.
            try await AddPerInstanceAuditChains().revert(on: db)
            try await db.sql.raw("DELETE FROM audit_checkpoints").run()
            var previous = AuditChainHead.genesisHash
            var written: [String] = []
            for seq in Int64(1)...6 {
                let ms = AuditLog.milliseconds(ctx.clock.now) + seq
                let content = AuditChain.Content(
                    seq: seq, occurredMS: ms, practiceID: nil, actorID: nil, subjectID: nil,
                    event: "practice.created", ip: "", userAgent: "", details: "{\"n\":\"\(seq)\"}")
                let keyed = seq > 3
                let hash =
                    keyed
                    ? AuditChain.mac(previous: previous, content: content, keyID: keys.macKeyID, keys: keys)!
                    : AuditChain.hash(previous: previous, content: content)
                try await db.sql.insert(into: AuditEvent.schema)
                    .columns(
                        "id", "seq", "event", "ip", "user_agent", "details", "occurred_ms", "occurred_at", "prev_hash", "hash", "key_id"
                    )
                    .values(
                        SQLBind(UUID()), SQLBind(seq), SQLBind(content.event), SQLBind(""), SQLBind(""), SQLBind(content.details),
                        SQLBind(ms), SQLBind(AuditLog.date(ms)), SQLBind(previous), SQLBind(hash), SQLBind(keyed ? keys.macKeyID : nil)
                    )
                    .run()
                previous = hash
                written.append(hash)
                if seq == 3 {
                    try await db.sql.raw(
                        "UPDATE audit_chain_head SET seq = 3, hash = \(bind: previous), checkpoint_seq = NULL, checkpoint_ms = NULL"
                    ).run()
                    try await AddKeyedAuditChain.sealLegacySegment(on: db, now: ctx.clock.now)
                }
            }
            try await db.sql.raw("UPDATE audit_chain_head SET seq = 6, hash = \(bind: previous)").run()
            try await AddPerInstanceAuditChains().prepare(on: db)

            // The old chain is the closed `main` chain, its links untouched and its head signed.
            let migrated = try await AuditEvent.query(on: db).sort(\.$seq).all()
            #expect(migrated.map(\.chainID) == Array(repeating: AuditCheckpoint.mainChain, count: 6))
            #expect(migrated.map(\.hash) == written)
            let main = try await AuditCheckpoint.all(on: db, chain: AuditCheckpoint.mainChain)
            #expect(main.contains { $0.kind == .head && $0.seq == 6 && $0.head == previous })
            var result = try await AuditLog.verify(on: db)
            #expect(result.isIntact, "\(result.problem ?? "")")
            #expect(result.checked == 6)

            // New events go to a chain of this process.
            try await AuditChainTests.someEvents(ctx)
            result = try await AuditLog.verify(on: db)
            #expect(result.isIntact, "\(result.problem ?? "")")
            #expect(result.chains == 2)
            #expect(result.checked == (try await AuditEvent.query(on: db).count()))
            #expect(try await AuditEvent.query(on: db).filter(\.$chainID == AuditCheckpoint.mainChain).count() == 6)

            // Removing the newest old events and rolling the main chain back contradicts its signed head.
            try await db.sql.raw("DELETE FROM audit_events WHERE chain_id = 'main' AND seq = 6").run()
            try await db.sql.raw("UPDATE audit_chains SET seq = 5, hash = \(bind: written[4]) WHERE id = 'main'").run()
            #expect(try await Self.problem(ctx).contains("chain main ends at event #5"))
        }
    }

    @Test func theMigratedUnkeyedSegmentStaysProtected() async throws {
        try await withTestApp { ctx in
            let db = ctx.app.db
            try await AddPerInstanceAuditChains().revert(on: db)
            try await db.sql.raw("DELETE FROM audit_checkpoints").run()
            var previous = AuditChainHead.genesisHash
            var events: [AuditChain.Content] = []
            for seq in Int64(1)...3 {
                let ms = AuditLog.milliseconds(ctx.clock.now) + seq
                let content = AuditChain.Content(
                    seq: seq, occurredMS: ms, practiceID: nil, actorID: nil, subjectID: nil,
                    event: "practice.created", ip: "", userAgent: "", details: "{\"n\":\"\(seq)\"}")
                let hash = AuditChain.hash(previous: previous, content: content)
                try await db.sql.insert(into: AuditEvent.schema)
                    .columns("id", "seq", "event", "ip", "user_agent", "details", "occurred_ms", "occurred_at", "prev_hash", "hash")
                    .values(
                        SQLBind(UUID()), SQLBind(seq), SQLBind(content.event), SQLBind(""), SQLBind(""), SQLBind(content.details),
                        SQLBind(ms), SQLBind(AuditLog.date(ms)), SQLBind(previous), SQLBind(hash)
                    )
                    .run()
                previous = hash
                events.append(content)
            }
            try await db.sql.raw(
                "UPDATE audit_chain_head SET seq = 3, hash = \(bind: previous), checkpoint_seq = NULL, checkpoint_ms = NULL"
            ).run()
            try await AddKeyedAuditChain.sealLegacySegment(on: db, now: ctx.clock.now)
            try await AddPerInstanceAuditChains().prepare(on: db)
            try await AuditChainTests.someEvents(ctx)
            #expect(try await AuditLog.verify(on: db).isIntact)

            // Rewriting the unkeyed segment with SHA-256 and relinking contradicts the signed end of the segment.
            try await db.sql.raw("UPDATE audit_events SET ip = '10.6.6.6' WHERE chain_id = 'main' AND seq = 2").run()
            var relinked = AuditChainHead.genesisHash
            for var content in events {
                content.ip = content.seq == 2 ? "10.6.6.6" : content.ip
                let hash = AuditChain.hash(previous: relinked, content: content)
                try await db.sql.update(AuditEvent.schema).set("prev_hash", to: relinked).set("hash", to: hash)
                    .where("chain_id", .equal, "main").where("seq", .equal, content.seq).run()
                relinked = hash
            }
            try await db.sql.raw("UPDATE audit_chains SET hash = \(bind: relinked) WHERE id = 'main'").run()
            let problem = try await Self.problem(ctx)
            #expect(problem.contains("event #3"))
            #expect(problem.contains("legacy-end") || problem.contains("checkpoint at event #3"))
        }
    }

    @Test func rotatingTheSealingKeyKeepsOldEventsVerifiable() async throws {
        try await withTestApp { ctx in
            try await AuditChainTests.someEvents(ctx)
            try await AuditLog.checkpointIfDue(on: ctx.app.db, now: ctx.clock.now, force: true)
            let old = try #require(ctx.app.twofold.configuration.sealingKey)
            let new = SealingKey.generate()
            let rotated = SecretSealer(current: new, previous: [old])
            ctx.app.twofold.sealer = rotated
            try ctx.app.auditContext.use(sealer: rotated)
            let practice = try await Fixtures.practice(ctx, name: "Lakeside Clinic")
            try await AuditLog.append(AuditEntry(type: .signOut, practiceID: practice.id), on: ctx.app.db, now: ctx.clock.now)
            try await AuditLog.checkpointIfDue(on: ctx.app.db, now: ctx.clock.now, force: true)

            let result = try await AuditLog.verify(on: ctx.app.db)
            #expect(result.isIntact, "\(result.problem ?? "")")
            #expect(Set(try await Self.events(ctx).compactMap(\.keyID)).count == 2)
            let signers = Set(try await AuditCheckpoint.all(on: ctx.app.db).map(\.keyID))
            #expect(signers.count == 2)

            // Without the previous key the old events cannot be checked, and verification says why.
            let withoutOld = AuditKeys(sealer: SecretSealer(current: new))
            let problem = try #require(try await AuditLog.verify(on: ctx.app.db, keys: withoutOld).problem)
            #expect(problem.contains("TWOFOLD_PREVIOUS_SECRET_KEYS"))
        }
    }
}
