import Crypto
import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("Push approval")
struct PushTests {
    @Test func deviceEnrollsBesideAnAppAndApprovesASignInWithTheMatchingNumber() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPush(ctx)
            let factors = try await enrolled.client.send(.GET, "/api/v1/me/factors").jsonArray
            #expect(Set(factors.compactMap { $0["kind"] as? String }) == ["totp", "push"])
            #expect(factors.first { $0["kind"] as? String == "push" }?["nickname"] as? String == "Test phone")
            #expect(factors.first { $0["kind"] as? String == "totp" }?["primary"] as? Bool == true)

            let client = try await Flows.halfSignedIn(ctx)
            let start = try await client.send(.POST, "/api/v1/login/push", json: [:])
            #expect(start.status == .ok, "\(start.text)")
            let challengeID = try #require(start.json["challengeId"] as? String)
            let number = try #require(start.json["number"] as? Int)
            #expect((10...99).contains(number))
            #expect(try await client.send(.GET, "/api/v1/login/push/\(challengeID)").json["status"] as? String == "pending")

            let pending = try await enrolled.device.pending(ctx)
            #expect(pending.count == 1)
            #expect((pending.first?["summary"] as? String)?.contains("Riverside Family Medicine") == true)
            #expect(pending.first?["number"] == nil, "the device must not be told the number")

