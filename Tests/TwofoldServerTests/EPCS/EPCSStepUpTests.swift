import Crypto
import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// Signing a controlled-substance prescription: only with a permission (§1311.125), with two factors at that moment
/// (§1311.115, §1311.140), on a device the practice counts (§1311.116), after the attestation is shown (§1311.140(a)(3)).
@Suite("EPCS: signing step-up")
struct EPCSStepUpTests {
    static func sha256Hex(_ text: String) -> String {
        SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    @Test func testStepUpWithoutGrantIsRefusedAndAudited() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let key = try await h.apiKey()
            let refused = try await h.startStepUp(key: key)
            #expect(refused.status == .forbidden)
            #expect(refused.reason.contains("no active permission"))
            #expect(refused.json["challengeId"] == nil)
            #expect(try await StepUpChallenge.query(on: ctx.app.db).count() == 0)

            let events = try await h.events(.epcsUnauthorizedAttempt)
            #expect(events.count == 1)
            let event = try #require(events.first)
            #expect(event.subjectID == h.prescriberUser.id)
            #expect(event.practiceID == h.practice.id)
            #expect(EPCSHarness.details(event)["action"] == "epcs_step_up")
            #expect(EPCSHarness.details(event)["api_key"] == "EHR")
            // The administrators see it in the practice's audit log.
            let audit = try await h.firstClient.send(.GET, "/api/v1/practice/audit?type=epcs.unauthorized_attempt")
            #expect(audit.status == .ok)
            #expect((audit.json["events"] as? [[String: Any]])?.count == 1)

            // Other actions keep today's single fresh factor.
            let other = try await h.startStepUp(key: key, action: StepUpTests.action)
            #expect(other.status == .created, "\(other.text)")
            #expect(other.json["factorsRequired"] == nil)
            #expect(other.json["attestation"] == nil)
            let id = try #require(other.json["challengeId"] as? String)
            let verified = try await APIClient(ctx, token: key).send(
                .POST, "/api/v1/step-up/\(id)/verify",
                json: ["code": try Fixtures.code(h.prescriber.secret, at: ctx.clock.now)])
            #expect(verified.status == .ok, "\(verified.text)")
            #expect(try await StepUpTests.verify(ctx, try #require(verified.json["assertion"] as? String)).amr == ["otp"])
        }
    }

    @Test func testStepUpNeedsPasswordAndHardToken() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            try await h.grant()
            let key = try await h.apiKey()
            ctx.clock.advance(30)
            let started = try await h.startStepUp(key: key)
            #expect(started.status == .created, "\(started.text)")
            #expect(started.json["methods"] as? [String] == ["totp"])
            #expect(started.json["factorsRequired"] as? [String] == ["password", "hard_token"])
            let id = try #require(started.json["challengeId"] as? String)
            let client = APIClient(ctx, token: key)
            let code = try Fixtures.code(h.prescriber.secret, at: ctx.clock.now)

            // A code alone is not enough: the password is the other factor.
            let noPassword = try await client.send(.POST, "/api/v1/step-up/\(id)/verify", json: ["code": code])
            #expect(noPassword.status == .badRequest)
            #expect(noPassword.reason.contains("password"))
            let emptyPassword = try await client.send(.POST, "/api/v1/step-up/\(id)/verify", json: ["code": code, "password": ""])
            #expect(emptyPassword.status == .badRequest)
            #expect(try await h.events(.stepUpFailed).isEmpty)

            // A wrong password: 401, counted against the step-up and audited as a failed EPCS signing.
            let wrong = try await client.send(.POST, "/api/v1/step-up/\(id)/verify", json: ["code": code, "password": "not my password"])
            #expect(wrong.status == .unauthorized)
            #expect(wrong.json["assertion"] == nil)
            let failed = try await h.events(.epcsSigningFailed)
            #expect(failed.count == 1)
            #expect(EPCSHarness.details(try #require(failed.first))["reason"] == "wrong_password")
            #expect(EPCSHarness.details(try #require(failed.first))["attempts"] == "1")
            let challenge = try #require(try await StepUpChallenge.find(try #require(UUID(uuidString: id)), on: ctx.app.db))
            #expect(challenge.failedAttempts == 1)

            // The right password with a wrong code is still refused.
            let wrongCode = try await client.send(
                .POST, "/api/v1/step-up/\(id)/verify", json: ["code": try h.wrongCode(h.prescriber.secret), "password": Fixtures.password])
            #expect(wrongCode.status == .unauthorized)

            // Both right: an assertion naming both factors.
            ctx.clock.advance(30)
            let verified = try await client.send(
                .POST, "/api/v1/step-up/\(id)/verify",
                json: [
                    "code": try Fixtures.code(h.prescriber.secret, at: ctx.clock.now), "password": Fixtures.password,
                ])
            #expect(verified.status == .ok, "\(verified.text)")
            let claims = try await StepUpTests.verify(ctx, try #require(verified.json["assertion"] as? String))
            #expect(claims.amr == ["pwd", "otp"])
            #expect(claims.action_type == "epcs")
            #expect(claims.epcs?.factors == ["knowledge", "hard_token"])
            let completed = try await h.events(.epcsSigningCompleted)
            #expect(completed.count == 1)
            #expect(EPCSHarness.details(try #require(completed.first))["amr"] == "pwd otp")

            // Five attempts in all cancel a signing: wrong passwords cannot be tried without end.
            ctx.clock.advance(30)
            let next = try #require(try await h.startStepUp(key: key).json["challengeId"] as? String)
            var statuses: [HTTPStatus] = []
            for _ in 0..<TwofoldPolicy.standard.stepUp.guessesPerChallenge {
                statuses.append(
                    try await client.send(.POST, "/api/v1/step-up/\(next)/verify", json: ["code": code, "password": "guess"]).status)
            }
            #expect(statuses.dropLast().allSatisfy { $0 == .unauthorized }, "\(statuses)")
            #expect(statuses.last == .conflict)
            #expect(try await client.send(.GET, "/api/v1/step-up/\(next)").json["status"] as? String == "cancelled")
        }
    }

    @Test func testIneligibleDevicesAreRefused() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            try await h.grant()
            let key = try await h.apiKey()

            // The factor list says which devices count.
            let listed = try await h.prescriber.client.send(.GET, "/api/v1/me/factors")
            #expect(listed.status == .ok)
            #expect(listed.jsonArray.first?["epcsEligible"] as? Bool == true)

            // The practice stops counting authenticator apps: there is nothing left to sign with.
            let settings = try await h.firstClient.send(.GET, "/api/v1/practice/epcs/settings")
            #expect(settings.status == .ok)
            #expect(settings.json["eligibleTokens"] as? [String] == ["push", "totp", "security_key"])
            let patched = try await h.firstClient.send(
                .PATCH, "/api/v1/practice/epcs/settings",
                json: ["eligibleTokens": ["push"], "adminPassword": Fixtures.password])
            #expect(patched.status == .ok, "\(patched.text)")
            #expect(patched.json["eligibleTokens"] as? [String] == ["push"])
            // Fields not sent keep their values.
            #expect(patched.json["workingHoursStart"] as? Int == settings.json["workingHoursStart"] as? Int)
            #expect(patched.json["workingHoursEnd"] as? Int == settings.json["workingHoursEnd"] as? Int)
            #expect(try await h.events(.epcsSettingsChanged).count == 1)
            #expect(try await h.prescriber.client.send(.GET, "/api/v1/me/factors").jsonArray.first?["epcsEligible"] as? Bool == false)

            let refused = try await h.startStepUp(key: key)
            #expect(refused.status == .conflict)
            #expect(refused.reason.contains("no device the practice counts"))
            // An ordinary step-up still takes the authenticator app.
            #expect(try await h.startStepUp(key: key, action: StepUpTests.action).json["methods"] as? [String] == ["totp"])

            // Text messages can never be made eligible; bad settings are refused with a reason.
            let sms = try await h.firstClient.send(
                .PATCH, "/api/v1/practice/epcs/settings", json: ["eligibleTokens": ["sms"], "adminPassword": Fixtures.password])
            #expect(sms.status == .badRequest)
            #expect(sms.reason.contains("eligibleTokens[0] must be one of push, totp, security_key"), "\(sms.reason)")
            #expect(
                try await h.firstClient.send(
                    .PATCH, "/api/v1/practice/epcs/settings",
                    json: ["workingHoursStart": 20, "workingHoursEnd": 8, "adminPassword": Fixtures.password]
                ).status == .badRequest)
            #expect(
                try await h.firstClient.send(
                    .PATCH, "/api/v1/practice/epcs/settings",
                    json: ["securityKeyAAGUIDs": ["not-a-uuid"], "adminPassword": Fixtures.password]
                ).status == .badRequest)
            #expect(
                try await h.firstClient.send(.PATCH, "/api/v1/practice/epcs/settings", json: ["eligibleTokens": ["totp"]]).status
                    == .badRequest)
            #expect(
                try await h.firstClient.send(
                    .PATCH, "/api/v1/practice/epcs/settings", json: ["eligibleTokens": ["totp"], "adminPassword": ""]
                ).status == .unauthorized)
            #expect(
                try await h.firstClient.send(
                    .PATCH, "/api/v1/practice/epcs/settings", json: ["eligibleTokens": "totp", "adminPassword": Fixtures.password]
                ).status == .badRequest)

            // Counting authenticator apps again restores signing.
            #expect(
                try await h.firstClient.send(
                    .PATCH, "/api/v1/practice/epcs/settings",
                    json: ["eligibleTokens": ["totp", "push"], "adminPassword": Fixtures.password]
                ).status == .ok)
            #expect(try await h.startStepUp(key: key).status == .created)

            // A prescriber whose only second factor is a text message is refused, even with a grant.
            let smsUser = try await Fixtures.user(ctx, practice: h.practice, username: "dr.sms")
            let (smsClient, _, _) = try await APIClient.login(ctx, username: "dr.sms")
            let start = try await smsClient.send(.POST, "/api/v1/me/factors/sms", json: ["password": Fixtures.password])
            let smsFactor = try #require(start.json["factorId"] as? String)
            let smsCode = try #require(try await Fixtures.latestOutboxCode(ctx))
            #expect(try await smsClient.send(.POST, "/api/v1/me/factors/\(smsFactor)/activate", json: ["code": smsCode]).status == .ok)
            #expect(try await smsClient.send(.GET, "/api/v1/me/factors").jsonArray.first?["epcsEligible"] as? Bool == false)
            try await h.grant(smsUser, body: h.grantBody(deaNumber: EPCSHarness.otherDEANumber))
            let bySMS = try await h.startStepUp(key: key, username: "dr.sms")
            #expect(bySMS.status == .conflict)
            #expect(bySMS.json["challengeId"] == nil)
        }
    }

    @Test func testAssertionCarriesDEAAndAttestationHash() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let grantID = try await h.grant()
            let key = try await h.apiKey()
            ctx.clock.advance(30)
            var action = EPCSHarness.action
            action["summary"] = "Oxycodone 5 mg tablet, #20, 1 every 6 hours as needed\nLorazepam 1 mg tablet, #10, 1 at bedtime"
            let started = try await h.startStepUp(key: key, action: action)
            #expect(started.status == .created, "\(started.text)")
            let attestation = try #require(started.json["attestation"] as? String)
            #expect(attestation.contains(EPCS.attestationStatement))
            #expect(attestation.contains(EPCSHarness.deaNumber))
            #expect(attestation.contains(h.prescriberUser.fullName))
            #expect(attestation.contains("Oxycodone 5 mg tablet"))
            #expect(attestation.contains("Lorazepam 1 mg tablet"))
            #expect(started.json["attestationHash"] as? String == Self.sha256Hex(attestation))

            let id = try #require(started.json["challengeId"] as? String)
            let verified = try await APIClient(ctx, token: key).send(
                .POST, "/api/v1/step-up/\(id)/verify",
                json: [
                    "code": try Fixtures.code(h.prescriber.secret, at: ctx.clock.now), "password": Fixtures.password,
                ])
            #expect(verified.status == .ok, "\(verified.text)")
            let claims = try await StepUpTests.verify(ctx, try #require(verified.json["assertion"] as? String))
            let epcs = try #require(claims.epcs)
            #expect(epcs.dea_number == EPCSHarness.deaNumber)
            #expect(epcs.grant_id.lowercased() == grantID.lowercased())
            #expect(epcs.attestation_sha256 == Self.sha256Hex(attestation))
            #expect(epcs.factors == ["knowledge", "hard_token"])
            #expect(claims.sub == (try h.prescriberUser.requireID().uuidString))
            #expect(claims.action_hash == action["hash"] as? String)
            #expect(claims.amr == ["pwd", "otp"])
            let completed = try #require(try await h.events(.epcsSigningCompleted).first)
            #expect(EPCSHarness.details(completed)["attestation_sha256"] == Self.sha256Hex(attestation))

            // Several lines are for prescriptions only; other actions keep a one-line summary.
            var other = StepUpTests.action
            other["summary"] = "Sign lab order\nand another"
            #expect(try await h.startStepUp(key: key, action: other).status == .badRequest)
            // An EPCS summary needs content and has limits.
            action["summary"] = " \n "
            #expect(try await h.startStepUp(key: key, action: action).status == .badRequest)
            action["summary"] = (1...(EPCS.summaryMaximumLines + 1)).map { "Rx \($0)" }.joined(separator: "\n")
            #expect(try await h.startStepUp(key: key, action: action).status == .badRequest)
        }
    }

    @Test func testPushShowsAttestation() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx, prescriberHasTOTP: false)
            let enrolled = try await Flows.enrollPush(ctx, username: "dr.smith")
            try await h.grant()
            let key = try await h.apiKey()
            let client = APIClient(ctx, token: key)
            let started = try await h.startStepUp(key: key)
            #expect(started.status == .created, "\(started.text)")
            #expect(started.json["methods"] as? [String] == ["totp", "push"])
            let attestation = try #require(started.json["attestation"] as? String)
            let id = try #require(started.json["challengeId"] as? String)

            // The password comes first: no push is sent without it, and a wrong one sends none either.
            let noPassword = try await client.send(.POST, "/api/v1/step-up/\(id)/push", json: [:])
            #expect(noPassword.status == .badRequest)
            #expect(try await client.send(.POST, "/api/v1/step-up/\(id)/push", json: ["password": "wrong"]).status == .unauthorized)
            #expect(try await enrolled.device.pending(ctx).isEmpty)

            let push = try await client.send(.POST, "/api/v1/step-up/\(id)/push", json: ["password": Fixtures.password])
            #expect(push.status == .ok, "\(push.text)")
            let number = try #require(push.json["number"] as? Int)

            // The device shows the whole attestation: prescriptions, name, DEA number and the statement.
            let pending = try await enrolled.device.pending(ctx)
            #expect(pending.count == 1)
            let summary = try #require(pending.first?["summary"] as? String)
            #expect(pending.first?["purpose"] as? String == "step_up")
            #expect(summary.contains(EPCS.attestationStatement))
            #expect(summary.contains(EPCSHarness.deaNumber))
            #expect(summary.contains(attestation))
            #expect(try await client.send(.GET, "/api/v1/step-up/\(id)").json["status"] as? String == "pending")

            #expect(try await enrolled.device.approve(ctx, try #require(pending.first?["id"] as? String), number: number).status == .ok)
            let polled = try await client.send(.GET, "/api/v1/step-up/\(id)")
            #expect(polled.json["status"] as? String == "completed")
            let claims = try await StepUpTests.verify(ctx, try #require(polled.json["assertion"] as? String))
            #expect(claims.amr == ["pwd", "push"])
            #expect(claims.epcs?.dea_number == EPCSHarness.deaNumber)
            #expect(claims.epcs?.attestation_sha256 == Self.sha256Hex(attestation))
        }
    }
}
