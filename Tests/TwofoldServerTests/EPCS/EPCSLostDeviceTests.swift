import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// A lost or stolen device (21 CFR 1311.102(b)): it stops working at once, EPCS signing is suspended (the permission
/// is revoked and needs two approvers again), and the practice's approvers are alerted; all audited.
@Suite("EPCS: lost devices")
struct EPCSLostDeviceTests {
    @Test func testLostDeviceDisablesDeviceRevokesAndAlerts() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx, prescriberHasTOTP: false)
            let enrolled = try await Flows.enrollPush(ctx, username: "dr.smith")
            let prescriber = enrolled.client
            let totpID = enrolled.totp.factorID
            let grantID = try await h.grant()
            let key = try await h.apiKey()
            #expect(try await h.startStepUp(key: key).status == .created)

            // The owner reports the authenticator app lost: the wrong password changes nothing.
            let wrongPassword = try await prescriber.send(.POST, "/api/v1/me/factors/\(totpID)/report-lost", json: ["password": "not it"])
            #expect(wrongPassword.status == .forbidden)
            #expect(try await prescriber.send(.GET, "/api/v1/me/factors").jsonArray.count == 2)
            // Another user's device is not found.
            #expect(
                try await prescriber.send(
                    .POST, "/api/v1/me/factors/\(h.first.factorID)/report-lost",
                    json: ["password": Fixtures.password]
                ).status == .notFound)

            let reported = try await prescriber.send(
                .POST, "/api/v1/me/factors/\(totpID)/report-lost", json: ["password": Fixtures.password])
            #expect(reported.status == .ok, "\(reported.text)")
            #expect((reported.json["factorId"] as? String)?.lowercased() == totpID.lowercased())
            #expect(reported.json["revokedGrant"] as? Bool == true)

            // The device is gone at once; the push device is left.
            let factors = try await prescriber.send(.GET, "/api/v1/me/factors").jsonArray
            #expect(factors.map { $0["kind"] as? String } == ["push"])
            #expect(try await Factor.find(try #require(UUID(uuidString: totpID)), on: ctx.app.db) == nil)

            // The permission is revoked with the reason, and signing stops.
            let row = try await h.grantRow(grantID)
            #expect(row["status"] as? String == "revoked_awaiting_confirmation")
            #expect((row["revocationReason"] as? String)?.contains("reported lost") == true)
            #expect(row["revokedBy"] as? String == (try h.prescriberUser.requireID().uuidString))
            let refused = try await h.startStepUp(key: key)
            #expect(refused.status == .forbidden)

            // The approvers see an open alert; acknowledging it closes it.
            let alerts = try await h.secondClient.send(.GET, "/api/v1/practice/epcs/alerts")
            #expect(alerts.status == .ok)
            let open = try #require(alerts.json["alerts"] as? [[String: Any]])
            #expect(open.count == 1)
            #expect(open.first?["kind"] as? String == "device_lost")
            #expect(open.first?["subjectId"] as? String == (try h.prescriberUser.requireID().uuidString))
            #expect((open.first?["message"] as? String)?.contains("EPCS permission was revoked") == true)

            // Every approver is also emailed (the prescriber gets their own notification).
            let mails = try await QueuedMail.query(on: ctx.app.db).filter(
                \.$category == "notification_epcs_approver.epcs_token_reported_lost"
            ).all()
            #expect(Set(mails.map(\.recipient)) == ["approver.one@example.org", "approver.two@example.org"])
            let first = try #require(mails.first)
            let body = try #require(try ctx.app.mailer.body(of: first))
            #expect(body.text.contains("as an EPCS access approver"))
            #expect(body.text.contains("Sam Smith's permission to sign controlled-substance prescriptions was revoked at once"))
            #expect(
                try await QueuedMail.query(on: ctx.app.db).filter(\.$recipient == "dr.smith@example.org")
                    .filter(\.$category == "notification.epcs_token_reported_lost").count() == 1)

            let lost = try await h.events(.epcsTokenReportedLost)
            #expect(lost.count == 1)
            #expect(lost.first?.subjectID == h.prescriberUser.id)
            #expect(EPCSHarness.details(try #require(lost.first))["by"] == "owner")
            #expect(EPCSHarness.details(try #require(lost.first))["kind"] == "totp")
            #expect(try await h.events(.epcsGrantRevoked).count == 1)

            let alertID = try #require(open.first?["id"] as? String)
            #expect(try await h.secondClient.send(.POST, "/api/v1/practice/epcs/alerts/\(alertID)/acknowledge").status == .noContent)
            #expect(
                (try await h.secondClient.send(.GET, "/api/v1/practice/epcs/alerts").json["alerts"] as? [[String: Any]])?.isEmpty == true)
            #expect(try await h.events(.epcsAlertAcknowledged).count == 1)

            // Granted again by two approvers, the prescriber signs with the push device…
            let regranted = try await h.grant()
            #expect(try await h.startStepUp(key: key).json["methods"] as? [String] == ["push"])

            // …until an administrator reports that one lost too, from the user's page.
            let adminPath = "/api/v1/practice/users/\(try h.prescriberUser.requireID())/factors/\(enrolled.factorID)/report-lost"
            #expect(try await h.firstClient.send(.POST, adminPath, json: [:]).status == .badRequest)
            #expect(try await h.firstClient.send(.POST, adminPath, json: ["adminPassword": ""]).status == .unauthorized)
            #expect(try await h.firstClient.send(.POST, adminPath, json: ["adminPassword": "wrong"]).status == .forbidden)
            #expect(
                try await h.firstClient.send(
                    .POST, "/api/v1/practice/users/\(try h.secondUser.requireID())/factors/\(enrolled.factorID)/report-lost",
                    json: ["adminPassword": Fixtures.password]
                ).status == .notFound)
            let byAdmin = try await h.firstClient.send(.POST, adminPath, json: ["adminPassword": Fixtures.password])
            #expect(byAdmin.status == .ok, "\(byAdmin.text)")
            #expect(byAdmin.json["revokedGrant"] as? Bool == true)
            #expect(try await Factor.query(on: ctx.app.db).filter(\.$user.$id == (try h.prescriberUser.requireID())).count() == 0)
            #expect(try await h.grantRow(regranted)["status"] as? String == "revoked_awaiting_confirmation")
            let adminReport = try #require(try await h.events(.epcsTokenReportedLost).last)
            #expect(adminReport.actorID == h.firstUser.id)
            #expect(EPCSHarness.details(adminReport)["by"] == "administrator")
            #expect((try await h.secondClient.send(.GET, "/api/v1/practice/epcs/alerts").json["alerts"] as? [[String: Any]])?.count == 1)

            // EPCS signing stays refused; a report of a device that no longer exists is 404.
            #expect(try await h.startStepUp(key: key).status == .forbidden)
            #expect(try await h.firstClient.send(.POST, adminPath, json: ["adminPassword": Fixtures.password]).status == .notFound)
        }
    }
}
