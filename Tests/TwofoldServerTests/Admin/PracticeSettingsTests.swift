import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// The practice settings over the API and the settings page: bounds and defaults come from the policy, a value outside
/// them is a 400 that names the field and the range, and the audit lists what changed.
@Suite("Practice settings")
struct PracticeSettingsTests {
    /// The bounded settings the API and the form take, with their names there.
    static func bounded(_ policy: TwofoldPolicy.PracticeSettings) -> [(name: String, setting: Bounded<Int>)] {
        [
            ("rememberBrowserDays", policy.rememberBrowserDays), ("inactivityMinutes", policy.inactivityMinutes),
            ("otpDigits", policy.otpDigits),
            ("sessionLifetimeHours", policy.sessionLifetimeHours), ("accessTokenMinutes", policy.accessTokenMinutes),
            ("refreshTokenDays", policy.refreshTokenDays),
        ]
    }

    static func admin(_ ctx: TestContext) async throws -> (APIClient, Practice) {
        let practice = try await Fixtures.practice(ctx)
        _ = try await Fixtures.user(ctx, practice: practice, username: "admin", admin: true)
        let (admin, _, _) = try await APIClient.login(ctx, username: "admin")
        return (admin, practice)
    }

    @Test func aNewPracticeShowsThePolicysDefaults() async throws {
        try await withTestApp { ctx in
            let (admin, _) = try await Self.admin(ctx)
            let shown = try await admin.send(.GET, "/api/v1/practice")
            #expect(shown.status == .ok)
            for (name, setting) in Self.bounded(ctx.app.policy.practice) {
                #expect(shown.json[name] as? Int == setting.default, "\(name)")
            }
        }
    }

    @Test func eachBoundIsAcceptedAndOneBeyondIsRefusedByName() async throws {
        try await withTestApp { ctx in
            let (admin, _) = try await Self.admin(ctx)
            for (name, setting) in Self.bounded(ctx.app.policy.practice) {
                for edge in [setting.lowerBound, setting.upperBound] {
                    let saved = try await admin.send(.PATCH, "/api/v1/practice", json: ["adminPassword": Fixtures.password, name: edge])
                    #expect(saved.status == .ok, "\(name) = \(edge): \(saved.text)")
                    #expect(saved.json[name] as? Int == edge)
                }
                for outside in [setting.lowerBound - 1, setting.upperBound + 1] {
                    let refused = try await admin.send(
                        .PATCH, "/api/v1/practice", json: ["adminPassword": Fixtures.password, name: outside])
                    #expect(refused.status == .badRequest, "\(name) = \(outside)")
                    #expect(refused.reason.contains(name), "\(refused.reason)")
                    #expect(refused.reason.contains("not \(outside)"), "\(refused.reason)")
                    if name != "otpDigits" {
                        #expect(refused.reason.contains("\(setting.lowerBound) to \(setting.upperBound)"), "\(refused.reason)")
                    }
                }
            }
            // Nothing refused was stored.
            let stored = try #require(try await Practice.query(on: ctx.app.db).first())
            for (name, setting) in Self.bounded(ctx.app.policy.practice) {
                let value = PracticeSettings(stored)
                let current: Int =
                    switch name {
                    case "rememberBrowserDays": value.rememberBrowserDays
                    case "inactivityMinutes": value.inactivityMinutes
                    case "otpDigits": value.otpDigits
                    case "sessionLifetimeHours": value.sessionLifetimeHours
                    case "accessTokenMinutes": value.accessTokenMinutes
                    default: value.refreshTokenDays
                    }
                #expect(setting.contains(current), "\(name) = \(current)")
            }
        }
    }

