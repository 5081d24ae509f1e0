import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

extension Flows {
    struct PasskeyEnrolled {
        var client: APIClient
        var authenticator: SoftAuthenticator
        var factorID: String
        var recoveryCodes: [String]
    }

    /// Signs in (2FA off) and adds a software passkey over the API.
    static func enrollPasskey(_ ctx: TestContext, username: String = "dr.smith") async throws -> PasskeyEnrolled {
        let (client, _, _) = try await APIClient.login(ctx, username: username)
        let options = try await client.send(.POST, "/api/v1/me/factors/webauthn/options", json: ["password": Fixtures.password])
        #expect(options.status == .ok, "\(options.text)")
        let authenticator = SoftAuthenticator()
        let created = try await client.send(
            .POST, "/api/v1/me/factors/webauthn", document: ["credential": authenticator.create(options.json), "nickname": "Office laptop"])
        #expect(created.status == .created, "\(created.text)")
        let factor = try #require(created.json["factor"] as? [String: Any])
        return PasskeyEnrolled(
            client: client, authenticator: authenticator, factorID: try #require(factor["id"] as? String),
            recoveryCodes: created.json["recoveryCodes"] as? [String] ?? [])
    }

    /// Password step, then the passkey: returns the signed-in client.
    static func signInWithPasskey(_ ctx: TestContext, _ authenticator: SoftAuthenticator) async throws -> (APIClient, TestingHTTPResponse) {
        let client = try await halfSignedIn(ctx)
        let options = try await client.send(.POST, "/api/v1/login/webauthn/options")
        #expect(options.status == .ok, "\(options.text)")
        return (
            client, try await client.send(.POST, "/api/v1/login/webauthn", document: ["credential": try authenticator.get(options.json)])
        )
    }
}

@Suite("Passkeys")
struct PasskeyTests {
    static func events(_ ctx: TestContext, _ name: String) async throws -> [AuditEvent] {
        try await AuditEvent.query(on: ctx.app.db).filter(\.$event == name).all()
    }

    @Test func userAddsAPasskeyAndSignsInWithIt() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let user = try await Fixtures.user(ctx, practice: practice)
            let (client, _, _) = try await APIClient.login(ctx)
            #expect(try await client.send(.POST, "/api/v1/me/factors/webauthn/options", json: ["password": "wrong"]).status == .forbidden)

            let options = try await client.send(.POST, "/api/v1/me/factors/webauthn/options", json: ["password": Fixtures.password])
            #expect(options.status == .ok, "\(options.text)")
            #expect((options.json["rp"] as? [String: Any])?["id"] as? String == "localhost")
            #expect((options.json["rp"] as? [String: Any])?["name"] as? String == "Riverside Family Medicine")
            #expect((options.json["user"] as? [String: Any])?["id"] as? String == Base64URL.encode(PasskeyService.userHandle(user.id!)))
            #expect((options.json["user"] as? [String: Any])?["name"] as? String == "dr.smith")
            #expect((options.json["challenge"] as? String).map { (try? Base64URL.decode($0))?.count } == 32)
            #expect((options.json["authenticatorSelection"] as? [String: Any])?["residentKey"] as? String == "preferred")
            #expect((options.json["excludeCredentials"] as? [Any])?.isEmpty == true)

            let authenticator = SoftAuthenticator()
            let created = try await client.send(
                .POST, "/api/v1/me/factors/webauthn",
                document: ["credential": authenticator.create(options.json), "nickname": "Office laptop"])
            #expect(created.status == .created, "\(created.text)")
            let factor = try #require(created.json["factor"] as? [String: Any])
            #expect(factor["kind"] as? String == "webauthn")
            #expect(factor["nickname"] as? String == "Office laptop")
            #expect(factor["primary"] as? Bool == true)
            #expect((created.json["recoveryCodes"] as? [String])?.count == 10)
            #expect(try await Self.events(ctx, "passkey.added").count == 1)

            // The same authenticator is excluded next time, and refused if it tries again.
            let again = try await client.send(.POST, "/api/v1/me/factors/webauthn/options", json: ["password": Fixtures.password])
            #expect((again.json["excludeCredentials"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [authenticator.id])
            let duplicate = try await client.send(
                .POST, "/api/v1/me/factors/webauthn", document: ["credential": authenticator.create(again.json)])
            #expect(duplicate.status == .conflict, "\(duplicate.text)")

