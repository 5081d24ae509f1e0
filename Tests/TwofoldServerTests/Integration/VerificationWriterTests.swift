import Fluent
import Foundation
import SQLKit
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// `/api/v1/validate`'s verifications are judged in batches, one transaction each: the same rules as every other
/// channel, applied one verification after another inside the batch.
@Suite("Verification writer")
struct VerificationWriterTests {
    struct CounterRow: Decodable { var failures: Int }

    private func counter(_ ctx: TestContext, _ user: User) async throws -> Int {
        try await ctx.app.db.sql.raw("SELECT failures FROM second_factor_counters WHERE user_id = \(bind: user.id!)")
            .first(decoding: CounterRow.self)?.failures ?? 0
    }

    private func item(_ ctx: TestContext, key: APIKey, username: String, code: String) throws -> VerificationWriter.Item {
        VerificationWriter.Item(
            context: ctx.app.serviceContext(ip: "192.0.2.7", userAgent: "batch test"), practiceID: key.$practice.id,
            apiKeyID: try key.requireID(), apiKeyName: key.name, usernameKey: User.key(for: username), code: code)
    }

    @Test func oneBatchJudgesEachVerificationOnWhatTheOnesBeforeItLeft() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let smith = try await Fixtures.user(ctx, practice: practice)
            let jones = try await Fixtures.user(ctx, practice: practice, username: "dr.jones")
            let smithKey = try await Flows.enrollTOTP(ctx)
            let jonesKey = try await Flows.enrollTOTP(ctx, username: "dr.jones")
            _ = try await ValidateTests.key(ctx, practice: practice)
            let key = try #require(try await APIKey.query(on: ctx.app.db).first())
            ctx.clock.advance(30)
            let smithCode = try Fixtures.code(smithKey.secret, at: ctx.clock.now)
            let jonesCode = try Fixtures.code(jonesKey.secret, at: ctx.clock.now)
            let wrong = try #require(["000000", "111111", "222222"].first { $0 != smithCode && $0 != jonesCode })

            let items = try [
                item(ctx, key: key, username: "DR.SMITH", code: smithCode), // accepted
                item(ctx, key: key, username: "dr.smith", code: smithCode), // the same step again: a replay
                item(ctx, key: key, username: "dr.jones", code: wrong), // wrong
                item(ctx, key: key, username: "nobody", code: "123456"), // no such user
                item(ctx, key: key, username: "dr.jones", code: jonesCode), // right after a wrong one: clears it
            ]
            let written = try await VerificationWriter.Batch.write(items, on: ctx.app.db)
            let results = try written.results.map { try $0.get() }
            #expect(results == [true, false, false, false, true])
            #expect(try await counter(ctx, smith) == 1) // the replay counts
            #expect(try await counter(ctx, jones) == 0)
            let events = try await AuditEvent.query(on: ctx.app.db).filter(\.$event ~~ ["validate.accepted", "validate.rejected"])
                .sort(\.$seq).all()
            #expect(
                events.map(\.event) == [
                    "validate.accepted", "validate.rejected", "validate.rejected", "validate.rejected", "validate.accepted",
                ])
            #expect(events.allSatisfy { $0.chainID == (try? ctx.app.auditContext.verificationChain) && $0.ip == "192.0.2.7" })
            #expect(
                events[1].details.contains("replayed") && events[2].details.contains("wrong_code")
                    && events[3].details.contains("unknown_user"))
            let verification = try await AuditLog.verify(on: ctx.app.db)
            #expect(verification.isIntact, "\(verification.problem ?? "")")
        }
    }

    @Test func guessesInOneBatchStopAtTheFreeAttempts() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let smith = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            _ = try await ValidateTests.key(ctx, practice: practice)
            let key = try #require(try await APIKey.query(on: ctx.app.db).first())
            ctx.clock.advance(30)
            let right = try Fixtures.code(enrolled.secret, at: ctx.clock.now)
            let wrong = right == "000000" ? "111111" : "000000"
            let free = ctx.app.policy.lockout.freeAttempts
            // Twenty guesses at once, then the right code: only the free attempts are evaluated, and the right code
            // waits like any guess after them.
            let items =
                try Array(repeating: item(ctx, key: key, username: "dr.smith", code: wrong), count: 20) + [
                    item(ctx, key: key, username: "dr.smith", code: right)
                ]
            let written = try await VerificationWriter.Batch.write(items, on: ctx.app.db)
            #expect(try written.results.map { try $0.get() }.allSatisfy { !$0 })
            #expect(try await counter(ctx, smith) == free)
            let rejected = try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "validate.rejected").all()
            #expect(rejected.filter { $0.details.contains("wrong_code") }.count == free)
            #expect(rejected.filter { $0.details.contains("locked") }.count == 21 - free)
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "second_factor.throttled").count() == 21 - free)
            // After the wait the right code goes through and clears the count.
            ctx.clock.advance(2)
            let later = try await VerificationWriter.Batch.write([item(ctx, key: key, username: "dr.smith", code: right)], on: ctx.app.db)
            #expect(try later.results[0].get())
            #expect(try await counter(ctx, smith) == 0)
        }
    }

    @Test func aParallelBurstOverHTTPLetsOneCodeThroughOnce() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let key = try await ValidateTests.key(ctx, practice: practice)
            ctx.clock.advance(30)
            let code = try Fixtures.code(enrolled.secret, at: ctx.clock.now)
            let answers = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        let response = try await ValidateTests.validate(ctx, key: key, ["username": "dr.smith", "code": code])
                        return response.json["result"] as? String ?? "status \(response.status.code)"
                    }
                }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(answers.filter { $0 == "accept" }.count == 1)
            #expect(answers.filter { $0 == "reject" }.count == 15)
            #expect(
                try await AuditEvent.query(on: ctx.app.db).filter(\.$event ~~ ["validate.accepted", "validate.rejected"]).count() == 16)
            let verification = try await AuditLog.verify(on: ctx.app.db)
            #expect(verification.isIntact, "\(verification.problem ?? "")")
        }
    }
}
