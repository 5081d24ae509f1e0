import Crypto
import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("Step-up for sensitive actions")
struct StepUpTests {
    static let action: [String: any Sendable] = [
        "type": "order.sign", "summary": "Sign lab order: lipid panel for J. Doe",
        "hash": "9f2c1e0b7a6d5c4b3a29181706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3",
    ]

    static func key(_ ctx: TestContext, practice: Practice) async throws -> String {
        try await APIKeyService(database: ctx.app.db, now: ctx.clock.now).create(practiceID: practice.id!, name: "EHR").key
    }

    static func start(_ ctx: TestContext, key: String, username: String = "dr.smith") async throws -> TestingHTTPResponse {
        try await APIClient(ctx, token: key).send(.POST, "/api/v1/step-up", json: ["username": username, "action": action])
    }

    /// Verifies an assertion the way an integrator would: with the keys published at /.well-known/jwks.json, and a JOSE
    /// check that shares no code with Twofold's signer.
    static func verify(_ ctx: TestContext, _ assertion: String) async throws -> StepUpService.Claims {
        let jwks = try await ctx.app.testing().sendRequest(.GET, "/.well-known/jwks.json")
        let verified = try IndependentJWS.verify(assertion, jwks: Data(buffer: jwks.body))
        #expect(verified.header["alg"] as? String == "ES256")
        return try JSONDecoder().decode(StepUpService.Claims.self, from: verified.payload)
    }

    @Test func freshCodeYieldsOneSignedAssertionBoundToTheAction() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let user = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let key = try await Self.key(ctx, practice: practice)
            ctx.clock.advance(30)

            let started = try await Self.start(ctx, key: key)
            #expect(started.status == .created, "\(started.text)")
            #expect(started.json["methods"] as? [String] == ["totp"])
            let id = try #require(started.json["challengeId"] as? String)
            #expect((started.json["url"] as? String)?.hasSuffix("/step-up/\(id)") == true)