            let half = try await Flows.halfSignedIn(ctx)
            let request = try await half.send(.POST, "/api/v1/login/webauthn/options")
            #expect(request.status == .ok, "\(request.text)")
            #expect((request.json["allowCredentials"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == [authenticator.id])
            #expect((request.json["allowCredentials"] as? [[String: Any]])?.first?["transports"] as? [String] == ["internal", "hybrid"])
            #expect(request.json["rpId"] as? String == "localhost")
            let signedIn = try await half.send(
                .POST, "/api/v1/login/webauthn", document: ["credential": try authenticator.get(request.json), "rememberBrowser": true])
            #expect(signedIn.status == .ok, "\(signedIn.text)")
            #expect(signedIn.json["status"] as? String == "authenticated")
            #expect(signedIn.json["rememberToken"] as? String != nil)
            #expect(try await half.send(.GET, "/api/v1/me").json["stage"] as? String == "signed_in")
            #expect(try await Self.events(ctx, "passkey.used").count == 1)
            let stored = try #require(try await Factor.query(on: ctx.app.db).filter(\.$kind == .webauthn).first())
            #expect(stored.signCount == 1)
            #expect(stored.lastUsedAt != nil)
        }
    }

    @Test func challengesAreSingleUseBoundToTheirSessionAndExpire() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPasskey(ctx)
            let device = enrolled.authenticator

            let half = try await Flows.halfSignedIn(ctx)
            let options = try await half.send(.POST, "/api/v1/login/webauthn/options")
            let assertion = try device.get(options.json)
            #expect(try await half.send(.POST, "/api/v1/login/webauthn", document: ["credential": assertion]).status == .ok)
            let replay = try await Flows.halfSignedIn(ctx)
            let replayed = try await replay.send(.POST, "/api/v1/login/webauthn", document: ["credential": assertion])
            #expect(replayed.status == .badRequest)
            #expect(replayed.reason.contains("expired or was already used"))

            // A challenge issued to one half-signed-in session cannot finish another.
            let first = try await Flows.halfSignedIn(ctx)
            let second = try await Flows.halfSignedIn(ctx)
            let firstOptions = try await first.send(.POST, "/api/v1/login/webauthn/options")
            #expect(
                try await second.send(.POST, "/api/v1/login/webauthn", document: ["credential": try device.get(firstOptions.json)]).status
                    == .badRequest)

            // A registration challenge does not answer a sign-in.
            let registration = try await enrolled.client.send(
                .POST, "/api/v1/me/factors/webauthn/options", json: ["password": Fixtures.password])
            #expect(
                try await second.send(.POST, "/api/v1/login/webauthn", document: ["credential": try device.get(registration.json)]).status
                    == .badRequest)

            // Five minutes later the challenge is gone.
            let late = try await second.send(.POST, "/api/v1/login/webauthn/options")
            ctx.clock.advance(ctx.app.policy.passkeys.challengeLifetime + 1)
            let expired = try await second.send(.POST, "/api/v1/login/webauthn", document: ["credential": try device.get(late.json)])
            #expect(expired.status == .badRequest, "\(expired.text)")
        }
    }

    @Test func badAssertionsAreRefusedAuditedAndCountedAsFailures() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPasskey(ctx)
            let half = try await Flows.halfSignedIn(ctx)

            let phished = enrolled.authenticator
            phished.origin = "http://localhost.evil.example:8080"
            var options = try await half.send(.POST, "/api/v1/login/webauthn/options")
            let wrongOrigin = try await half.send(.POST, "/api/v1/login/webauthn", document: ["credential": try phished.get(options.json)])
            #expect(wrongOrigin.status == .unauthorized)
            #expect(wrongOrigin.reason.contains("origin"))
            phished.origin = "http://localhost:8080"

            options = try await half.send(.POST, "/api/v1/login/webauthn/options")
            var tampered = try phished.get(options.json)
            var response = try #require(tampered["response"] as? [String: Any])
            response["signature"] = Base64URL.encode(SecureRandom.bytes(70))
            tampered["response"] = response
            #expect(try await half.send(.POST, "/api/v1/login/webauthn", document: ["credential": tampered]).status == .unauthorized)

            options = try await half.send(.POST, "/api/v1/login/webauthn/options")
            let stranger = try await half.send(
                .POST, "/api/v1/login/webauthn", document: ["credential": try SoftAuthenticator().get(options.json)])
            #expect(stranger.status == .unauthorized)
            #expect(stranger.reason.contains("not registered"))

            let malformed = try await half.send(.POST, "/api/v1/login/webauthn", document: ["credential": ["id": 7]])
            #expect(malformed.status == .badRequest)
            #expect(malformed.reason.contains("PublicKeyCredential.toJSON()"))
            let garbage = try await half.send(
                .POST, "/api/v1/login/webauthn",
                document: [
                    "credential": [
                        "id": "AA", "rawId": "AA", "type": "public-key",
                        "response": ["clientDataJSON": "bm90IGpzb24", "authenticatorData": "AA", "signature": "AA"],
                    ]
                ])
            #expect(garbage.status == .badRequest, "\(garbage.text)")

            #expect(try await Self.events(ctx, "passkey.rejected").count == 2)
            let user = try #require(try await User.query(on: ctx.app.db).first())
            #expect(user.secondFactorFailures == 3)
            #expect(try await half.send(.GET, "/api/v1/me").status == .unauthorized, "still half signed in")
        }
    }

    @Test func aCounterThatGoesBackwardsIsAuditedAndRefusedWhenThePracticeSaysSo() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPasskey(ctx)
            let device = enrolled.authenticator
            #expect(try await Flows.signInWithPasskey(ctx, device).1.status == .ok)
            #expect(try await Flows.signInWithPasskey(ctx, device).1.status == .ok)

            device.signCount = 0 // a copy of the key that has not seen the last two sign-ins
            let refused = try await Flows.signInWithPasskey(ctx, device).1
            #expect(refused.status == .unauthorized)
            #expect(refused.reason.contains("copied"))
            let anomaly = try #require(try await Self.events(ctx, "passkey.sign_count_anomaly").first)
            let details = try #require(try JSONSerialization.jsonObject(with: Data(anomaly.details.utf8)) as? [String: String])
            #expect(details["stored"] == "2" && details["received"] == "1" && details["refused"] == "true")

            practice.refuseClonedPasskeys = false
            try await practice.save(on: ctx.app.db)
            device.signCount = 0
            #expect(try await Flows.signInWithPasskey(ctx, device).1.status == .ok)
            #expect(try await Self.events(ctx, "passkey.sign_count_anomaly").count == 2)
        }
    }

    @Test func passwordlessSignInWorksOnlyWhenThePracticeAllowsIt() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPasskey(ctx)
            let anonymous = APIClient(ctx)
            let off = try await anonymous.send(.POST, "/api/v1/login/webauthn/options")
            #expect(off.status == .forbidden)
            #expect(off.reason.contains("Passwordless sign-in is not turned on"))

            practice.allowPasswordless = true
            try await practice.save(on: ctx.app.db)
            let options = try await anonymous.send(.POST, "/api/v1/login/webauthn/options")
            #expect(options.status == .ok, "\(options.text)")
            #expect(options.json["userVerification"] as? String == "required")
            #expect((options.json["allowCredentials"] as? [Any])?.isEmpty == true)
            let signedIn = try await anonymous.send(
                .POST, "/api/v1/login/webauthn", document: ["credential": try enrolled.authenticator.get(options.json)])
            #expect(signedIn.status == .ok, "\(signedIn.text)")
            let token = try #require(signedIn.json["token"] as? String)
            #expect(try await APIClient(ctx, token: token).send(.GET, "/api/v1/me").json["stage"] as? String == "signed_in")
            let audit = try await Self.events(ctx, "sign_in.succeeded").filter { $0.details.contains("passkey_passwordless") }
            #expect(audit.count == 1)

            // Without user verification (a PIN or biometric) a passkey alone is not enough.
            enrolled.authenticator.userVerifies = false
            let noUV = try await anonymous.send(
                .POST, "/api/v1/login/webauthn",
                document: [
                    "credential": try enrolled.authenticator.get(try await anonymous.send(.POST, "/api/v1/login/webauthn/options").json)
                ])
            #expect(noUV.status == .unauthorized)
            #expect(noUV.reason.contains("verify the user"))
            enrolled.authenticator.userVerifies = true

            // The user handle must name the passkey's owner.
            var wrongUser = try enrolled.authenticator.get(try await anonymous.send(.POST, "/api/v1/login/webauthn/options").json)
            var response = try #require(wrongUser["response"] as? [String: Any])
            response["userHandle"] = Base64URL.encode(SecureRandom.bytes(16))
            wrongUser["response"] = response
            #expect(try await anonymous.send(.POST, "/api/v1/login/webauthn", document: ["credential": wrongUser]).status == .badRequest)
        }
    }

    @Test func passkeysCanBeRemovedAndTurnedOffPerPractice() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPasskey(ctx)
            let factors = try await enrolled.client.send(.GET, "/api/v1/me/factors").jsonArray
            #expect(factors.first?["kind"] as? String == "webauthn")
            #expect(factors.first?["synced"] as? Bool == false)
            // the only method: removing it turns 2FA off, so it needs a recovery code besides the password
            let withoutProof = try await enrolled.client.send(
                .DELETE, "/api/v1/me/factors/\(enrolled.factorID)", json: ["password": Fixtures.password])
            #expect(withoutProof.status == .badRequest)
            #expect(withoutProof.reason.contains("recovery codes"))
            let recoveryCode = try #require(enrolled.recoveryCodes.first)
            let removed = try await enrolled.client.send(
                .DELETE, "/api/v1/me/factors/\(enrolled.factorID)", json: ["password": Fixtures.password, "code": recoveryCode])
            #expect(removed.status == .noContent, "\(removed.text)")
            #expect(try await Self.events(ctx, "passkey.removed").count == 1)

            practice.allowPasskeys = false
            try await practice.save(on: ctx.app.db)
            let refused = try await enrolled.client.send(
                .POST, "/api/v1/me/factors/webauthn/options", json: ["password": Fixtures.password])
            #expect(refused.status == .forbidden)
            #expect(refused.reason.contains("does not allow passkeys"))
        }
    }
}
