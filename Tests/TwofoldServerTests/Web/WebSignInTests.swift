import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("Sign-in pages")
struct WebSignInTests {
    static func signInWithPassword(_ web: WebClient) async throws -> TestingHTTPResponse {
        _ = try await web.get("/login")
        return try await web.post("/login", ["username": "dr.smith", "password": Fixtures.password])
    }

    @Test func loginPageShowsThePracticeAndSetsTheCSRFCookie() async throws {
        try await withTestApp { ctx in
            _ = try await Fixtures.practice(ctx)
            let web = WebClient(ctx)
            let page = try await web.get("/login")
            #expect(page.status == .ok)
            #expect(page.text.contains("Riverside Family Medicine"))
            #expect(page.text.contains("Forgot password?"))
            #expect(web.cookies[SessionCookie.csrfName] != nil)
            #expect(page.headers.first(name: "Content-Security-Policy")?.contains("frame-ancestors 'none'") == true)
        }
    }

    @Test func formsWithoutTheCSRFTokenAreRefused() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let web = WebClient(ctx)
            _ = try await web.get("/login")
            let forged = try await web.post("/login", ["username": "dr.smith", "password": Fixtures.password], csrf: "")
            #expect(forged.status == .forbidden)
            #expect(forged.text.contains("This form has expired"))
            let wrong = try await web.post("/login", ["username": "dr.smith", "password": Fixtures.password], csrf: "not-the-token")
            #expect(wrong.status == .forbidden)
        }
    }

    @Test func sessionCookieIsHttpOnlyLaxAndRotatesAtSignIn() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            ctx.clock.advance(30)
            let web = WebClient(ctx)
            let password = try await Self.signInWithPassword(web)
            #expect(password.status == .seeOther)
            #expect(password.location == "/login/two-factor")
            let cookieHeader = try #require(web.lastSetCookieHeaders.first { $0.hasPrefix(SessionCookie.name) })
            #expect(cookieHeader.contains("HttpOnly"))
            #expect(cookieHeader.contains("SameSite=Lax"))
            #expect(!cookieHeader.contains("Secure"))
            let halfToken = try #require(web.cookies[SessionCookie.name])

            // half-signed-in: only the second-factor page
            #expect(try await web.get("/account/security").location == "/login/two-factor")
            #expect(try await web.get("/").location == "/login/two-factor")
            let page = try await web.get("/login/two-factor")
            #expect(page.text.contains("Authenticator app"))
            #expect(page.text.contains("Don't ask again on this browser for 30 days"))
            // the profile's cell phone was never confirmed as a method, so no text message is offered
            #expect(!page.text.contains("Send code by SMS"))
            #expect(page.text.contains("Use a recovery code"))

            let done = try await web.post(
                "/login/two-factor", ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now), "factorId": enrolled.factorID])
            #expect(done.location == "/")
            let fullToken = try #require(web.cookies[SessionCookie.name])
            #expect(fullToken != halfToken)
            let home = try await web.get("/")
            #expect(home.status == .ok)
            #expect(home.text.contains("Welcome, Sam"))
            // the stored form is a hash, never the token
            #expect(try await SessionRecord.query(on: ctx.app.db).filter(\.$tokenHash == fullToken).count() == 0)
            #expect(try await SessionRecord.query(on: ctx.app.db).filter(\.$tokenHash == Digest.sha256Hex(fullToken)).count() == 1)
        }
    }

    @Test func secureCookiesWhenConfiguredBehindTLS() async throws {
        try await withTestApp { ctx in
            ctx.app.twofold.configuration.secureCookies = true
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let web = WebClient(ctx)
            _ = try await Self.signInWithPassword(web)
            // over HTTPS the cookies carry the __Host- prefix (Secure, Path=/, no Domain)
            let cookieHeader = try #require(web.lastSetCookieHeaders.first { $0.hasPrefix("__Host-" + SessionCookie.name + "=") })
            #expect(cookieHeader.contains("Secure"))
            #expect(cookieHeader.contains("Path=/"))
            #expect(!cookieHeader.lowercased().contains("domain="))
            #expect(!web.lastSetCookieHeaders.contains { $0.hasPrefix(SessionCookie.name + "=") })
        }
    }

    @Test func idleSessionsEndAfterThePracticeLimit() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let web = WebClient(ctx)
            _ = try await Self.signInWithPassword(web)
            #expect(try await web.get("/").status == .ok)
            ctx.clock.advance(29 * 60)
            #expect(try await web.get("/").status == .ok)
            ctx.clock.advance(31 * 60)
            let expired = try await web.get("/")
            #expect(expired.location == "/login?expired=1")
            #expect(try await web.get("/login?expired=1").text.contains("inactivity"))
        }
    }

    @Test func wrongCodeShowsAMessageAndRememberSkipsTheCodeNextTime() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            ctx.clock.advance(30)
            let web = WebClient(ctx)
            _ = try await Self.signInWithPassword(web)
            _ = try await web.get("/login/two-factor")
            let wrong = try await web.post("/login/two-factor", ["code": "000000"])
            #expect(wrong.status == .unauthorized)
            #expect(wrong.text.contains("That code is not correct"))
            let ok = try await web.post(
                "/login/two-factor", ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now), "remember": "1"])
            #expect(ok.location == "/")
            #expect(web.cookies[SessionCookie.rememberName] != nil)
            _ = try await web.get("/")
            _ = try await web.post("/logout")
            let again = try await Self.signInWithPassword(web)
            #expect(again.location == "/")
        }
    }

    @Test func recoveryCodePageSignsIn() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let web = WebClient(ctx)
            _ = try await Self.signInWithPassword(web)
            _ = try await web.get("/login/recovery")
            let done = try await web.post("/login/recovery", ["code": enrolled.recoveryCodes[0]])
            #expect(done.location == "/")
        }
    }

    @Test func webEnrollmentShowsQRKeyAndRecoveryCodes() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx, mandatory: true)
            _ = try await Fixtures.user(ctx, practice: practice)
            let web = WebClient(ctx)
            let password = try await Self.signInWithPassword(web)
            #expect(password.location == "/account/security/setup")
            #expect(try await web.get("/").location == "/account/security/setup")
            let choose = try await web.get("/account/security/setup")
            #expect(choose.text.contains("Authenticator app"))
            #expect(choose.text.contains("Recommended"))
            #expect(choose.text.contains("Your practice requires two-factor authentication"))
            let started = try await web.post("/account/security/setup/app")
            let appPage = try await web.get(try #require(started.location))
            #expect(appPage.text.contains("<svg"))
            #expect(appPage.text.contains("crispEdges"))
            #expect(appPage.text.contains("Google Authenticator"))
            let factor = try #require(try await Factor.query(on: ctx.app.db).first())
            let secret = try TOTPVerifier(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now).secret(of: factor)
            #expect(appPage.text.contains(secret.base32Grouped))
            let codes = try await web.post(started.location!, ["code": try Fixtures.code(secret.base32, at: ctx.clock.now)])
            #expect(codes.status == .ok)
            #expect(codes.text.contains("I have saved these codes"))
            #expect(codes.text.components(separatedBy: "<li><code>").count == 11)
            let unticked = try await web.post("/account/security/recovery-codes/saved")
            #expect(unticked.status == .badRequest)
            let saved = try await web.post("/account/security/recovery-codes/saved", ["saved": "1"])
            #expect(saved.location == "/?notice=enabled")
            let security = try await web.get("/account/security")
            #expect(security.text.contains("Two-factor authentication is <strong>on</strong>"))
            #expect(security.text.contains("required by your practice"))
        }
    }
}
