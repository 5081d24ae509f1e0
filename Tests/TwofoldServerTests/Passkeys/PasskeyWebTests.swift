import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// The pages and form posts the browser script uses (the browser itself is exercised in Tests/e2e).
@Suite("Passkey pages")
struct PasskeyWebTests {
    static func json(_ credential: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: credential), as: UTF8.self)
    }

    @Test func aPasskeyAddedOnTheSetupPageSignsInOnTheTwoFactorPage() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let web = WebClient(ctx)
            #expect(try await WebSignInTests.signInWithPassword(web).location == "/")
            let security = try await web.get("/account/security")
            #expect(security.text.contains(#"id="add-passkey""#))
            let setup = try await web.get("/account/security/setup")
            #expect(setup.text.contains(#"data-webauthn="register""#))
            #expect(setup.text.contains("Add a passkey or security key"))

            #expect(try await web.postJSON("/api/v1/me/factors/webauthn/options", [:], sendCSRF: false).status == .forbidden)
            let options = try await web.postJSON("/api/v1/me/factors/webauthn/options", ["password": Fixtures.password])
            #expect(options.status == .ok, "\(options.text)")
            let device = SoftAuthenticator()
            let added = try await web.post(
                "/account/security/setup/passkey", ["credential": try Self.json(device.create(options.json)), "nickname": "Exam room key"])
            #expect(added.status == .ok, "\(added.text)")
            #expect(added.text.contains("recovery"))
            let listed = try await web.get("/account/security")
            #expect(listed.text.contains("Exam room key"))
            #expect(listed.text.contains("Passkey or security key"))
            #expect(listed.text.contains(#"id="disable-by-removing""#), "a passkey shows no code to confirm turning 2FA off with")
            _ = try await web.post("/logout")

            let next = WebClient(ctx)
            #expect(try await WebSignInTests.signInWithPassword(next).location == "/login/two-factor")
            let page = try await next.get("/login/two-factor")
            #expect(page.text.contains(#"id="use-passkey""#))
            #expect(page.text.contains("Exam room key"))
            let request = try await next.postJSON("/api/v1/login/webauthn/options")
            #expect(request.status == .ok, "\(request.text)")

            let broken = try await next.post("/login/two-factor/passkey", ["credential": "{not json"])
            #expect(broken.status == .badRequest)
            #expect(broken.text.contains("PublicKeyCredential.toJSON()"))

            let done = try await next.post(
                "/login/two-factor/passkey", ["credential": try Self.json(device.get(request.json)), "remember": "1"])
            #expect(done.status == .seeOther || done.status == .found, "\(done.text)")
            #expect(done.location == "/")
            #expect(next.cookies[SessionCookie.rememberName] != nil)
            #expect(try await next.get("/").status == .ok)
        }
    }

    @Test func passwordlessSignInFromTheSignInPage() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPasskey(ctx)
            let web = WebClient(ctx)
            #expect(!(try await web.get("/login").text.contains("Sign in with a passkey")))

            practice.allowPasswordless = true
            try await practice.save(on: ctx.app.db)
            let page = try await web.get("/login")
            #expect(page.text.contains("Sign in with a passkey"))
            let options = try await web.postJSON("/api/v1/login/webauthn/options")
            #expect(options.status == .ok, "\(options.text)")
            let forged = try await web.post(
                "/login/passkey", ["credential": try Self.json(enrolled.authenticator.get(options.json))], csrf: "")
            #expect(forged.status == .forbidden)
            let again = try await web.postJSON("/api/v1/login/webauthn/options")
            let signedIn = try await web.post("/login/passkey", ["credential": try Self.json(enrolled.authenticator.get(again.json))])
            #expect(signedIn.location == "/", "\(signedIn.text)")
            #expect(try await web.get("/").status == .ok)

            let stranger = WebClient(ctx)
            _ = try await stranger.get("/login")
            let strangerOptions = try await stranger.postJSON("/api/v1/login/webauthn/options")
            let refused = try await stranger.post(
                "/login/passkey", ["credential": try Self.json(SoftAuthenticator().get(strangerOptions.json))])
            #expect(refused.status == .unauthorized)
            #expect(refused.text.contains("not registered"))
        }
    }

    @Test func practiceSettingsPageHasThePasskeySwitches() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice, admin: true)
            let web = WebClient(ctx)
            _ = try await WebSignInTests.signInWithPassword(web)
            let page = try await web.get("/admin/practice")
            #expect(page.text.contains("Allow passwordless sign-in with passkeys"))
            let saved = try await web.post(
                "/admin/practice",
                [
                    "name": practice.name, "allowTOTP": "1", "allowPasskeys": "1", "allowPasswordless": "1",
                    "rememberBrowserDays": "30", "inactivityMinutes": "30", "otpDigits": "6", "adminPassword": Fixtures.password,
                ])
            #expect(saved.status == .seeOther || saved.status == .ok || saved.status == .found, "\(saved.text)")
            let reloaded = try #require(try await Practice.find(practice.id, on: ctx.app.db))
            #expect(reloaded.allowPasswordless)
            #expect(!reloaded.refuseClonedPasskeys)
            #expect(
                try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "practice.settings_changed").first()?.details.contains(
                    "allow_passwordless") == true)
        }
    }
}

@Suite("Passkey on the step-up page")
struct PasskeyStepUpPageTests {
    @Test func theStepUpPageConfirmsWithAPasskey() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPasskey(ctx)
            let key = try await StepUpTests.key(ctx, practice: practice)
            let id = try #require(try await StepUpTests.start(ctx, key: key).json["challengeId"] as? String)

            let web = WebClient(ctx)
            _ = try await WebSignInTests.signInWithPassword(web)
            let twoFactor = try await web.get("/login/two-factor")
            #expect(twoFactor.status == .ok)
            let signInOptions = try await web.postJSON("/api/v1/login/webauthn/options")
            #expect(
                try await web.post(
                    "/login/two-factor/passkey", ["credential": try PasskeyWebTests.json(enrolled.authenticator.get(signInOptions.json))]
                ).location == "/")

            let page = try await web.get("/step-up/\(id)")
            #expect(page.text.contains(#"id="step-up-passkey""#))
            #expect(try await web.postJSON("/step-up/\(id)/passkey/options", sendCSRF: false).status == .forbidden)
            let options = try await web.postJSON("/step-up/\(id)/passkey/options")
            #expect(options.status == .ok, "\(options.text)")
            #expect(options.json["userVerification"] as? String == "required")
            let done = try await web.post(
                "/step-up/\(id)/passkey", ["credential": try PasskeyWebTests.json(enrolled.authenticator.get(options.json))])
            #expect(done.status == .ok, "\(done.text)")
            #expect(done.text.contains(#"id="step-up-done""#))

            let collected = try await APIClient(ctx, token: key).send(.GET, "/api/v1/step-up/\(id)")
            #expect(collected.json["status"] as? String == "completed")
            let claims = try await StepUpTests.verify(ctx, try #require(collected.json["assertion"] as? String))
            #expect(claims.amr == ["hwk", "user"])
        }
    }
}
