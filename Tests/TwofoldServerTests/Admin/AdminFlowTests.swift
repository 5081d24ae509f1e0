import Fluent
import Foundation
import SQLKit
import Testing
import VaporTesting

@testable import TwofoldServer

@Suite("Administration: staff, 2FA set-up and reset, settings, audit")
struct AdminFlowTests {
    static func adminWeb(_ ctx: TestContext) async throws -> (WebClient, Practice) {
        let practice = try await Fixtures.practice(ctx)
        _ = try await Fixtures.user(ctx, practice: practice, username: "admin", admin: true)
        let web = WebClient(ctx)
        _ = try await web.get("/login")
        _ = try await web.post("/login", ["username": "admin", "password": Fixtures.password])
        return (web, practice)
    }

    @Test func adminSetsUpTwoFactorForAStaffMemberWhoMustThenEnroll() async throws {
        try await withTestApp { ctx in
            let (web, practice) = try await Self.adminWeb(ctx)
            let staff = try await Fixtures.user(ctx, practice: practice, username: "jason", role: .staff)
            let list = try await web.get("/admin/staff")
            #expect(list.text.contains("jason"))
            #expect(list.text.contains("Inactive"))
            let confirm = try await web.get("/admin/staff/\(staff.id!)/two-factor/setup")
            #expect(confirm.text.contains("Email to use: jason@example.org"))
            #expect(confirm.text.contains("Cell phone to use: +15551234567"))
            let wrong = try await web.post("/admin/staff/\(staff.id!)/two-factor/setup", ["adminPassword": "not my password"])
            #expect(wrong.status == .forbidden)
            let done = try await web.post("/admin/staff/\(staff.id!)/two-factor/setup", ["adminPassword": Fixtures.password])
            #expect(done.location == "/admin/staff?notice=two-factor-set-up")
            let after = try await web.get(done.location!)
            #expect(after.text.contains("successfully set"))
            #expect(after.text.contains("Required — not yet set up"))

            let (client, body, _) = try await APIClient.login(ctx, username: "jason")
            #expect(body["status"] as? String == "enrollment_required")
            #expect(try await client.send(.GET, "/api/v1/me/factors").status == .forbidden)
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "admin.two_factor_required").count() == 1)
        }
    }

    @Test func setUpExplainsAMissingCellPhone() async throws {
        try await withTestApp { ctx in
            let (web, practice) = try await Self.adminWeb(ctx)
            let staff = try await Fixtures.user(ctx, practice: practice, username: "nocell", cell: nil, role: .staff)
            let confirm = try await web.get("/admin/staff/\(staff.id!)/two-factor/setup")
            #expect(confirm.text.contains("has no cell phone number on file"))
            #expect(confirm.text.contains("/admin/staff/\(staff.id!.uuidString)/edit"))
            let refused = try await web.post("/admin/staff/\(staff.id!)/two-factor/setup", ["adminPassword": Fixtures.password])
            #expect(refused.status == .conflict)
        }
    }

    @Test func mandatoryTwoFactorSendsSignedInUsersToEnrollmentAtTheirNextRequest() async throws {
        try await withTestApp { ctx in
            let (web, practice) = try await Self.adminWeb(ctx)
            _ = try await Fixtures.user(ctx, practice: practice, username: "kim", role: .staff)
            let (kim, _, _) = try await APIClient.login(ctx, username: "kim")
            #expect(try await kim.send(.GET, "/api/v1/me/factors").status == .ok)
            _ = try await web.get("/admin/practice")
            let saved = try await web.post(
                "/admin/practice",
                [
                    "name": "Riverside Family Medicine", "mandatoryTwoFactor": "1", "allowTOTP": "1", "allowSMS": "1",
                    "rememberBrowserDays": "14", "inactivityMinutes": "30", "otpDigits": "6", "adminPassword": Fixtures.password,
                ])
            #expect(saved.location == "/admin/practice?notice=settings-saved")
            let blocked = try await kim.send(.GET, "/api/v1/me/factors")
            #expect(blocked.status == .forbidden)
            #expect(blocked.reason.hasPrefix("enrollment_required"))
            // the admin too is led to enrollment
            #expect(try await web.get("/").location == "/account/security/setup")
            let event = try #require(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "practice.settings_changed").first())
            #expect(event.details.contains("mandatory_two_factor"))
            #expect(event.details.contains("remember_browser_days"))
        }
    }

    @Test func settingsAreValidated() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice, username: "admin", admin: true)
            let (admin, _, _) = try await APIClient.login(ctx, username: "admin")
            let bad = try await admin.send(
                .PATCH, "/api/v1/practice", json: ["adminPassword": Fixtures.password, "rememberBrowserDays": 91, "otpDigits": 9])
            #expect(bad.status == .badRequest)
            #expect(bad.reason.contains("0 to 90"))
            #expect(bad.reason.contains("6, 7 or 8"))
            // The document requires adminPassword: a body without it does not fit the request type.
            let noPassword = try await admin.send(.PATCH, "/api/v1/practice", json: ["otpDigits": 8])
            #expect(noPassword.status == .badRequest)
            #expect(noPassword.reason.contains("adminPassword"))
            let emptyPassword = try await admin.send(.PATCH, "/api/v1/practice", json: ["adminPassword": "", "otpDigits": 8])
            #expect(emptyPassword.status == .unauthorized)
            let ok = try await admin.send(
                .PATCH, "/api/v1/practice", json: ["adminPassword": Fixtures.password, "otpDigits": 8, "rememberBrowserDays": 0])
            #expect(ok.status == .ok)
            #expect(ok.json["otpDigits"] as? Int == 8)
        }
    }

    @Test func adminDisablesALostPhoneAndTheUserEnrollsAgain() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx, mandatory: true)
            let admin = try await Fixtures.user(ctx, practice: practice, username: "admin", admin: true)
            let staff = try await Fixtures.user(ctx, practice: practice, username: "lost.phone", role: .staff)
            // both enroll
            for username in ["admin", "lost.phone"] {
                let (client, _, _) = try await APIClient.login(ctx, username: username)
                let start = try await client.send(.POST, "/api/v1/me/factors/totp", json: [:])
                let id = try #require(start.json["factorId"] as? String)
                _ = try await client.send(
                    .POST, "/api/v1/me/factors/\(id)/activate",
                    json: ["code": try Fixtures.code(try #require(start.json["secret"] as? String), at: ctx.clock.now)])
            }
            let staffSession = try await Flows.halfSignedIn(ctx, username: "lost.phone")
            ctx.clock.advance(30)
            let adminClient = try await Flows.halfSignedIn(ctx, username: "admin")
            let recovery = try await adminClient.send(.POST, "/api/v1/login/recovery", json: ["code": "zzzz-zzzz-zzzz"])
            #expect(recovery.status == .unauthorized)
            // sign the admin in with their code
            let adminFactor = try #require(try await Factor.query(on: ctx.app.db).filter(\.$user.$id == admin.id!).first())
            let secret = try TOTPVerifier(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now).secret(of: adminFactor)
            #expect(
                try await adminClient.send(
                    .POST, "/api/v1/login/verify", json: ["code": try Fixtures.code(secret.base32, at: ctx.clock.now)]
                ).status == .ok)

            let selfDisable = try await adminClient.send(
                .POST, "/api/v1/practice/users/\(admin.id!)/two-factor/disable", json: ["adminPassword": Fixtures.password])
            #expect(selfDisable.status == .conflict)
            let disabled = try await adminClient.send(
                .POST, "/api/v1/practice/users/\(staff.id!)/two-factor/disable", json: ["adminPassword": Fixtures.password])
            #expect(disabled.status == .noContent)
            #expect(try await Factor.query(on: ctx.app.db).filter(\.$user.$id == staff.id!).count() == 0)
            #expect(try await RecoveryCodeRecord.query(on: ctx.app.db).filter(\.$user.$id == staff.id!).count() == 0)
            #expect(try await staffSession.send(.GET, "/api/v1/me").status == .unauthorized)
            let (_, body, _) = try await APIClient.login(ctx, username: "lost.phone")
            #expect(body["status"] as? String == "enrollment_required")
            let users = try await adminClient.send(.GET, "/api/v1/practice/users?q=lost").json["users"] as? [[String: Any]]
            #expect((users?.first?["twoFactor"] as? [String: Any])?["status"] as? String == "required")
        }
    }

    @Test func createEditAndDeleteStaffWithATemporaryPassword() async throws {
        try await withTestApp { ctx in
            let (web, practice) = try await Self.adminWeb(ctx)
            let provider = try await Fixtures.user(ctx, practice: practice, username: "dr.jones", role: .provider)
            _ = try await web.get("/admin/staff/new")
            let created = try await web.post(
                "/admin/staff",
                [
                    "username": "new.staff", "firstName": "Nia", "lastName": "New", "email": "nia@example.org",
                    "cellPhone": "+1 555 000 1234",
                    "role": "staff", "primaryProviderId": provider.id!.uuidString, "temporaryPassword": "temporary pass 1",
                    "adminPassword": Fixtures.password,
                ])
            #expect(created.location?.hasPrefix("/admin/staff?notice=staff-created") == true)
            let list = try await web.get("/admin/staff?q=NIA")
            #expect(list.text.contains("new.staff"))
            #expect(list.text.contains("Dr. Smith"))
            #expect(!list.text.contains("dr.jones</a>"))

            // first sign-in: must choose a new password before anything else
            let staffWeb = WebClient(ctx)
            _ = try await staffWeb.get("/login")
            _ = try await staffWeb.post("/login", ["username": "new.staff", "password": "temporary pass 1"])
            #expect(try await staffWeb.get("/").location == "/account/password")
            let page = try await staffWeb.get("/account/password")
            #expect(page.text.contains("temporary password"))
            let changed = try await staffWeb.post(
                "/account/password",
                ["currentPassword": "temporary pass 1", "newPassword": "my own password", "confirmPassword": "my own password"])
            #expect(changed.location?.hasPrefix("/account/security") == true)
            #expect(try await staffWeb.get("/").status == .ok)

            let user = try #require(try await User.query(on: ctx.app.db).filter(\.$usernameKey == "new.staff").first())
            _ = try await web.get("/admin/staff/\(user.id!)/edit")
            let edited = try await web.post(
                "/admin/staff/\(user.id!)/edit",
                ["firstName": "Nia", "lastName": "Newer", "email": "nia@example.org", "role": "staff", "adminPassword": Fixtures.password])
            #expect(edited.location == "/admin/staff?notice=staff-updated")
            let confirm = try await web.get("/admin/staff/\(user.id!)/delete")
            #expect(confirm.text.contains("Delete Nia Newer"))
            let deleted = try await web.post("/admin/staff/\(user.id!)/delete", ["adminPassword": Fixtures.password])
            #expect(deleted.location == "/admin/staff?notice=staff-deleted")
            #expect(try await User.find(user.id, on: ctx.app.db) == nil)
            // the audit trail survives and still verifies
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$subjectID == user.id!).count() >= 3)
            #expect(try await AuditLog.verify(on: ctx.app.db).isIntact)
        }
    }

    @Test func staffListPagesAndSearchesFiveThousandUsers() async throws {
        try await withTestApp { ctx in
            let (web, practice) = try await Self.adminWeb(ctx)
            let hash = try #require(try await User.query(on: ctx.app.db).first()).passwordHash
            // bulk rows straight into the table (bcrypt per row would only slow the test)
            for batch in stride(from: 0, to: 5000, by: 500) {
                var users: [User] = []
                for index in batch..<(batch + 500) {
                    users.append(
                        User(
                            practiceID: practice.id!, username: "user\(index)", firstName: "First\(index)",
                            lastName: String(format: "Last%05d", index),
                            email: "user\(index)@example.org", cellPhone: nil, role: .staff, permissions: [], passwordHash: hash))
                }
                try await users.create(on: ctx.app.db)
            }
            let first = try await web.get("/admin/staff")
            #expect(first.status == .ok)
            #expect(first.text.contains("5001 staff members"))
            #expect(first.text.contains("Page 1 of 101"))
            #expect(first.text.components(separatedBy: "<tr data-username").count == 51)
            let last = try await web.get("/admin/staff?page=101")
            #expect(last.text.components(separatedBy: "<tr data-username").count == 2)
            let search = try await web.get("/admin/staff?q=last04321")
            #expect(search.text.contains("user4321"))
            #expect(search.text.contains("1 staff member"))
        }
    }

    @Test func auditPageFiltersAndExportsCSV() async throws {
        try await withTestApp { ctx in
            let (web, practice) = try await Self.adminWeb(ctx)
            _ = try await Fixtures.user(ctx, practice: practice, username: "kim", role: .staff)
            _ = try await APIClient.login(ctx, username: "kim", password: "=cmd|' /C calc'!A0")
            let page = try await web.get("/admin/audit?type=sign_in.failed")
            #expect(page.status == .ok)
            #expect(page.text.contains("sign_in.failed"))
            #expect(!page.text.contains("<td class=\"event\">sign_in.succeeded</td>"))
            let byUser = try await web.get("/admin/audit?user=kim")
            #expect(byUser.text.contains("user.created"))
            let csv = try await web.get("/admin/audit.csv?user=kim")
            #expect(csv.headers.contentType?.subType == "csv")
            #expect(csv.text.hasPrefix("seq,time,event,actor,subject,ip,user_agent,details,chain\r\n"))
            #expect(csv.text.contains("sign_in.failed"))
            let badDate = try await web.get("/admin/audit?from=yesterday")
            #expect(badDate.status == .badRequest)
            let api = try await APIClient.login(ctx, username: "admin").0.send(.GET, "/api/v1/practice/audit?type=sign_in.failed")
            #expect((api.json["events"] as? [[String: Any]])?.count == 1)
        }
    }
}