    @Test func everyProblemIsListedAndNothingIsSaved() async throws {
        try await withTestApp { ctx in
            let (admin, _) = try await Self.admin(ctx)
            let refused = try await admin.send(
                .PATCH, "/api/v1/practice",
                json: [
                    "adminPassword": Fixtures.password, "name": "  ", "inactivityMinutes": 1, "accessTokenMinutes": 60,
                    "allowSMS": false, "allowTOTP": false, "allowPush": false, "allowPasskeys": false,
                    "notificationCopyAddress": "not-an-address",
                ])
            #expect(refused.status == .badRequest)
            for field in ["name", "inactivityMinutes", "accessTokenMinutes", "allow at least one method", "notificationCopyAddress"] {
                #expect(refused.reason.contains(field), "\(field) missing from \(refused.reason)")
            }
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "practice.settings_changed").count() == 0)
            let stored = try #require(try await Practice.query(on: ctx.app.db).first())
            #expect(stored.inactivityMinutes == ctx.app.policy.practice.inactivityMinutes.default)
            #expect(stored.allowSMS)
        }
    }

    @Test func theAuditEntryListsExactlyWhatChanged() async throws {
        try await withTestApp { ctx in
            let (admin, _) = try await Self.admin(ctx)
            let defaults = ctx.app.policy.practice
            let saved = try await admin.send(
                .PATCH, "/api/v1/practice",
                json: [
                    "adminPassword": Fixtures.password, "rememberBrowserDays": 7, "inactivityMinutes": defaults.inactivityMinutes.default,
                    "notificationCopyAddress": "manager@example.org",
                ])
            #expect(saved.status == .ok)
            let event = try #require(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "practice.settings_changed").first())
            let details = try #require(try JSONSerialization.jsonObject(with: Data(event.details.utf8)) as? [String: String])
            #expect(
                details == [
                    "remember_browser_days": "\(defaults.rememberBrowserDays.default) → 7",
                    "notification_copy_address": "none → manager@example.org",
                ])
            // The same address again, in other letters, is no change.
            let again = try await admin.send(
                .PATCH, "/api/v1/practice", json: ["adminPassword": Fixtures.password, "notificationCopyAddress": "Manager@Example.org"])
            #expect(again.status == .ok)
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "practice.settings_changed").count() == 1)
        }
    }

    @Test func anotherPolicyMovesTheBoundsOfTheAPIAndThePage() async throws {
        try await withTestApp { ctx in
            var policy = TwofoldPolicy.standard
            policy.practice.rememberBrowserDays = Bounded(7, in: 0...14)
            ctx.app.policy = policy
            let (admin, _) = try await Self.admin(ctx)
            let refused = try await admin.send(
                .PATCH, "/api/v1/practice", json: ["adminPassword": Fixtures.password, "rememberBrowserDays": 30])
            #expect(refused.status == .badRequest)
            #expect(refused.reason.contains("rememberBrowserDays"))
            #expect(refused.reason.contains("0 to 14"))

            let web = WebClient(ctx)
            _ = try await web.get("/login")
            _ = try await web.post("/login", ["username": "admin", "password": Fixtures.password])
            let page = try await web.get("/admin/practice")
            #expect(page.status == .ok)
            #expect(page.text.contains(#"name="rememberBrowserDays" type="number" min="0" max="14""#), "\(page.text)")
            #expect(page.text.contains("days, 0 to 14; 0 turns it off"))
        }
    }

    @Test func theFormStatesThePolicysBoundsAndRefusesByName() async throws {
        try await withTestApp { ctx in
            let (web, _) = try await AdminFlowTests.adminWeb(ctx)
            let page = try await web.get("/admin/practice")
            #expect(page.status == .ok)
            for (name, setting) in Self.bounded(ctx.app.policy.practice) where name != "otpDigits" {
                #expect(
                    page.text.contains(#"name="\#(name)" type="number" min="\#(setting.lowerBound)" max="\#(setting.upperBound)""#),
                    "\(name)")
            }
            for digits in ctx.app.policy.practice.otpDigits.range {
                #expect(page.text.contains(#"<option value="\#(digits)""#))
            }
            #expect(page.text.contains(#"maxlength="\#(ctx.app.policy.practice.nameLength.upperBound)""#))
            let upper = ctx.app.policy.practice.sessionLifetimeHours.upperBound
            let refused = try await web.post(
                "/admin/practice",
                [
                    "name": "Riverside Family Medicine", "allowTOTP": "1", "rememberBrowserDays": "14", "inactivityMinutes": "30",
                    "otpDigits": "6",
                    "sessionLifetimeHours": "\(upper + 1)", "accessTokenMinutes": "10", "refreshTokenDays": "14",
                    "adminPassword": Fixtures.password,
                ])
            #expect(refused.status == .badRequest)
            #expect(refused.text.contains("sessionLifetimeHours"))
            #expect(refused.text.contains("1 to \(upper) hours"))
            let stored = try #require(try await Practice.query(on: ctx.app.db).first())
            #expect(stored.sessionLifetimeHours == ctx.app.policy.practice.sessionLifetimeHours.default)
        }
    }
}