            let code = try Fixtures.code(enrolled.secret, at: ctx.clock.now)
            let verified = try await APIClient(ctx, token: key).send(.POST, "/api/v1/step-up/\(id)/verify", json: ["code": code])
            #expect(verified.status == .ok, "\(verified.text)")
            let claims = try await Self.verify(ctx, try #require(verified.json["assertion"] as? String))
            #expect(claims.sub == user.id!.uuidString)
            #expect(claims.practice == practice.id!.uuidString)
            #expect(claims.amr == ["otp"])
            #expect(claims.action_hash == Self.action["hash"] as? String)
            #expect(claims.action_type == "order.sign")
            #expect(claims.jti == id)
            #expect(claims.exp - claims.iat == 300)

            // One step-up, one assertion; and the time step is spent for every other use.
            #expect(
                try await APIClient(ctx, token: key).send(.POST, "/api/v1/step-up/\(id)/verify", json: ["code": code]).status == .conflict)
            #expect(try await APIClient(ctx, token: key).send(.GET, "/api/v1/step-up/\(id)").json["assertion"] == nil)
            let another = try #require(try await Self.start(ctx, key: key).json["challengeId"] as? String)
            let replay = try await APIClient(ctx, token: key).send(.POST, "/api/v1/step-up/\(another)/verify", json: ["code": code])
            #expect(replay.status == .unauthorized)
            #expect(replay.reason.contains("already been used"))
        }
    }

    @Test func parallelVerificationsOfOneStepUpYieldOneAssertion() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let key = try await Self.key(ctx, practice: practice)
            ctx.clock.advance(30)
            let id = try #require(try await Self.start(ctx, key: key).json["challengeId"] as? String)
            let code = try Fixtures.code(enrolled.secret, at: ctx.clock.now)
            let results = try await withThrowingTaskGroup(of: (HTTPStatus, Bool).self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        let response = try await APIClient(ctx, token: key).send(
                            .POST, "/api/v1/step-up/\(id)/verify", json: ["code": code])
                        return (response.status, response.json["assertion"] != nil)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.filter { $0.1 }.count == 1)
            #expect(results.filter { $0.0 == .ok }.count == 1)
        }
    }

    @Test func pushApprovalShowsTheActionAndTheFirstPollCollectsTheAssertion() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPush(ctx)
            let key = try await Self.key(ctx, practice: practice)
            let started = try await Self.start(ctx, key: key)
            #expect(started.json["methods"] as? [String] == ["totp", "push"])
            let id = try #require(started.json["challengeId"] as? String)
            let push = try await APIClient(ctx, token: key).send(.POST, "/api/v1/step-up/\(id)/push", json: [:])
            #expect(push.status == .ok, "\(push.text)")
            let number = try #require(push.json["number"] as? Int)

            let pending = try await enrolled.device.pending(ctx)
            #expect(pending.first?["purpose"] as? String == "step_up")
            #expect((pending.first?["summary"] as? String)?.contains("lipid panel") == true)
            #expect(try await APIClient(ctx, token: key).send(.GET, "/api/v1/step-up/\(id)").json["status"] as? String == "pending")
            #expect(try await enrolled.device.approve(ctx, try #require(pending.first?["id"] as? String), number: number).status == .ok)

            let first = try await APIClient(ctx, token: key).send(.GET, "/api/v1/step-up/\(id)")
            #expect(first.json["status"] as? String == "completed")
            #expect(try await Self.verify(ctx, try #require(first.json["assertion"] as? String)).amr == ["push"])
            let second = try await APIClient(ctx, token: key).send(.GET, "/api/v1/step-up/\(id)")
            #expect(second.json["status"] as? String == "completed")
            #expect(second.json["assertion"] == nil)
        }
    }

    @Test func aDenialOnTheDeviceCancelsTheStepUp() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPush(ctx)
            let key = try await Self.key(ctx, practice: practice)
            let id = try #require(try await Self.start(ctx, key: key).json["challengeId"] as? String)
            #expect(try await APIClient(ctx, token: key).send(.POST, "/api/v1/step-up/\(id)/push", json: [:]).status == .ok)
            let push = try #require(try await enrolled.device.pending(ctx).first?["id"] as? String)
            #expect(try await enrolled.device.send(ctx, .POST, "/api/v1/push/challenges/\(push)", json: ["decision": "deny"]).status == .ok)
            let status = try await APIClient(ctx, token: key).send(.GET, "/api/v1/step-up/\(id)")
            #expect(status.json["status"] as? String == "cancelled")
            #expect(status.json["assertion"] == nil)
        }
    }

    @Test func practicesUsersActionsAndMethodsAreChecked() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let other = try await Fixtures.practice(ctx, name: "Lakeside")
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Fixtures.user(ctx, practice: practice, username: "no.factor")
            _ = try await Flows.enrollTOTP(ctx)
            let key = try await Self.key(ctx, practice: practice)
            let otherKey = try await Self.key(ctx, practice: other)

            #expect(try await Self.start(ctx, key: otherKey).status == .notFound)
            let noFactor = try await Self.start(ctx, key: key, username: "no.factor")
            #expect(noFactor.status == .conflict)
            #expect(noFactor.reason.contains("never a text message"))
            var badAction = Self.action
            badAction["summary"] = ""
            #expect(
                try await APIClient(ctx, token: key).send(.POST, "/api/v1/step-up", json: ["username": "dr.smith", "action": badAction])
                    .status == .badRequest)
            #expect(
                try await APIClient(ctx, token: key).send(.POST, "/api/v1/step-up", json: ["action": Self.action]).status == .badRequest)
            #expect(
                try await APIClient(ctx, token: "tfk_wrong").send(
                    .POST, "/api/v1/step-up", json: ["username": "dr.smith", "action": Self.action]
                ).status == .unauthorized)

            let id = try #require(try await Self.start(ctx, key: key).json["challengeId"] as? String)
            #expect(try await APIClient(ctx, token: otherKey).send(.GET, "/api/v1/step-up/\(id)").status == .notFound)
            for _ in 0..<4 {
                #expect(
                    try await APIClient(ctx, token: key).send(.POST, "/api/v1/step-up/\(id)/verify", json: ["code": "000000"]).status
                        == .unauthorized)
            }
            #expect(
                try await APIClient(ctx, token: key).send(.POST, "/api/v1/step-up/\(id)/verify", json: ["code": "000000"]).status
                    == .conflict)
            #expect(try await APIClient(ctx, token: key).send(.GET, "/api/v1/step-up/\(id)").json["status"] as? String == "cancelled")

            let late = try #require(try await Self.start(ctx, key: key).json["challengeId"] as? String)
            ctx.clock.advance(301)
            #expect(
                try await APIClient(ctx, token: key).send(.POST, "/api/v1/step-up/\(late)/verify", json: ["code": "123456"]).status == .gone
            )
        }
    }

    @Test func rotationKeepsThePreviousKeyPublishedForADay() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let key = try await Self.key(ctx, practice: practice)
            func assertion() async throws -> String {
                ctx.clock.advance(30)
                let id = try #require(try await Self.start(ctx, key: key).json["challengeId"] as? String)
                let response = try await APIClient(ctx, token: key).send(
                    .POST, "/api/v1/step-up/\(id)/verify",
                    json: ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now)])
                return try #require(response.json["assertion"] as? String)
            }
            let before = try await assertion()
            let store = SigningKeyStore(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now.addingTimeInterval(1))
            let rotated = try await store.rotate(.es256).key
            let after = try await assertion()
            _ = try await Self.verify(ctx, before)
            _ = try await Self.verify(ctx, after)
            #expect(after.hasPrefix(Base64URL.encode(Array(#"{"alg":"ES256","kid":"\#(rotated.kid)","typ":"JWT"}"#.utf8))))
            let stored = try #require(try await SigningKey.query(on: ctx.app.db).filter(\.$algorithm == .es256).first())
            #expect(!String(decoding: stored.sealedPrivateKey, as: UTF8.self).contains("BEGIN"))

            // A second rotation leaves the first key published too, as long as its retirement is less than a day old.
            _ = try await SigningKeyStore(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now).rotate(.es256)
            _ = try await Self.verify(ctx, before)

            // A day after its retirement the first key is no longer published: its assertions no longer verify. The
            // second key, retired by the later rotation, is still published a little longer.
            ctx.clock.advance(SigningKeyStore.publishedAfterRetirement - 1)
            await #expect(throws: IndependentJWS.Failure.unknownKey) { _ = try await Self.verify(ctx, before) }
            _ = try await Self.verify(ctx, after)
        }
    }
}
