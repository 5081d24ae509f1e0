import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("EPCS administration pages and lost-device reports on the web")
struct EPCSPagesTests {
    /// Signs `username` in on the web with password and a code from a fresh time step.
    static func web(_ ctx: TestContext, _ username: String, secret: String) async throws -> WebClient {
        ctx.clock.advance(30)
        let web = WebClient(ctx)
        _ = try await web.get("/login")
        let password = try await web.post("/login", ["username": username, "password": Fixtures.password])
        #expect(password.location == "/login/two-factor")
        _ = try await web.get("/login/two-factor")
        let verified = try await web.post("/login/two-factor", ["code": try Fixtures.code(secret, at: ctx.clock.now)])
        #expect(verified.status == .seeOther || verified.status == .found, "\(verified.text)")
        return web
    }

    static func grantForm(_ h: EPCSHarness, deaNumber: String = EPCSHarness.deaNumber) -> [String: String] {
        [
            "deaNumber": deaNumber, "deaExpiresOn": h.day(365), "states": "ny nj", "proofingProvider": "ID.me", "proofingDate": h.day(-30),
            "proofingLevel": "IAL2", "proofingReference": "IDME-2030-0042", "adminPassword": Fixtures.password,
        ]
    }

    @Test func anAdministratorDesignatesApproversOnTheUsersPage() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx, designate: false)
            let web = try await Self.web(ctx, "approver.one", secret: h.first.secret)
            let overview = try await web.get("/admin/epcs")
            #expect(overview.status == .ok)
            #expect(overview.text.contains("two-person rule"))
            #expect(overview.text.contains("id=\"approver-warning\""))
            #expect(overview.text.contains("/admin/epcs/reports"))

            let page = try await web.get("/admin/staff/\(try h.secondUser.requireID())")
            #expect(page.text.contains("id=\"epcs-approver-form\""))
            #expect(page.text.contains("is not an EPCS access approver"))
            let wrong = try await web.post(
                "/admin/staff/\(try h.secondUser.requireID())/epcs/approver",
                ["approver": "1", "registrant": "1", "adminPassword": "not mine"])
            #expect(wrong.status == .forbidden)
            #expect(wrong.text.contains("Your current password is not correct."))
            #expect(try await User.find(h.secondUser.id, on: ctx.app.db)?.epcsApprover == false)

            let saved = try await web.post(
                "/admin/staff/\(try h.secondUser.requireID())/epcs/approver",
                ["approver": "1", "registrant": "1", "adminPassword": Fixtures.password])
            #expect(saved.location == "/admin/staff/\(try h.secondUser.requireID().uuidString)?notice=epcs-approver-saved")
            let after = try await web.get(try #require(saved.location))
            #expect(after.text.contains("is an EPCS access approver and a DEA registrant"))
            let second = try #require(try await User.find(h.secondUser.id, on: ctx.app.db))
            #expect(second.epcsApprover && second.deaRegistrant)
            #expect(try await h.events(.epcsApproverDesignated).count == 1)

            // A provider without Manage Accounts cannot be an approver: the page says why, with 409.
            let refused = try await web.post(
                "/admin/staff/\(try h.prescriberUser.requireID())/epcs/approver", ["approver": "1", "adminPassword": Fixtures.password])
            #expect(refused.status == .conflict)
            #expect(refused.text.contains("needs the Manage Accounts permission"))

            _ = try await web.get("/admin/staff/\(try h.firstUser.requireID())")
            _ = try await web.post(
                "/admin/staff/\(try h.firstUser.requireID())/epcs/approver", ["approver": "1", "adminPassword": Fixtures.password])
            let ready = try await web.get("/admin/epcs")
            #expect(!ready.text.contains("id=\"approver-warning\""))
            #expect(ready.text.contains("data-username=\"approver.one\""))
            #expect(ready.text.contains("data-username=\"approver.two\""))
        }
    }

    @Test func theGrantFormExplainsABadDEANumberThenEntersTheGrant() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let web = try await Self.web(ctx, "approver.one", secret: h.first.secret)
            let userPage = try await web.get("/admin/staff/\(try h.prescriberUser.requireID())")
            #expect(userPage.text.contains("/admin/staff/\(try h.prescriberUser.requireID().uuidString)/epcs/grant"))
            #expect(userPage.text.contains("No EPCS permission."))
            let form = try await web.get("/admin/staff/\(try h.prescriberUser.requireID())/epcs/grant")
            #expect(form.status == .ok)
            #expect(form.text.contains("id=\"deaNumber\""))
            #expect(!form.text.contains("id=\"blocked\""))

            let bad = try await web.post(
                "/admin/staff/\(try h.prescriberUser.requireID())/epcs/grant", Self.grantForm(h, deaNumber: EPCSHarness.badCheckDigit))
            #expect(bad.status == .badRequest)
            #expect(bad.text.contains("deaNumber must be a DEA registration number"))
            #expect(bad.text.contains("value=\"\(EPCSHarness.badCheckDigit)\""), "the form keeps what was typed")
            #expect(try await EPCSGrant.query(on: ctx.app.db).count() == 0)

            let entered = try await web.post("/admin/staff/\(try h.prescriberUser.requireID())/epcs/grant", Self.grantForm(h))
            #expect(entered.location == "/admin/epcs?notice=epcs-grant-entered")
            let grant = try #require(try await EPCSGrant.query(on: ctx.app.db).first())
            #expect(grant.status == .pendingApproval)
            #expect(grant.stateList == ["NJ", "NY"])
            let overview = try await web.get(try #require(entered.location))
            #expect(overview.text.contains("Waiting for a second approver"))
            #expect(overview.text.contains(EPCSHarness.deaNumber), "approvers see the full DEA number")
            #expect(
                !overview.text.contains("/admin/epcs/grants/\(try grant.requireID().uuidString)/approve"),
                "the approver who entered it is not offered to approve it")
            let own = try await web.get("/admin/epcs/grants/\(try grant.requireID())/approve")
            #expect(own.text.contains("id=\"blocked\""))
            #expect(own.text.contains("a second approver must approve it"))
            let again = try await web.get("/admin/staff/\(try h.prescriberUser.requireID())/epcs/grant")
            #expect(again.text.contains("already has an EPCS grant"))
        }
    }

    @Test func theSecondApproverApprovesWithACodeOnTheApprovePage() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let entered = try await h.enter()
            let grantID = try #require(entered.json["grantId"] as? String)
            let web = try await Self.web(ctx, "approver.two", secret: h.second.secret)
            let overview = try await web.get("/admin/epcs")
            #expect(overview.text.contains("/admin/epcs/grants/\(grantID)/approve"))
            let page = try await web.get("/admin/epcs/grants/\(grantID)/approve")
            #expect(page.status == .ok)
            #expect(page.text.contains(EPCSHarness.deaNumber))
            #expect(page.text.contains("IDME-2030-0042"))
            #expect(page.text.contains("Code from your authenticator app"))
            #expect(!page.text.contains("id=\"blocked\""))

            ctx.clock.advance(30)
            let wrong = try await web.post("/admin/epcs/grants/\(grantID)/approve", ["code": try h.wrongCode(h.second.secret)])
            #expect(wrong.status == .unauthorized)
            #expect(wrong.text.contains("That code is not correct."))
            #expect(try await EPCSGrant.find(UUID(uuidString: grantID), on: ctx.app.db)?.status == .pendingApproval)

            let approved = try await web.post(
                "/admin/epcs/grants/\(grantID)/approve", ["code": try Fixtures.code(h.second.secret, at: ctx.clock.now)])
            #expect(approved.location == "/admin/epcs?notice=epcs-grant-approved")
            #expect(try await EPCSGrant.find(UUID(uuidString: grantID), on: ctx.app.db)?.status == .active)
            let after = try await web.get(try #require(approved.location))
            #expect(after.text.contains("The EPCS grant was approved"))
            #expect(after.text.contains("/admin/staff/\(try h.prescriberUser.requireID().uuidString)/epcs/revoke"))

            // Revoking on its own page: at once, with the password; approver one then confirms with a code.
            _ = try await web.get("/admin/staff/\(try h.prescriberUser.requireID())/epcs/revoke")
            let revoked = try await web.post(
                "/admin/staff/\(try h.prescriberUser.requireID())/epcs/revoke",
                ["reason": "left the practice", "adminPassword": Fixtures.password])
            #expect(revoked.location == "/admin/epcs?notice=epcs-grant-revoked")
            #expect(try await EPCSGrant.find(UUID(uuidString: grantID), on: ctx.app.db)?.status == .revoked)
            let first = try await Self.web(ctx, "approver.one", secret: h.first.secret)
            let list = try await first.get("/admin/epcs")
            #expect(list.text.contains("/admin/epcs/grants/\(grantID)/confirm-revocation"))
            _ = try await first.get("/admin/epcs/grants/\(grantID)/confirm-revocation")
            // approver one is not a registrant: the rule wants the second person to be one
            let notRegistrant = try await first.post(
                "/admin/epcs/grants/\(grantID)/confirm-revocation", ["code": try Fixtures.code(h.first.secret, at: ctx.clock.now)])
            #expect(notRegistrant.status == .forbidden)
            #expect(notRegistrant.text.contains("must be a DEA registrant"))
        }
    }

    @Test func aProviderReportsALostDeviceFromAccountSecurity() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            try await h.grant()
            let web = try await Self.web(ctx, "dr.smith", secret: h.prescriber.secret)
            let security = try await web.get("/account/security")
            #expect(security.text.contains("EPCS-eligible"))
            let link = "/account/security/factors/\(h.prescriber.factorID)/report-lost"
            #expect(security.text.contains(link))
            #expect(security.text.contains("Report a lost or stolen device"))

            let confirm = try await web.get(link)
            #expect(confirm.status == .ok)
            #expect(confirm.text.contains("stops working at once"))
            #expect(confirm.text.contains("revoked at once"))
            #expect(confirm.text.contains("approvers are alerted"))
            let noPassword = try await web.post(link, [:])
            #expect(noPassword.status == .unauthorized)
            let wrong = try await web.post(link, ["password": "not it"])
            #expect(wrong.status == .forbidden)
            #expect(try await Factor.find(UUID(uuidString: h.prescriber.factorID), on: ctx.app.db) != nil)

            let done = try await web.post(link, ["password": Fixtures.password])
            #expect(done.location == "/account/security?notice=device-reported-lost")
            #expect(try await Factor.find(UUID(uuidString: h.prescriber.factorID), on: ctx.app.db) == nil)
            let grant = try #require(try await EPCSGrant.query(on: ctx.app.db).first())
            #expect(grant.status == .revoked)
            #expect(grant.revokedBy == h.prescriberUser.id)
            let alert = try #require(try await EPCSAlert.query(on: ctx.app.db).first())
            #expect(alert.kind == "device_lost")
            #expect(alert.subjectID == h.prescriberUser.id)
            #expect(try await h.events(.epcsTokenReportedLost).count == 1)
            #expect(HTMLText.contains(try await web.get(try #require(done.location)).text, "reported lost or stolen"))

            // Another user's device is not found.
            #expect(try await web.get("/account/security/factors/\(h.second.factorID)/report-lost").status == .notFound)

            // The approvers see the alert on the EPCS page and acknowledge it.
            let approver = try await Self.web(ctx, "approver.two", secret: h.second.secret)
            let overview = try await approver.get("/admin/epcs")
            #expect(overview.text.contains("lost or stolen"))
            let acknowledged = try await approver.post("/admin/epcs/alerts/\(try alert.requireID())/acknowledge")
            #expect(acknowledged.location == "/admin/epcs?notice=epcs-alert-acknowledged")
            #expect(try await EPCSAlert.find(alert.id, on: ctx.app.db)?.acknowledgedAt != nil)
        }
    }

    @Test func anAdministratorReportsAUsersLostDeviceFromTheUsersPage() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let web = try await Self.web(ctx, "approver.one", secret: h.first.secret)
            let page = try await web.get("/admin/staff/\(try h.prescriberUser.requireID())")
            let link = "/admin/staff/\(try h.prescriberUser.requireID().uuidString)/factors/\(h.prescriber.factorID)/report-lost"
            #expect(page.text.contains(link))
            let confirm = try await web.get(link)
            #expect(confirm.text.contains("stops working at once"))
            let wrong = try await web.post(link, ["adminPassword": "nope"])
            #expect(wrong.status == .forbidden)
            let done = try await web.post(link, ["adminPassword": Fixtures.password])
            #expect(done.location == "/admin/staff/\(try h.prescriberUser.requireID().uuidString)?notice=device-reported-lost")
            #expect(try await Factor.find(UUID(uuidString: h.prescriber.factorID), on: ctx.app.db) == nil)
            let event = try #require(try await h.events(.epcsTokenReportedLost).first)
            #expect(EPCSHarness.details(event)["by"] == "administrator")
        }
    }

    @Test func settingsAreSavedFromTheEPCSPage() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let web = try await Self.web(ctx, "approver.one", secret: h.first.secret)
            _ = try await web.get("/admin/epcs")
            let bad = try await web.post(
                "/admin/epcs/settings",
                [
                    "token_totp": "1", "securityKeyAAGUIDs": "not-a-uuid", "workingHoursStart": "8",
                    "workingHoursEnd": "18", "adminPassword": Fixtures.password,
                ])
            #expect(bad.status == .badRequest)
            #expect(bad.text.contains("not-a-uuid is not an AAGUID"))
            let saved = try await web.post(
                "/admin/epcs/settings",
                [
                    "token_totp": "1", "securityKeyAAGUIDs": "", "workingHoursStart": "8",
                    "workingHoursEnd": "18", "adminPassword": Fixtures.password,
                ])
            #expect(saved.location == "/admin/epcs?notice=epcs-settings-saved")
            let practice = try #require(try await Practice.find(h.practice.id, on: ctx.app.db))
            #expect(practice.epcsTokens == "totp")
            #expect(practice.epcsWorkingHoursStart == 8 && practice.epcsWorkingHoursEnd == 18)
        }
    }

    /// The working-hours fields and their messages take their ranges from the policy, as the service's check does.
    @Test func workingHoursFollowThePolicysRanges() async throws {
        try await withTestApp { ctx in
            var policy = ctx.app.policy
            policy.practice.epcsWorkingHoursStart = Bounded(7, in: 5...11)
            policy.practice.epcsWorkingHoursEnd = Bounded(19, in: 12...22)
            ctx.app.policy = policy
            let h = try await EPCSHarness.make(ctx)
            let web = try await Self.web(ctx, "approver.one", secret: h.first.secret)
            let page = try await web.get("/admin/epcs")
            #expect(page.text.contains(#"name="workingHoursStart" type="number" min="5" max="11""#), "\(page.text)")
            #expect(page.text.contains(#"name="workingHoursEnd" type="number" min="12" max="22""#), "\(page.text)")
            let rule = "Working hours run from a start hour (5–11) to a later end hour (12–22), in UTC."
            for (start, end) in [("4", "18"), ("8", "23"), ("eight", "18")] {
                let refused = try await web.post(
                    "/admin/epcs/settings",
                    ["token_totp": "1", "workingHoursStart": start, "workingHoursEnd": end, "adminPassword": Fixtures.password])
                #expect(refused.status == .badRequest, "\(start)–\(end)")
                #expect(refused.text.contains(rule), "\(start)–\(end): \(refused.text)")
            }
            let api = try await h.firstClient.send(
                .PATCH, "/api/v1/practice/epcs/settings", json: ["workingHoursEnd": 23, "adminPassword": Fixtures.password])
            #expect(api.status == .badRequest)
            #expect(api.reason == rule)
        }
    }
}

/// Page text as a reader sees it: Leaf escapes apostrophes and quotes.
enum HTMLText {
    static func contains(_ html: String, _ text: String) -> Bool {
        html.replacingOccurrences(of: "&#39;", with: "'").replacingOccurrences(of: "&quot;", with: "\"").contains(text)
    }
}
