import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// Two-person logical access control for EPCS permissions (21 CFR 1311.125): one approver enters, a second, different
/// approver who is a DEA registrant approves with a fresh second factor; revocation is immediate.
@Suite("EPCS: granting and revoking permission")
struct EPCSGrantTests {
    @Test func testGrantNeedsTwoDifferentApprovers() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let key = try await h.apiKey()
            let entered = try await h.enter()
            #expect(entered.status == .created, "\(entered.text)")
            #expect(entered.json["status"] as? String == "pending_approval")
            let grantID = try #require(entered.json["grantId"] as? String)

            // Entered but not approved: the prescriber cannot sign yet.
            let row = try await h.grantRow(grantID)
            #expect(row["status"] as? String == "pending_approval")
            #expect(row["userId"] as? String == (try h.prescriberUser.requireID().uuidString))
            #expect(row["username"] as? String == "dr.smith")
            #expect(row["deaNumber"] as? String == EPCSHarness.deaNumber)
            #expect(row["states"] as? [String] == ["NJ", "NY"])
            #expect((row["proofing"] as? [String: Any])?["level"] as? String == "IAL2")
            #expect(row["enteredBy"] as? String == (try h.firstUser.requireID().uuidString))
            #expect(row["decidedBy"] == nil)
            #expect(try await h.startStepUp(key: key).status == .forbidden)

            // A second open grant for the same prescriber is refused while this one waits.
            #expect(try await h.enter().status == .conflict)

            ctx.clock.advance(30)
            let approved = try await h.approve(grantID)
            #expect(approved.status == .ok, "\(approved.text)")
            #expect(approved.json["grantId"] as? String == grantID)
            #expect(approved.json["status"] as? String == "active")
            let active = try await h.grantRow(grantID)
            #expect(active["status"] as? String == "active")
            #expect(active["decidedBy"] as? String == (try h.secondUser.requireID().uuidString))
            #expect(active["decidedAt"] != nil)

            let started = try await h.startStepUp(key: key)
            #expect(started.status == .created, "\(started.text)")
            #expect(try await h.events(.epcsGrantEntered).count == 1)
            let approvedEvents = try await h.events(.epcsGrantApproved)
            #expect(approvedEvents.count == 1)
            #expect(approvedEvents.first?.actorID == h.secondUser.id)
            #expect(approvedEvents.first?.subjectID == h.prescriberUser.id)

