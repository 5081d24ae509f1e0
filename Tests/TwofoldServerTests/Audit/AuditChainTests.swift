import Fluent
import Foundation
import SQLKit
import Testing
import VaporTesting

@testable import TwofoldServer

@Suite("Audit hash chain")
struct AuditChainTests {
    /// A few events of every kind, all in one chain of the test's process (on PostgreSQL a process writes four).
    static func someEvents(_ ctx: TestContext) async throws {
        try ctx.app.auditContext.policy.writers = 1
        let practice = try await Fixtures.practice(ctx)
        _ = try await Fixtures.user(ctx, practice: practice)
        _ = try await APIClient.login(ctx, password: "wrong wrong wrong")
        _ = try await Flows.enrollTOTP(ctx)
    }

    @Test func securityEventsAreRecordedAndTheChainVerifies() async throws {
        try await withTestApp { ctx in
            try await Self.someEvents(ctx)
            let events = try await AuditEvent.query(on: ctx.app.db).sort(\.$seq).all().map(\.event)
            #expect(events.contains("sign_in.failed"))
            #expect(events.contains("sign_in.succeeded"))
            #expect(events.contains("factor.added"))
            #expect(events.contains("user.created"))
            let result = try await AuditLog.verify(on: ctx.app.db)
            #expect(result.isIntact)
            #expect(result.checked == events.count)
        }
    }

    @Test func changedRowIsDetected() async throws {
        try await withTestApp { ctx in
            try await Self.someEvents(ctx)
            try await ctx.app.db.sql.raw("UPDATE audit_events SET ip = '10.6.6.6' WHERE seq = 3").run()
            let result = try await AuditLog.verify(on: ctx.app.db)
            #expect(result.problem?.contains("event #3") == true)
            #expect(result.problem?.contains("changed") == true)
        }
    }

    @Test func removedRowIsDetected() async throws {
        try await withTestApp { ctx in
            try await Self.someEvents(ctx)
            try await ctx.app.db.sql.raw("DELETE FROM audit_events WHERE seq = 2").run()
            let result = try await AuditLog.verify(on: ctx.app.db)
            #expect(result.problem?.contains("event #2 of chain") == true && result.problem?.contains("is missing") == true)
        }
    }

    @Test func removedNewestRowIsDetected() async throws {
        try await withTestApp { ctx in
            try await Self.someEvents(ctx)
            let last = try #require(try await AuditEvent.query(on: ctx.app.db).sort(\.$seq, .descending).first())
            try await last.delete(on: ctx.app.db)
            #expect(try await AuditLog.verify(on: ctx.app.db).isIntact == false)
        }
    }

    @Test func insertedRowIsDetected() async throws {
        try await withTestApp { ctx in
            try await Self.someEvents(ctx)
            // Shift the tail up by one and slip a forged event in at #2 with a plausible hash.
            let events = try await AuditEvent.query(on: ctx.app.db).sort(\.$seq, .descending).all()
            for event in events where event.seq >= 2 {
                try await ctx.app.db.sql.raw("UPDATE audit_events SET seq = \(bind: event.seq + 1) WHERE id = \(bind: event.id!)").run()
            }
            let first = try #require(events.last)
            let forged = AuditEvent()
            forged.chainID = first.chainID
            forged.seq = 2
            forged.event = "sign_in.succeeded"
            forged.ip = "127.0.0.1"
            forged.userAgent = ""
            forged.details = "{}"
            forged.occurredMS = first.occurredMS
            forged.occurredAt = first.occurredAt
            forged.prevHash = first.hash
            forged.hash = AuditChain.hash(
                previous: first.hash,
                content: .init(
                    seq: 2, occurredMS: first.occurredMS, practiceID: nil, actorID: nil, subjectID: nil, event: forged.event, ip: forged.ip,
                    userAgent: "", details: "{}"))
            try await forged.create(on: ctx.app.db)
            let result = try await AuditLog.verify(on: ctx.app.db)
            #expect(result.isIntact == false)
            #expect(result.problem?.contains("event #2 (sign_in.succeeded)") == true)
        }
    }

    @Test func concurrentWritersKeepOneLinearChain() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<40 {
                    group.addTask {
                        try await AuditLog.append(
                            AuditEntry(type: .signOut, practiceID: practice.id, details: ["n": String(index)]), on: ctx.app.db,
                            now: ctx.clock.now)
                    }
                }
                try await group.waitForAll()
            }
            let result = try await AuditLog.verify(on: ctx.app.db)
            #expect(result.isIntact)
            #expect(result.checked == 41)
        }
    }
}
