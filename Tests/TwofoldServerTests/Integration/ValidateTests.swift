import Fluent
import Foundation
import SQLKit
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("Direct verification API")
struct ValidateTests {
    struct ChannelRow: Decodable { var failures: Int }

    static func key(_ ctx: TestContext, practice: Practice, name: String = "VPN") async throws -> String {
        try await APIKeyService(database: ctx.app.db, now: ctx.clock.now).create(practiceID: practice.id!, name: name).key
    }

    static func validate(_ ctx: TestContext, key: String?, _ json: [String: any Sendable]) async throws -> TestingHTTPResponse {
        try await APIClient(ctx, token: key).send(.POST, "/api/v1/validate", json: json)
    }

    @Test func acceptsACurrentCodeOnceAndRejectsEverythingElseAlike() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let other = try await Fixtures.practice(ctx, name: "Lakeside")
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Fixtures.user(ctx, practice: other, username: "elsewhere")
            let enrolled = try await Flows.enrollTOTP(ctx)
            _ = try await Flows.enrollTOTP(ctx, username: "elsewhere")
            let key = try await Self.key(ctx, practice: practice)
            ctx.clock.advance(30)
            let code = try Fixtures.code(enrolled.secret, at: ctx.clock.now)

            let accepted = try await Self.validate(ctx, key: key, ["username": "DR.SMITH", "code": code])
            #expect(accepted.status == .ok)
            #expect(accepted.json["result"] as? String == "accept")
            let replay = try await Self.validate(ctx, key: key, ["username": "dr.smith", "code": code])
            let wrong = try await Self.validate(ctx, key: key, ["username": "dr.smith", "code": "000000"])
            let unknown = try await Self.validate(ctx, key: key, ["username": "nobody", "code": "123456"])
            let otherPractice = try await Self.validate(ctx, key: key, ["username": "elsewhere", "code": "123456"])
            for response in [replay, wrong, unknown, otherPractice] {
                #expect(response.status == .ok)
                #expect(response.text == #"{"result":"reject"}"#)
            }
            let events = try await AuditEvent.query(on: ctx.app.db).filter(\.$event ~~ ["validate.accepted", "validate.rejected"]).all()
            #expect(events.count == 5)
            #expect(events.allSatisfy { $0.practiceID == practice.id })
        }
    }

    @Test func failuresCountTowardTheLockout() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let user = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let key = try await Self.key(ctx, practice: practice)
            for _ in 0..<20 {
                ctx.clock.advance(61)
                _ = try await Self.validate(ctx, key: key, ["username": "dr.smith", "code": "000000"])
            }
            // counted on this API key's channel, not on the web sign-in's
            #expect(try await User.find(user.id, on: ctx.app.db)?.secondFactorFailures == 0)
            let channel = try await ctx.app.db.sql.raw("SELECT failures FROM second_factor_counters WHERE user_id = \(bind: user.id!)")
                .first(decoding: ChannelRow.self)
            #expect(channel?.failures == 20)
            ctx.clock.advance(30)
            let locked = try await Self.validate(
                ctx, key: key, ["username": "dr.smith", "code": try Fixtures.code(enrolled.secret, at: ctx.clock.now)])
            #expect(locked.json["result"] as? String == "reject")
            ctx.clock.advance(15 * 60)
            let unlocked = try await Self.validate(
                ctx, key: key, ["username": "dr.smith", "code": try Fixtures.code(enrolled.secret, at: ctx.clock.now)])
            #expect(unlocked.json["result"] as? String == "accept")
        }
    }

    @Test func keysAreCheckedAndBadInputIsAClearFourHundred() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let key = try await Self.key(ctx, practice: practice)
            #expect(try await Self.validate(ctx, key: nil, ["username": "a", "code": "123456"]).status == .unauthorized)
            #expect(try await Self.validate(ctx, key: "tfk_not-a-key", ["username": "a", "code": "123456"]).status == .unauthorized)
            #expect(try await Self.validate(ctx, key: "Bearer", ["username": "a", "code": "123456"]).status == .unauthorized)
            for body: [String: any Sendable] in [
                ["username": "a"], ["code": "123456"], ["username": 5, "code": "123456"], ["username": "a", "code": "12ab56"],
                ["username": "a", "code": "12"], ["username": "", "code": "123456"],
            ] {
                let response = try await Self.validate(ctx, key: key, body)
                #expect(response.status == .badRequest, "\(body)")
                #expect(response.json["error"] as? Bool == true)
            }
            let huge = try await Self.validate(ctx, key: key, ["username": String(repeating: "a", count: 10_000), "code": "123456"])
            #expect((400..<500).contains(huge.status.code))
            let record = try #require(try await APIKey.query(on: ctx.app.db).first())
            _ = try await APIKeyService(database: ctx.app.db, now: ctx.clock.now).revoke(id: record.id!)
            // Instances remember a key for a few seconds; after that a revoked key is refused everywhere.
            #expect(try await Self.validate(ctx, key: key, ["username": "a", "code": "123456"]).status == .ok)
            ctx.clock.advance(APIKeyCache.lifetime)
            let revoked = try await Self.validate(ctx, key: key, ["username": "a", "code": "123456"])
            #expect(revoked.status == .unauthorized)
            #expect(revoked.reason.contains("revoked"))
            #expect(try await APIKey.query(on: ctx.app.db).filter(\.$keyHash == key).count() == 0)
        }
    }
}