@Suite("Administration: API keys")
struct AdminAPIKeyTests {
    @Test func administratorCreatesAKeyShownOnceAndRevokesIt() async throws {
        try await withTestApp { ctx in
            let (web, practice) = try await AdminFlowTests.adminWeb(ctx)
            _ = try await web.get("/admin/api-keys")
            let wrong = try await web.post("/admin/api-keys", ["name": "EHR production", "adminPassword": "not my password"])
            #expect(wrong.status == .forbidden)
            let created = try await web.post("/admin/api-keys", ["name": "EHR production", "adminPassword": Fixtures.password])
            #expect(created.status == .ok)
            #expect(created.headers.first(name: .cacheControl) == "no-store")
            let key = try #require(PushWebTests.capture(#"id="new-key">(tfk_[A-Za-z0-9_-]+)<"#, in: created.text))
            let stored = try #require(try await APIKey.query(on: ctx.app.db).first())
            #expect(stored.$practice.id == practice.id)
            #expect(stored.keyHash != key)
            #expect(!(try await web.get("/admin/api-keys").text.contains(key)), "the key is shown only once")

            let step = try await APIClient(ctx, token: key).send(.POST, "/api/v1/validate", json: ["username": "nobody", "code": "123456"])
            #expect(step.status == .ok)
            let revoked = try await web.post("/admin/api-keys/\(stored.id!.uuidString)/revoke", ["adminPassword": Fixtures.password])
            #expect(revoked.text.contains("was revoked"))
            ctx.clock.advance(APIKeyCache.lifetime)
            #expect(
                try await APIClient(ctx, token: key).send(.POST, "/api/v1/validate", json: ["username": "nobody", "code": "123456"]).status
                    == .unauthorized)
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event ~~ ["api_key.created", "api_key.revoked"]).count() == 2)
        }
    }
}