            // Approving twice does nothing more.
            ctx.clock.advance(30)
            #expect(try await h.approve(grantID).status == .conflict)
        }
    }

    @Test func testProposerCannotApproveOwnGrant() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            // Approver two (a registrant) enters; approving it themselves is refused although they may approve others'.
            let entered = try await h.enter(by: h.secondClient)
            #expect(entered.status == .created, "\(entered.text)")
            let grantID = try #require(entered.json["grantId"] as? String)
            let own = try await h.approve(grantID, by: h.secondClient, secret: h.second.secret)
            #expect(own.status == .forbidden)
            #expect(own.reason.contains("second approver"))
            #expect(try await h.grantRow(grantID)["status"] as? String == "pending_approval")
            let refused = try await h.events(.epcsUnauthorizedAttempt)
            #expect(refused.count == 1)
            #expect(EPCSHarness.details(try #require(refused.first))["action"] == "approve_grant")

            // Nobody may grant themselves permission either.
            let self_ = try await h.enter(for: h.firstUser)
            #expect(self_.status == .forbidden)
            #expect(try await h.grants().count == 1)
        }
    }

    @Test func testNonApproverCannotEnterOrApprove() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            // An administrator who is not designated, with an authenticator app of their own.
            let adminUser = try await Fixtures.user(ctx, practice: h.practice, username: "office.admin", admin: true)
            let admin = try await Flows.enrollTOTP(ctx, username: "office.admin")
            ctx.clock.advance(30)

            let entered = try await h.enter(by: admin.client)
            #expect(entered.status == .forbidden)
            #expect(entered.reason.contains("EPCS access approvers"))
            #expect(try await h.grants().isEmpty)

            let pending = try #require(try await h.enter().json["grantId"] as? String)
            let approval = try await h.approve(pending, by: admin.client, secret: admin.secret)
            #expect(approval.status == .forbidden)
            #expect(try await h.grantRow(pending)["status"] as? String == "pending_approval")
            let attempts = try await h.events(.epcsUnauthorizedAttempt)
            #expect(attempts.count == 2)
            #expect(attempts.allSatisfy { $0.actorID == adminUser.id })
            #expect(attempts.map { EPCSHarness.details($0)["action"] } == ["enter_grant", "approve_grant"])

            // Someone without Manage Accounts does not reach the EPCS administration at all.
            let nurse = try await Fixtures.user(ctx, practice: h.practice, username: "nurse", role: .staff)
            let (nurseClient, _, _) = try await APIClient.login(ctx, username: "nurse")
            #expect(try await nurseClient.send(.GET, "/api/v1/practice/epcs/grants").status == .forbidden)
            #expect(
                try await nurseClient.send(.POST, "/api/v1/practice/epcs/grants/\(pending)/approve", json: ["code": "123456"]).status
                    == .forbidden)

            // An approver must hold Manage Accounts.
            let designate = try await h.firstClient.send(
                .PUT, "/api/v1/practice/users/\(try nurse.requireID())/epcs/approver",
                json: ["approver": true, "deaRegistrant": false, "adminPassword": Fixtures.password])
            #expect(designate.status == .conflict)
            let list = try await h.firstClient.send(.GET, "/api/v1/practice/epcs/approvers")
            #expect(list.status == .ok)
            let approvers = try #require(list.json["approvers"] as? [[String: Any]])
            #expect(Set(approvers.compactMap { $0["username"] as? String }) == ["approver.one", "approver.two"])
            #expect(approvers.first { $0["username"] as? String == "approver.two" }?["deaRegistrant"] as? Bool == true)
        }
    }

    @Test func testApprovalNeedsRegistrant() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            // The registrant enters; the non-registrant may not be the second person (§1311.125(c)).
            let entered = try await h.enter(by: h.secondClient)
            let grantID = try #require(entered.json["grantId"] as? String)
            let approval = try await h.approve(grantID, by: h.firstClient, secret: h.first.secret)
            #expect(approval.status == .forbidden)
            #expect(approval.reason.contains("DEA registrant"))
            #expect(try await h.grantRow(grantID)["status"] as? String == "pending_approval")
            #expect(try await h.events(.epcsGrantApproved).isEmpty)

            // Once approver one is recorded as a registrant, the same approval passes.
            try await h.designate(h.firstUser, approver: true, registrant: true)
            ctx.clock.advance(30)
            let again = try await h.approve(grantID, by: h.firstClient, secret: h.first.secret)
            #expect(again.status == .ok, "\(again.text)")
            #expect(again.json["status"] as? String == "active")
        }
    }

    @Test func testTwoNonRegistrantsCannotGrant() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx, designate: false)
            try await h.designate(h.firstUser, approver: true, registrant: false)
            try await h.designate(h.secondUser, approver: true, registrant: false)
            // Two approvers, neither a registrant: the practice may not grant at all.
            let entered = try await h.enter()
            #expect(entered.status == .conflict)
            #expect(entered.reason.contains("DEA registrant"))
            #expect(try await h.grants().isEmpty)

            // A third approver who is a registrant lets grants be entered, but two non-registrants still cannot finish one.
            let thirdUser = try await Fixtures.user(ctx, practice: h.practice, username: "dr.jones", admin: true)
            try await h.designate(thirdUser, approver: true, registrant: true)
            let grantID = try #require(try await h.enter().json["grantId"] as? String)
            let approval = try await h.approve(grantID, by: h.secondClient, secret: h.second.secret)
            #expect(approval.status == .forbidden)
            #expect(try await h.grantRow(grantID)["status"] as? String == "pending_approval")
            #expect(try await h.startStepUp(key: try await h.apiKey()).status == .forbidden)
        }
    }

    @Test func testApprovalNeedsFreshAuthenticatorCode() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let otherProvider = try await Fixtures.user(ctx, practice: h.practice, username: "dr.lee")
            let grantID = try #require(try await h.enter().json["grantId"] as? String)
            let otherGrant = try #require(
                try await h.enter(for: otherProvider, body: h.grantBody(deaNumber: EPCSHarness.otherDEANumber)).json["grantId"] as? String)

            // A wrong code: 401, audited, still pending.
            let wrong = try await h.secondClient.send(
                .POST, "/api/v1/practice/epcs/grants/\(grantID)/approve", json: ["code": try h.wrongCode(h.second.secret)])
            #expect(wrong.status == .unauthorized)
            #expect(try await h.grantRow(grantID)["status"] as? String == "pending_approval")
            #expect(EPCSHarness.details(try #require(try await h.events(.epcsApprovalFailed).first))["reason"] == "wrong_code")
            // No code, a recovery code or a text-message style body: refused before anything is decided.
            #expect(
                try await h.secondClient.send(.POST, "/api/v1/practice/epcs/grants/\(grantID)/approve", json: [:]).status == .badRequest)
            #expect(
                try await h.secondClient.send(
                    .POST, "/api/v1/practice/epcs/grants/\(grantID)/approve",
                    json: ["code": try #require(h.second.recoveryCodes.first)]
                ).status == .badRequest)

            // A fresh code approves; the same time step cannot approve another grant.
            let code = try Fixtures.code(h.second.secret, at: ctx.clock.now)
            #expect(
                try await h.secondClient.send(.POST, "/api/v1/practice/epcs/grants/\(grantID)/approve", json: ["code": code]).status == .ok)
            let replay = try await h.secondClient.send(.POST, "/api/v1/practice/epcs/grants/\(otherGrant)/approve", json: ["code": code])
            #expect(replay.status == .unauthorized)
            #expect(replay.reason.contains("already been used"))
            #expect(try await h.grantRow(otherGrant)["status"] as? String == "pending_approval")
            #expect(try await h.events(.epcsApprovalFailed).map { EPCSHarness.details($0)["reason"] } == ["wrong_code", "replayed"])

            // A registrant approver whose only second factor is a text message cannot approve.
            let smsUser = try await Fixtures.user(ctx, practice: h.practice, username: "dr.sms", admin: true)
            let (smsClient, _, _) = try await APIClient.login(ctx, username: "dr.sms")
            let start = try await smsClient.send(.POST, "/api/v1/me/factors/sms", json: ["password": Fixtures.password])
            #expect(start.status == .ok, "\(start.text)")
            let smsFactor = try #require(start.json["factorId"] as? String)
            let smsCode = try #require(try await Fixtures.latestOutboxCode(ctx))
            #expect(try await smsClient.send(.POST, "/api/v1/me/factors/\(smsFactor)/activate", json: ["code": smsCode]).status == .ok)
            try await h.designate(smsUser, approver: true, registrant: true)
            let bySMS = try await smsClient.send(.POST, "/api/v1/practice/epcs/grants/\(otherGrant)/approve", json: ["code": smsCode])
            #expect(bySMS.status == .conflict)
            #expect(bySMS.reason.contains("authenticator app"))
            #expect(try await h.grantRow(otherGrant)["status"] as? String == "pending_approval")

            // The next time step approves it.
            ctx.clock.advance(30)
            #expect(try await h.approve(otherGrant).status == .ok)
        }
    }

    @Test func testRevocationIsImmediateAndConfirmedBySecondApprover() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let key = try await h.apiKey()
            let grantID = try await h.grant()
            // A signing started before the revocation…
            let before = try await h.startStepUp(key: key)
            #expect(before.status == .created, "\(before.text)")
            let challengeID = try #require(before.json["challengeId"] as? String)

            // Revocation by one approver, password confirmed.
            #expect(
                try await h.firstClient.send(
                    .DELETE, "/api/v1/practice/users/\(try h.prescriberUser.requireID())/epcs",
                    json: ["adminPassword": "wrong password"]
                ).status == .forbidden)
            let revoked = try await h.firstClient.send(
                .DELETE, "/api/v1/practice/users/\(try h.prescriberUser.requireID())/epcs",
                json: ["reason": "left the practice", "adminPassword": Fixtures.password])
            #expect(revoked.status == .ok, "\(revoked.text)")
            #expect(revoked.json["grantId"] as? String == grantID)
            #expect(revoked.json["status"] as? String == "revoked")

            // …takes effect at once: new signings and the one already started are refused.
            #expect(try await h.startStepUp(key: key).status == .forbidden)
            ctx.clock.advance(30)
            let late = try await APIClient(ctx, token: key).send(
                .POST, "/api/v1/step-up/\(challengeID)/verify",
                json: [
                    "code": try Fixtures.code(h.prescriber.secret, at: ctx.clock.now), "password": Fixtures.password,
                ])
            #expect(late.status == .forbidden)
            #expect(late.json["assertion"] == nil)

            var row = try await h.grantRow(grantID)
            #expect(row["status"] as? String == "revoked_awaiting_confirmation")
            #expect(row["revocationReason"] as? String == "left the practice")
            #expect(row["revokedBy"] as? String == (try h.firstUser.requireID().uuidString))
            #expect(try await h.events(.epcsGrantRevoked).count == 1)
            // Nothing left to revoke.
            #expect(
                try await h.firstClient.send(
                    .DELETE, "/api/v1/practice/users/\(try h.prescriberUser.requireID())/epcs",
                    json: ["adminPassword": Fixtures.password]
                ).status == .conflict)

            // The revoker cannot confirm their own revocation; the second approver confirms with a fresh code.
            let own = try await h.firstClient.send(
                .POST, "/api/v1/practice/epcs/grants/\(grantID)/confirm-revocation",
                json: ["code": try Fixtures.code(h.first.secret, at: ctx.clock.now)])
            #expect(own.status == .forbidden)
            let confirmed = try await h.secondClient.send(
                .POST, "/api/v1/practice/epcs/grants/\(grantID)/confirm-revocation",
                json: ["code": try Fixtures.code(h.second.secret, at: ctx.clock.now)])
            #expect(confirmed.status == .ok, "\(confirmed.text)")
            #expect(confirmed.json["status"] as? String == "revoked")
            #expect(confirmed.json["revocationConfirmed"] as? Bool == true)
            row = try await h.grantRow(grantID)
            #expect(row["status"] as? String == "revoked")
            #expect(row["revocationConfirmedBy"] as? String == (try h.secondUser.requireID().uuidString))
            #expect(try await h.events(.epcsRevocationConfirmed).count == 1)

            // Granting again needs two people again.
            let again = try await h.enter()
            #expect(again.status == .created)
            #expect(try await h.startStepUp(key: key).status == .forbidden)
            ctx.clock.advance(30)
            #expect(try await h.approve(try #require(again.json["grantId"] as? String)).status == .ok)
            #expect(try await h.startStepUp(key: key).status == .created)
        }
    }

    @Test func testExpiredRegistrationStopsSigning() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let key = try await h.apiKey()
            let grantID = try await h.grant(body: h.grantBody(expiresInDays: 1))
            #expect(try await h.startStepUp(key: key).status == .created)

            // The last valid day is tomorrow; the day after, the grant no longer signs.
            ctx.clock.advance(2 * 86_400 + 60)
            let refused = try await h.startStepUp(key: key)
            #expect(refused.status == .forbidden)
            #expect(refused.reason.contains("no active permission"))
            #expect(
                EPCSHarness.details(try #require(try await h.events(.epcsUnauthorizedAttempt).last))["reason"]
                    == "no active EPCS permission")

            let admin = try await h.signIn("approver.one", secret: h.first.secret)
            let list = try await admin.send(.GET, "/api/v1/practice/epcs/grants")
            let row = try #require((list.json["grants"] as? [[String: Any]])?.first { $0["id"] as? String == grantID })
            #expect(row["status"] as? String == "registration_expired")
            // A new grant cannot be entered with an expired registration.
            let expired = try await admin.send(
                .POST, "/api/v1/practice/users/\(try h.prescriberUser.requireID())/epcs/grants", json: h.grantBody(expiresInDays: -1))
            #expect(expired.status == .badRequest)
            #expect(expired.reason.contains("expired"))
        }
    }

    @Test func testDEANumberCheckDigit() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let bad = try await h.enter(body: h.grantBody(deaNumber: EPCSHarness.badCheckDigit))
            #expect(bad.status == .badRequest)
            #expect(bad.reason.contains("check digit"))
            #expect(try await h.enter(body: h.grantBody(deaNumber: "AB123456")).status == .badRequest)
            #expect(try await h.enter(body: h.grantBody(deaNumber: "1B1234563")).status == .badRequest)
            #expect(try await h.grants().isEmpty)

            // Other malformed input: unknown state, missing proofing, wrong types, not JSON.
            #expect(try await h.enter(body: h.grantBody(states: ["ZZ"])).status == .badRequest)
            var noProofing = h.grantBody()
            noProofing["proofing"] = nil
            let missing = try await h.enter(body: noProofing)
            #expect(missing.status == .badRequest)
            #expect(missing.reason.contains("proofing"))
            var wrongType = h.grantBody()
            wrongType["states"] = "NY"
            #expect(try await h.enter(body: wrongType).status == .badRequest)
            var headers = HTTPHeaders()
            headers.bearerAuthorization = BearerAuthorization(token: try #require(h.firstClient.token))
            headers.contentType = .json
            let notJSON = try await ctx.app.testing().sendRequest(
                .POST, "/api/v1/practice/users/\(try h.prescriberUser.requireID())/epcs/grants",
                headers: headers, body: ByteBuffer(string: "{\"deaNumber\": "))
            #expect(notJSON.status == .badRequest)
            #expect(try await h.grants().isEmpty)

            // Case, spaces and hyphens are forgiven; the number is kept in its canonical form.
            let entered = try await h.enter(body: h.grantBody(deaNumber: "ab-123456 3"))
            #expect(entered.status == .created, "\(entered.text)")
            #expect(try await h.grants().first?["deaNumber"] as? String == EPCSHarness.deaNumber)
        }
    }

    @Test func testParallelApprovalsEvaluateAtMostTheLimit() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let grantID = try #require(try await h.enter().json["grantId"] as? String)
            let wrong = try h.wrongCode(h.second.secret)
            let burst = try await withThrowingTaskGroup(of: HTTPStatus.self) { group in
                for _ in 0..<20 {
                    group.addTask {
                        try await h.secondClient.send(.POST, "/api/v1/practice/epcs/grants/\(grantID)/approve", json: ["code": wrong])
                            .status
                    }
                }
                return try await group.reduce(into: [HTTPStatus]()) { $0.append($1) }
            }
            let evaluated = try await h.events(.epcsApprovalFailed).count
            let limit = SecondFactorLockoutPolicy.standard.freeAttempts
            #expect(evaluated >= 1 && evaluated <= limit, "\(evaluated) codes evaluated")
            #expect(burst.filter { $0 == .unauthorized }.count == evaluated)
            #expect(burst.allSatisfy { $0 == .unauthorized || $0 == .tooManyRequests }, "\(burst)")
            #expect(try await h.grantRow(grantID)["status"] as? String == "pending_approval")

            // Two registrant approvers approve the same grant at once with right codes: exactly one decision counts.
            let thirdUser = try await Fixtures.user(ctx, practice: h.practice, username: "dr.jones", admin: true)
            let third = try await Flows.enrollTOTP(ctx, username: "dr.jones")
            try await h.designate(thirdUser, approver: true, registrant: true)
            ctx.clock.advance(120)
            let secondCode = try Fixtures.code(h.second.secret, at: ctx.clock.now)
            let thirdCode = try Fixtures.code(third.secret, at: ctx.clock.now)
            let race = try await withThrowingTaskGroup(of: (HTTPStatus, String?).self) { group in
                for (client, code) in [(h.secondClient, secondCode), (third.client, thirdCode)] {
                    group.addTask {
                        let response = try await client.send(.POST, "/api/v1/practice/epcs/grants/\(grantID)/approve", json: ["code": code])
                        return (response.status, response.json["status"] as? String)
                    }
                }
                return try await group.reduce(into: [(HTTPStatus, String?)]()) { $0.append($1) }
            }
            #expect(race.filter { $0.0 == .ok }.count == 1, "\(race.map(\.0))")
            #expect(race.filter { $0.0 == .ok }.first?.1 == "active")
            #expect(race.filter { $0.0 != .ok }.allSatisfy { $0.0 == .conflict }, "\(race.map(\.0))")
            #expect(try await h.events(.epcsGrantApproved).count == 1)
            #expect(try await h.grantRow(grantID)["status"] as? String == "active")
        }
    }
}
