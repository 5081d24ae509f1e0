import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("Push and step-up pages")
struct PushWebTests {
    /// Pulls a value out of a page, e.g. the number to match.
    static func capture(_ pattern: String, in html: String) -> String? {
        guard let regex = try? NSRegularExpression(pattern: pattern),
            let match = regex.firstMatch(in: html, range: NSRange(html.startIndex..., in: html)),
            let range = Range(match.range(at: 1), in: html)
        else { return nil }
        return String(html[range])
    }

    @Test func browserEnrollsADeviceThenSignsInByApprovingOnIt() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx, mandatory: true)
            _ = try await Fixtures.user(ctx, practice: practice)
            let web = WebClient(ctx)
            _ = try await WebSignInTests.signInWithPassword(web)
            let choose = try await web.get("/account/security/setup")
            #expect(choose.text.contains("Push notification device"))
            let setup = try await web.post("/account/security/setup/push", ["nickname": "Work phone"])
            #expect(setup.status == .ok, "\(setup.text)")
            #expect(setup.text.contains("<svg"))
            let uri = try #require(Self.capture(#"id="enrollment-uri">([^<]+)<"#, in: setup.text)).replacingOccurrences(
                of: "&amp;", with: "&")
            let factorID = try #require(Self.capture(#"/account/security/setup/push/([0-9A-F-]{36})/status"#, in: setup.text))

            let early = try await web.post("/account/security/setup/push/\(factorID)")
            #expect(early.text.contains("has not finished enrolling"))
            #expect(try await web.get("/account/security/setup/push/\(factorID)/status").json["status"] as? String == "waiting")
            let (device, enrolled) = try await TestDevice.enroll(ctx, uri: uri, name: "Pixel")
            #expect(enrolled.status == .ok)
            _ = try await device.pending(ctx)
            #expect(try await web.get("/account/security/setup/push/\(factorID)/status").json["status"] as? String == "active")
            let finished = try await web.post("/account/security/setup/push/\(factorID)")
            #expect(finished.text.contains("I have saved these codes"), "the first method brings recovery codes")

            _ = try await web.post("/logout")
            _ = try await WebSignInTests.signInWithPassword(web)
            let twoFactor = try await web.get("/login/two-factor")
            #expect(twoFactor.text.contains("Send a request to Pixel"))
            let wait = try await web.post("/login/two-factor/push", ["factorId": factorID])
            let numberText = try #require(Self.capture(#"id="match-number"[^>]*>(\d\d)<"#, in: wait.text))
            let number = try #require(Int(numberText))
            let challengeID = try #require(Self.capture(#"/login/two-factor/push/([0-9A-F-]{36})"#, in: wait.text))
            #expect(try await web.get("/login/two-factor/push/\(challengeID)").json["status"] as? String == "pending")
            let notYet = try await web.post("/login/two-factor/push/\(challengeID)")
            #expect(notYet.text.contains("Not approved yet"))

            #expect(try await device.approve(ctx, challengeID, number: number).status == .ok)
            #expect(try await web.get("/login/two-factor/push/\(challengeID)").json["status"] as? String == "approved")
            let done = try await web.post("/login/two-factor/push/\(challengeID)")
            #expect(done.location == "/")
            #expect(try await web.get("/account/security").status == .ok)
        }
    }

    @Test func stepUpPageConfirmsWithACodeForItsOwnUserOnly() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Fixtures.user(ctx, practice: practice, username: "nurse.jones", role: .staff)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let key = try await StepUpTests.key(ctx, practice: practice)
            let started = try await StepUpTests.start(ctx, key: key)
            let id = try #require(started.json["challengeId"] as? String)

            let other = WebClient(ctx)
            _ = try await other.get("/login")
            _ = try await other.post("/login", ["username": "nurse.jones", "password": Fixtures.password])
            #expect(try await other.get("/step-up/\(id)").status == .notFound)

            ctx.clock.advance(30)
            let web = WebClient(ctx)
            _ = try await WebSignInTests.signInWithPassword(web)
            _ = try await web.get("/login/two-factor")
            _ = try await web.post(
                "/login/two-factor", ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now), "factorId": enrolled.factorID])
            let page = try await web.get("/step-up/\(id)")
            #expect(page.status == .ok)
            #expect(page.text.contains("lipid panel"))
            #expect(page.text.contains("text messages, recovery codes and remembered browsers are not accepted"))
            let reused = try await web.post("/step-up/\(id)", ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now)])
            #expect(reused.text.contains("already been used"), "the sign-in's time step cannot confirm the action")
            ctx.clock.advance(30)
            let confirmed = try await web.post("/step-up/\(id)", ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now)])
            #expect(confirmed.text.contains("step-up-done"))
            let collected = try await APIClient(ctx, token: key).send(.GET, "/api/v1/step-up/\(id)")
            #expect(collected.json["status"] as? String == "completed")
            #expect(try await StepUpTests.verify(ctx, try #require(collected.json["assertion"] as? String)).amr == ["otp"])
        }
    }
}
