import Fluent
import Foundation
import SQLKit
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// One chain per writer: concurrent writers in one process and in two, and one test per attack on the layout of
/// several chains (the registry, the chains' events and their checkpoints).
@Suite("Audit per-instance chains")
struct AuditPerInstanceChainTests {
    static func append(_ ctx: TestContext, _ count: Int, practiceID: UUID?, on app: Application? = nil, tag: String = "n") async throws {
        let app = app ?? ctx.app
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                group.addTask {
                    try await AuditLog.append(
                        AuditEntry(type: .signOut, practiceID: practiceID, details: [tag: String(index)]), on: app.db, now: ctx.clock.now)
                }
            }
            try await group.waitForAll()
        }
    }

    static func problem(_ ctx: TestContext, external: [(line: Int, checkpoint: AuditCheckpoint)] = []) async throws -> String {
        try #require(try await AuditLog.verify(on: ctx.app.db, external: external).problem)
    }

    /// Two chains of this process, with events in both and checkpoints of both heads.
    static func twoChains(_ ctx: TestContext, file: String? = nil) async throws -> (first: String, second: String) {
        try ctx.app.auditContext.policy = AuditCheckpointPolicy(every: 100, interval: 3600, file: file, writers: 2)
        let practice = try await Fixtures.practice(ctx)
        for index in 0..<10 {
            try await AuditLog.append(
                AuditEntry(type: .signOut, practiceID: practice.id, details: ["n": String(index)]), on: ctx.app.db, now: ctx.clock.now)
        }
        try await AuditLog.checkpointIfDue(on: ctx.app.db, now: ctx.clock.now, force: true)
        let chains = try ctx.app.auditContext.writerChains
        try #require(chains.count == 2)
        return (chains[0], chains[1])
    }

    static func checkpointFile() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("twofold-checkpoints-\(UUID().uuidString).jsonl").path
    }

    @Test func concurrentAppendsSpreadOverTheProcessChainsAndVerify() async throws {
        try await withTestApp { ctx in
            try ctx.app.auditContext.policy = AuditCheckpointPolicy(every: 5, interval: 3600, writers: 4)
            let practice = try await Fixtures.practice(ctx)
            try await Self.append(ctx, 60, practiceID: practice.id)
            let result = try await AuditLog.verify(on: ctx.app.db)
            #expect(result.isIntact, "\(result.problem ?? "")")
            let total = try await AuditEvent.query(on: ctx.app.db).count()
            #expect(result.checked == total)
            let registry = try await AuditChainRegistry.all(on: ctx.app.db)
            #expect(registry.count == 5) // main and four of this process
            #expect(registry.first?.id == AuditCheckpoint.mainChain)
            #expect(Set(registry.dropFirst().map(\.instance)).count == 1)
            #expect(registry.dropFirst().allSatisfy { $0.seq >= 15 && $0.status == "open" })
            // Every chain is opened by a signed checkpoint naming it.
            let opened = try await AuditCheckpoint.all(on: ctx.app.db).filter { $0.kind == .open }.map(\.chain)
            #expect(Set(opened) == Set(registry.dropFirst().map(\.id)))
        }
    }

    @Test(.enabled(if: TestDatabase.postgresURL != nil, "two applications share one PostgreSQL database"))
    func twoInstancesOnOnePostgreSQLWriteConcurrentlyAndVerify() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let second = try await Application.make(.testing)
            second.logger.logLevel = .error
            do {
                try await configure(second, ctx.app.twofold.configuration, clock: ctx.clock.twofoldClock)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for burst in 0..<3 {
                        group.addTask { try await Self.append(ctx, 40, practiceID: practice.id, tag: "a\(burst)") }
                        group.addTask { try await Self.append(ctx, 40, practiceID: practice.id, on: second, tag: "b\(burst)") }
                    }
                    try await group.waitForAll()
                }
                try await AuditLog.checkpointIfDue(on: second.db, now: ctx.clock.now, force: true)
            } catch {
                try? await second.asyncShutdown()
                throw error
            }
            try? await second.asyncShutdown()

            let result = try await AuditLog.verify(on: ctx.app.db)
            #expect(result.isIntact, "\(result.problem ?? "")")
            #expect(result.checked == (try await AuditEvent.query(on: ctx.app.db).count()))
            let registry = try await AuditChainRegistry.all(on: ctx.app.db)
            #expect(Set(registry.map(\.instance)).count >= 2 || registry.count >= 9) // main plus four chains per application
            // Every event is there exactly once.
            let written = try await AuditEvent.query(on: ctx.app.db).filter(\.$event == AuditEventType.signOut.rawValue).all().map(
                \.details)
            #expect(written.count == 240)
            #expect(Set(written).count == 240)
        }
    }

    @Test func aWholeChainRemovedWithItsRegistryRowIsCaughtByTheCheckpointFile() async throws {
        try await withTestApp { ctx in
            let file = Self.checkpointFile()
            defer { try? FileManager.default.removeItem(atPath: file) }
            let (_, second) = try await Self.twoChains(ctx, file: file)
            for table in [AuditEvent.schema, AuditCheckpoint.table] {
                try await ctx.app.db.sql.raw("DELETE FROM \(ident: table) WHERE chain_id = \(bind: second)").run()
            }
            try await ctx.app.db.sql.raw("DELETE FROM audit_chains WHERE id = \(bind: second)").run()
            // What is left in the database is consistent; the file kept outside it names the chain.
            #expect(try await AuditLog.verify(on: ctx.app.db).isIntact)
            let problem = try await Self.problem(ctx, external: try AuditCheckpoint.read(file: file))
            #expect(problem.contains("chain \(second)"))
            #expect(problem.contains("not in the registry"))
        }
    }

    @Test func aRemovedRegistryRowIsDetected() async throws {
        try await withTestApp { ctx in
            let (_, second) = try await Self.twoChains(ctx)
            try await ctx.app.db.sql.raw("DELETE FROM audit_chains WHERE id = \(bind: second)").run()
            let problem = try await Self.problem(ctx)
            #expect(problem.contains("chain \(second)"))
            #expect(problem.contains("not in the registry"))
        }
    }

    @Test func aRegisteredChainWhoseEventsVanishedIsDetected() async throws {
        try await withTestApp { ctx in
            let (first, _) = try await Self.twoChains(ctx)
            try await ctx.app.db.sql.raw("DELETE FROM audit_events WHERE chain_id = \(bind: first)").run()
            let problem = try await Self.problem(ctx)
            #expect(problem.contains("chain \(first)"))
        }
    }

    @Test func aChainTruncatedBelowItsCheckpointIsDetected() async throws {
        try await withTestApp { ctx in
            let (first, _) = try await Self.twoChains(ctx)
            let events = try await AuditEvent.query(on: ctx.app.db).filter(\.$chainID == first).sort(\.$seq).all()
            let kept = events[events.count - 3]
            try await ctx.app.db.sql.raw("DELETE FROM audit_events WHERE chain_id = \(bind: first) AND seq > \(bind: kept.seq)").run()
            try await ctx.app.db.sql.raw(
                "UPDATE audit_chains SET seq = \(bind: kept.seq), hash = \(bind: kept.hash) WHERE id = \(bind: first)"
            ).run()
            let problem = try await Self.problem(ctx)
            #expect(problem.contains("chain \(first) ends at event #\(kept.seq)"))
            #expect(problem.contains("rolled back"))
        }
    }

    @Test func anEventMovedToAnotherChainIsDetected() async throws {
        try await withTestApp { ctx in
            let (first, second) = try await Self.twoChains(ctx)
            let moved = try #require(
                try await AuditEvent.query(on: ctx.app.db).filter(\.$chainID == first).sort(\.$seq, .descending).first())
            let before = try #require(
                try await AuditEvent.query(on: ctx.app.db).filter(\.$chainID == first).filter(\.$seq == moved.seq - 1).first())
            let target = try #require(try await AuditChainRegistry.all(on: ctx.app.db).first { $0.id == second })
            // Taken off the end of the first chain (its head rolled back) and appended to the second, links and all.
            try await ctx.app.db.sql.raw(
                """
                UPDATE audit_events SET chain_id = \(bind: second), seq = \(bind: target.seq + 1), prev_hash = \(bind: target.hash) WHERE id = \(bind: moved.id!)
                """
            ).run()
            try await ctx.app.db.sql.raw(
                "UPDATE audit_chains SET seq = \(bind: before.seq), hash = \(bind: before.hash) WHERE id = \(bind: first)"
            ).run()
            try await ctx.app.db.sql.raw("UPDATE audit_chains SET seq = seq + 1, hash = \(bind: moved.hash) WHERE id = \(bind: second)")
                .run()
            let problem = try await Self.problem(ctx)
            #expect(problem.contains("chain \(first)") || problem.contains("of chain \(second)"))
        }
    }

    @Test func aForgedRegistryRowIsDetected() async throws {
        try await withTestApp { ctx in
            _ = try await Self.twoChains(ctx)
            try await ctx.app.db.sql.insert(into: AuditChainRegistry.table)
                .columns(AuditChainRegistry.columns)
                .values(
                    SQLBind("forged000000"), SQLBind(Int64(1)), SQLBind("elsewhere pid 1"), SQLBind("x"), SQLBind("open"),
                    SQLBind(Int64(0)),
                    SQLBind(AuditChainHead.genesisHash), SQLBind(Int64?.none), SQLBind(Int64?.none)
                )
                .run()
            let problem = try await Self.problem(ctx)
            #expect(problem.contains("chain forged000000"))
            #expect(problem.contains("no signed opening checkpoint"))
        }
    }

    @Test func aQuietChainOfAStoppedProcessIsCheckpointedByAnother() async throws {
        try await withTestApp { ctx in
            let (first, second) = try await Self.twoChains(ctx)
            try await AuditLog.append(AuditEntry(type: .signOut, practiceID: nil), on: ctx.app.db, now: ctx.clock.now)
            ctx.clock.advance(3601)
            try await AuditLog.checkpointIfDue(on: ctx.app.db, now: ctx.clock.now)
            let registry = try await AuditChainRegistry.all(on: ctx.app.db)
            for chain in registry where chain.id == first || chain.id == second {
                #expect(chain.checkpoint_seq == chain.seq)
            }
        }
    }

    @Test func theCheckpointFileHoldsEachChainsCheckpointsOnce() async throws {
        try await withTestApp { ctx in
            let file = Self.checkpointFile()
            defer { try? FileManager.default.removeItem(atPath: file) }
            let (first, second) = try await Self.twoChains(ctx, file: file)
            let lines = try AuditCheckpoint.read(file: file).map(\.checkpoint)
            #expect(Set(lines.map { "\($0.chain)#\($0.seq)" }).count == lines.count)
            #expect(lines.contains { $0.chain == first && $0.kind == .open })
            #expect(lines.contains { $0.chain == second && $0.kind == .open })
            let result = try await AuditLog.verify(on: ctx.app.db, external: try AuditCheckpoint.read(file: file))
            #expect(result.isIntact, "\(result.problem ?? "")")
        }
    }

    @Test func theAuditPageKeepsOneOrderAcrossChains() async throws {
        try await withTestApp { ctx in
            try ctx.app.auditContext.policy = AuditCheckpointPolicy(every: 100, interval: 3600, writers: 3)
            let practice = try await Fixtures.practice(ctx)
            for index in 0..<9 {
                ctx.clock.advance(index % 3 == 0 ? 1 : 0)
                try await AuditLog.append(
                    AuditEntry(type: .signOut, practiceID: practice.id, details: ["n": String(index)]), on: ctx.app.db, now: ctx.clock.now)
            }
            let query = AuditQuery(database: ctx.app.db, practiceID: try #require(practice.id))
            let all = try await query.run(.init(), limit: 100).events
            let keys = all.map { (AuditLog.milliseconds($0.time), $0.chain, $0.seq) }
            #expect(keys.elementsEqual(keys.sorted { ($0.0, $0.1, $0.2) > ($1.0, $1.1, $1.2) }, by: { $0 == $1 }))
            // Paging walks the same order.
            var paged: [AuditQuery.Entry] = []
            for page in 1...4 { paged += try await query.run(.init(page: page), limit: 3).events }
            #expect(paged.map { "\($0.chain)#\($0.seq)" } == all.map { "\($0.chain)#\($0.seq)" })
        }
    }
}