            let approved = try await enrolled.device.approve(ctx, challengeID, number: number)
            #expect(approved.status == .ok, "\(approved.text)")
            let done = try await client.send(.GET, "/api/v1/login/push/\(challengeID)")
            #expect(done.json["status"] as? String == "authenticated", "\(done.text)")
            #expect(try await client.send(.GET, "/api/v1/me").json["stage"] as? String == "signed_in")
            #expect(try await enrolled.device.approve(ctx, challengeID, number: number).status == .conflict)
        }
    }

    @Test func wrongNumberDenialFraudAndExpiryAreRefused() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPush(ctx)
            let client = try await Flows.halfSignedIn(ctx)

            let first = try await client.send(.POST, "/api/v1/login/push", json: ["factorId": enrolled.factorID])
            let firstID = try #require(first.json["challengeId"] as? String)
            let wrongNumber = (try #require(first.json["number"] as? Int)) == 99 ? 10 : 99
            #expect(try await enrolled.device.approve(ctx, firstID, number: wrongNumber).status == .unprocessableEntity)
            #expect(try await client.send(.GET, "/api/v1/login/push/\(firstID)").json["status"] as? String == "denied")

            let second = try await client.send(.POST, "/api/v1/login/push", json: [:])
            let secondID = try #require(second.json["challengeId"] as? String)
            let denied = try await enrolled.device.send(
                ctx, .POST, "/api/v1/push/challenges/\(secondID)", json: ["decision": "deny", "fraud": true])
            #expect(denied.json["status"] as? String == "denied")
            #expect(try await client.send(.GET, "/api/v1/login/push/\(secondID)").json["status"] as? String == "denied")
            let fraud = try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "push.fraud_reported").all()
            #expect(fraud.count == 1)

            let third = try await client.send(.POST, "/api/v1/login/push", json: [:])
            let thirdID = try #require(third.json["challengeId"] as? String)
            ctx.clock.advance(121)
            #expect(try await client.send(.GET, "/api/v1/login/push/\(thirdID)").json["status"] as? String == "expired")
            #expect(try await enrolled.device.approve(ctx, thirdID, number: try #require(third.json["number"] as? Int)).status == .conflict)
            #expect(try await enrolled.device.pending(ctx).isEmpty)
        }
    }

    @Test func signedRequestsRefuseWrongKeysAlteredBodiesReplaysAndOldTimestamps() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPush(ctx)
            let device = enrolled.device
            let path = "/api/v1/push/challenges"

            let impostor = try device.headers(.GET, path, body: [], at: ctx.clock.now, key: P256.Signing.PrivateKey())
            #expect(try await ctx.app.testing().sendRequest(.GET, path, headers: impostor).status == .unauthorized)

            let signed = Array(#"{"decision":"deny"}"#.utf8)
            let altered = Array(#"{"decision":"approve","number":42}"#.utf8)
            let answerPath = "/api/v1/push/challenges/\(UUID().uuidString)"
            let alteredHeaders = try device.headers(.POST, answerPath, body: signed, at: ctx.clock.now)
            #expect(
                try await ctx.app.testing().sendRequest(.POST, answerPath, headers: alteredHeaders, body: ByteBuffer(bytes: altered)).status
                    == .unauthorized)

            let once = try device.headers(.GET, path, body: [], at: ctx.clock.now)
            #expect(try await ctx.app.testing().sendRequest(.GET, path, headers: once).status == .ok)
            let replay = try await ctx.app.testing().sendRequest(.GET, path, headers: once)
            #expect(replay.status == .unauthorized)
            #expect(replay.reason.contains("already used"))

            let old = try device.headers(.GET, path, body: [], at: ctx.clock.now.addingTimeInterval(-301))
            let stale = try await ctx.app.testing().sendRequest(.GET, path, headers: old)
            #expect(stale.status == .unauthorized)
            #expect(stale.reason.contains("timestamp"))

            var unsigned = HTTPHeaders()
            unsigned.add(name: DeviceRequestSignature.deviceHeader, value: device.id)
            #expect(try await ctx.app.testing().sendRequest(.GET, path, headers: unsigned).status == .unauthorized)
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "push.device_rejected").count() >= 3)
        }
    }

    @Test func enrollmentTokensWorkOnceAndExpire() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let totp = try await Flows.enrollTOTP(ctx)
            let start = try await totp.client.send(.POST, "/api/v1/me/factors/push", json: ["password": Fixtures.password])
            let uri = try #require(start.json["enrollmentURI"] as? String)
            #expect(uri.hasPrefix("twofold-push://enroll?server="))
            let (_, first) = try await TestDevice.enroll(ctx, uri: uri)
            #expect(first.status == .ok)
            let (_, again) = try await TestDevice.enroll(ctx, uri: uri)
            #expect(again.status == .unauthorized)

            let late = try await totp.client.send(.POST, "/api/v1/me/factors/push", json: ["password": Fixtures.password])
            ctx.clock.advance(601)
            let (_, expired) = try await TestDevice.enroll(ctx, uri: try #require(late.json["enrollmentURI"] as? String))
            #expect(expired.status == .unauthorized)
            #expect(expired.reason.contains("10 minutes"))

            let bad = try await APIClient(ctx).send(
                .POST, "/api/v1/push/enroll", json: ["token": "x", "publicKey": "AAAA", "proof": "AAAA"])
            #expect(bad.status == .badRequest)
        }
    }

    @Test func parallelAnswersToOneRequestLetExactlyOneThrough() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPush(ctx)
            let client = try await Flows.halfSignedIn(ctx)

            let start = try await client.send(.POST, "/api/v1/login/push", json: [:])
            let id = try #require(start.json["challengeId"] as? String)
            let number = try #require(start.json["number"] as? Int)
            let statuses = try await withThrowingTaskGroup(of: HTTPStatus.self) { group in
                for _ in 0..<10 { group.addTask { try await enrolled.device.approve(ctx, id, number: number).status } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .ok }.count == 1)
            #expect(statuses.filter { $0 == .conflict }.count == 9)

            let race = try await client.send(.POST, "/api/v1/login/push", json: [:])
            let raceID = try #require(race.json["challengeId"] as? String)
            let raceNumber = try #require(race.json["number"] as? Int)
            async let approve = enrolled.device.approve(ctx, raceID, number: raceNumber)
            async let deny = enrolled.device.send(ctx, .POST, "/api/v1/push/challenges/\(raceID)", json: ["decision": "deny"])
            let outcomes = try await [approve.status, deny.status]
            #expect(outcomes.filter { $0 == .ok }.count == 1)
            #expect(outcomes.filter { $0 == .conflict }.count == 1)

            // Many polls of one approved sign-in complete it once.
            let polls = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<6 {
                    group.addTask { try await client.send(.GET, "/api/v1/login/push/\(id)").json["status"] as? String ?? "error" }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(polls.filter { $0 == "authenticated" }.count == 1)
        }
    }

    @Test func requestsAreLimitedAndNeedAnActiveDevice() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Flows.enrollTOTP(ctx)
            let client = try await Flows.halfSignedIn(ctx)
            let none = try await client.send(.POST, "/api/v1/login/push", json: [:])
            #expect(none.status == .notFound)
            #expect(none.reason.contains("no active push device"))
        }
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Flows.enrollPush(ctx)
            let client = try await Flows.halfSignedIn(ctx)
            for _ in 0..<10 { #expect(try await client.send(.POST, "/api/v1/login/push", json: [:]).status == .ok) }
            #expect(try await client.send(.POST, "/api/v1/login/push", json: [:]).status == .tooManyRequests)
        }
    }
}
