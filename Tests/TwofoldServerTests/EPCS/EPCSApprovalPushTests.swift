import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("EPCS: the second approver approves on a push device")
struct EPCSApprovalPushTests {
    /// Gives approver two a push device beside their authenticator app.
    static func pushDevice(_ h: EPCSHarness) async throws -> TestDevice {
        let start = try await h.secondClient.send(
            .POST, "/api/v1/me/factors/push", json: ["password": Fixtures.password, "nickname": "Work phone"])
        #expect(start.status == .ok, "\(start.text)")
        let (device, enrolled) = try await TestDevice.enroll(h.ctx, uri: try #require(start.json["enrollmentURI"] as? String))
        #expect(enrolled.status == .ok, "\(enrolled.text)")
        // The device proves it can sign requests before the enrollment is finished.
        _ = try await device.pending(h.ctx)
        let finish = try await h.secondClient.send(.POST, "/api/v1/me/factors/\(try #require(start.json["factorId"] as? String))/activate")
        #expect(finish.status == .ok, "\(finish.text)")
        return device
    }

    @Test func testGrantApprovedAndRevocationConfirmedOnPushDevice() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let device = try await Self.pushDevice(h)
            let entered = try await h.enter()
            let grantID = try #require(entered.json["grantId"] as? String)

            // The approver who entered it cannot even send it to a device.
            let own = try await h.firstClient.send(.POST, "/api/v1/practice/epcs/grants/\(grantID)/approve", json: ["push": true])
            #expect(own.status == .forbidden)

            let started = try await h.secondClient.send(.POST, "/api/v1/practice/epcs/grants/\(grantID)/approve", json: ["push": true])
            #expect(started.status == .accepted, "\(started.text)")
            #expect(started.json["status"] as? String == "pending_push")
            let pushID = try #require(started.json["pushChallengeId"] as? String)
            let number = try #require(started.json["number"] as? Int)
            let pending = try await device.pending(ctx)
            #expect(pending.count == 1)
            #expect((pending.first?["summary"] as? String)?.contains("Approve the EPCS permission of Sam Smith (DEA *****4563)") == true)

            // Not approved yet: nothing changes.
            let early = try await h.secondClient.send(
                .POST, "/api/v1/practice/epcs/grants/\(grantID)/approve", json: ["pushChallengeId": pushID])
            #expect(early.status == .conflict)
            #expect(try await h.grantRow(grantID)["status"] as? String == "pending_approval")
            // Another approver cannot use approver two's push.
            let borrowed = try await h.firstClient.send(
                .POST, "/api/v1/practice/epcs/grants/\(grantID)/approve", json: ["pushChallengeId": pushID])
            #expect(borrowed.status == .forbidden)

            #expect(try await device.approve(ctx, pushID, number: number).status == .ok)
            let approved = try await h.secondClient.send(
                .POST, "/api/v1/practice/epcs/grants/\(grantID)/approve", json: ["pushChallengeId": pushID])
            #expect(approved.status == .ok, "\(approved.text)")
            #expect(approved.json["status"] as? String == "active")
            #expect(try await h.events(.epcsGrantApproved).count == 1)

            // A push approval works once: it cannot confirm anything else.
            let revoked = try await h.firstClient.send(
                .DELETE, "/api/v1/practice/users/\(try h.prescriberUser.requireID())/epcs",
                json: ["reason": "left the practice", "adminPassword": Fixtures.password])
            #expect(revoked.status == .ok, "\(revoked.text)")
            let reused = try await h.secondClient.send(
                .POST, "/api/v1/practice/epcs/grants/\(grantID)/confirm-revocation", json: ["pushChallengeId": pushID])
            #expect(reused.status == .notFound, "a push for approving is not a push for confirming")

            // Confirming the revocation on the device; a denial changes nothing and is audited.
            let denied = try await h.secondClient.send(
                .POST, "/api/v1/practice/epcs/grants/\(grantID)/confirm-revocation", json: ["push": true])
            #expect(denied.status == .accepted, "\(denied.text)")
            let deniedID = try #require(denied.json["pushChallengeId"] as? String)
            #expect(try await device.send(ctx, .POST, "/api/v1/push/challenges/\(deniedID)", json: ["decision": "deny"]).status == .ok)
            let afterDenial = try await h.secondClient.send(
                .POST, "/api/v1/practice/epcs/grants/\(grantID)/confirm-revocation", json: ["pushChallengeId": deniedID])
            #expect(afterDenial.status == .forbidden)
            #expect(try await h.events(.epcsApprovalFailed).contains { EPCSHarness.details($0)["reason"] == "push_denied" })
            #expect(try await h.grantRow(grantID)["status"] as? String == "revoked_awaiting_confirmation")

            let confirm = try await h.secondClient.send(
                .POST, "/api/v1/practice/epcs/grants/\(grantID)/confirm-revocation", json: ["push": true])
            let confirmID = try #require(confirm.json["pushChallengeId"] as? String)
            #expect(try await device.approve(ctx, confirmID, number: try #require(confirm.json["number"] as? Int)).status == .ok)
            let confirmed = try await h.secondClient.send(
                .POST, "/api/v1/practice/epcs/grants/\(grantID)/confirm-revocation", json: ["pushChallengeId": confirmID])
            #expect(confirmed.status == .ok, "\(confirmed.text)")
            #expect(confirmed.json["revocationConfirmed"] as? Bool == true)
        }
    }

    @Test func testApprovePageOffersThePushDevice() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let device = try await Self.pushDevice(h)
            let grantID = try #require(try await h.enter().json["grantId"] as? String)
            let web = try await EPCSPagesTests.web(ctx, "approver.two", secret: h.second.secret)
            let page = try await web.get("/admin/epcs/grants/\(grantID)/approve")
            #expect(page.text.contains("Approve on my push device instead"))
            let sent = try await web.post("/admin/epcs/grants/\(grantID)/approve", ["push": "1"])
            #expect(sent.status == .ok, "\(sent.text)")
            #expect(sent.text.contains("id=\"match-number\""))
            let pending = try await device.pending(ctx)
            let pushID = try #require(pending.first?["id"] as? String)
            #expect(sent.text.contains(pushID))
            let early = try await web.post("/admin/epcs/grants/\(grantID)/approve", ["pushChallengeId": pushID])
            #expect(early.status == .conflict)
            #expect(early.text.contains("Not approved yet"))
            let number = try #require(sent.text.firstMatch(of: /id="match-number">(\d+)</)).1
            #expect(try await device.approve(ctx, pushID, number: try #require(Int(number))).status == .ok)
            let approved = try await web.post("/admin/epcs/grants/\(grantID)/approve", ["pushChallengeId": pushID])
            #expect(approved.location == "/admin/epcs?notice=epcs-grant-approved")
            #expect(try await EPCSGrant.find(UUID(uuidString: grantID), on: ctx.app.db)?.status == .active)
        }
    }

    @Test func testApproverWithoutPushDeviceIsToldToUseACode() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let grantID = try #require(try await h.enter().json["grantId"] as? String)
            let started = try await h.secondClient.send(.POST, "/api/v1/practice/epcs/grants/\(grantID)/approve", json: ["push": true])
            #expect(started.status == .conflict)
            #expect(started.text.contains("no active push device"))
        }
    }
}
