import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// Forgot password, reset links, the administrator's "Send a password reset link", and email verification.
@Suite("Password reset and email verification")
struct PasswordResetTests {
    static let newPassword = "violet harbor lantern"

    // MARK: helpers

    /// The messages queued to `address`, newest first.
    static func mails(_ ctx: TestContext, to address: String) async throws -> [QueuedMail] {
        try await QueuedMail.query(on: ctx.app.db).filter(\.$recipient == address).sort(\.$createdAt, .descending).all()
    }

    /// The token of a link `path/<token>` in the newest message to `address` with `category`.
    static func token(_ ctx: TestContext, to address: String, category: String = "password_reset", path: String = "/login/reset/")
        async throws -> String?
    {
        guard let mail = try await mails(ctx, to: address).first(where: { $0.category == category }),
            let body = try ctx.app.mailer.body(of: mail)
        else { return nil }
        #expect(body.html.contains(path))
        guard
            let range = body.text.range(
                of: NSRegularExpression.escapedPattern(for: path) + "[A-Za-z0-9_-]{43}", options: .regularExpression)
        else { return nil }
        return String(body.text[range].dropFirst(path.count))
    }

    static func forgot(_ ctx: TestContext, _ login: String) async throws -> TestingHTTPResponse {
        try await APIClient(ctx).send(.POST, "/api/v1/login/forgot", json: ["login": login])
    }

    static func reset(_ ctx: TestContext, token: String, password: String = newPassword, code: String? = nil) async throws
        -> TestingHTTPResponse
    {
        var json: [String: any Sendable] = ["token": token, "password": password]
        if let code { json["code"] = code }
        return try await APIClient(ctx).send(.POST, "/api/v1/login/reset", json: json)
    }

    static func events(_ ctx: TestContext, _ type: AuditEventType) async throws -> [AuditEvent] {
        try await AuditEvent.query(on: ctx.app.db).filter(\.$event == type.rawValue).sort(\.$seq).all()
    }

    /// A practice and dr.smith (no second factor), with the forgot page's padding made short for the tests.
    @discardableResult
    static func setUp(_ ctx: TestContext) async throws -> (Practice, User) {
        ctx.app.forgotPasswordTiming.minimum = 0.02
        let practice = try await Fixtures.practice(ctx)
        let user = try await Fixtures.user(ctx, practice: practice)
        return (practice, user)
    }

    static func signedInWeb(_ ctx: TestContext, username: String = "dr.smith") async throws -> WebClient {
        let web = WebClient(ctx)
        _ = try await web.get("/login")
        let signIn = try await web.post("/login", ["username": username, "password": Fixtures.password])
        #expect(signIn.location == "/", "\(signIn.status) \(signIn.text)")
        return web
    }

    // MARK: forgot password

    @Test func theSignInPageLinksToForgotPassword() async throws {
        try await withTestApp { ctx in
            try await Self.setUp(ctx)
            let page = try await WebClient(ctx).get("/login")
            #expect(page.text.contains(#"<a href="/login/forgot" id="forgot-password">Forgot password?</a>"#))
            #expect(!page.text.contains("/login#forgot"))
        }
    }

    @Test func answersAreTheSameWhetherOrNotTheAccountExists() async throws {
        try await withTestApp { ctx in
            try await Self.setUp(ctx)
            let web = WebClient(ctx)
            let form = try await web.get("/login/forgot")
            #expect(form.status == .ok)
            #expect(form.text.contains(#"name="login""#))
            let existing = try await web.post("/login/forgot", ["login": "dr.smith"])
            let unknown = try await web.post("/login/forgot", ["login": "nobody.here"])
            let byEmail = try await web.post("/login/forgot", ["login": "DR.SMITH@example.org"])
            #expect(existing.status == .ok)
            #expect(unknown.status == existing.status)
            #expect(byEmail.status == existing.status)
            #expect(unknown.text == existing.text)
            #expect(byEmail.text == existing.text)
            #expect(existing.text.contains("If an account matches what you entered"))
            #expect(!existing.text.contains("dr.smith") && !unknown.text.contains("nobody.here"))

            // The API answers the same way too.
            let apiExisting = try await Self.forgot(ctx, "dr.smith")
            let apiUnknown = try await Self.forgot(ctx, "nobody.here")
            #expect(apiExisting.status == .accepted)
            #expect(apiUnknown.status == .accepted)
            #expect(apiExisting.text == apiUnknown.text)

            // Every request went through the same padding, matched or not.
            let padded = ctx.app.forgotPasswordTiming.padded
            #expect(padded.count == 5)
            #expect(Set(padded) == [0.02])

            // Only the existing account got messages (by username and by email address); the audit tells them apart.
            let sent = try await Self.mails(ctx, to: "dr.smith@example.org")
            #expect(sent.count == 3)
            #expect(sent.allSatisfy { $0.category == "password_reset" && $0.status == .kept })
            #expect(try await QueuedMail.query(on: ctx.app.db).count() == 3)
            let requested = try await Self.events(ctx, .passwordResetRequested)
            #expect(requested.count == 5)
            #expect(requested.filter { $0.details.contains(#""matched":"false""#) }.count == 2)
            #expect(try await Self.events(ctx, .passwordResetSent).count == 3)
        }
    }

    @Test func unverifiedAndPendingAddressesGetNothing() async throws {
        try await withTestApp { ctx in
            let (_, user) = try await Self.setUp(ctx)
            user.emailVerifiedAt = nil
            try await user.save(on: ctx.app.db)
            #expect(try await Self.forgot(ctx, "dr.smith").status == .accepted)
            #expect(try await Self.forgot(ctx, "dr.smith@example.org").status == .accepted)
            #expect(try await QueuedMail.query(on: ctx.app.db).count() == 0)
            let requested = try await Self.events(ctx, .passwordResetRequested)
            #expect(requested.count == 2)
            #expect(requested[0].details.contains("no_verified_email"))
        }
    }

    @Test func theLinkExpiresAfterThirtyMinutes() async throws {
        try await withTestApp { ctx in
            try await Self.setUp(ctx)
            _ = try await Self.forgot(ctx, "dr.smith")
            let token = try #require(try await Self.token(ctx, to: "dr.smith@example.org"))
            ctx.clock.advance(29 * 60)
            #expect(try await WebClient(ctx).get("/login/reset/\(token)").status == .ok)
            ctx.clock.advance(60 + 1)
            let page = try await WebClient(ctx).get("/login/reset/\(token)")
            #expect(page.status == .gone)
            #expect(page.text.contains("This link no longer works"))
            let late = try await Self.reset(ctx, token: token)
            #expect(late.status == .gone)
            #expect(try await APIClient.login(ctx).2 == .ok, "the old password still works")
        }
    }

    @Test func aLinkWorksOnce() async throws {
        try await withTestApp { ctx in
            try await Self.setUp(ctx)
            _ = try await Self.forgot(ctx, "dr.smith")
            let token = try #require(try await Self.token(ctx, to: "dr.smith@example.org"))
            #expect(try await Self.reset(ctx, token: token, password: "a long first new password").status == .noContent)
            let again = try await Self.reset(ctx, token: token, password: "another long new password")
            #expect(again.status == .gone)
            #expect(again.reason.contains("expired or was already used"))
            #expect(try await APIClient.login(ctx, password: "a long first new password").2 == .ok)
            #expect(try await APIClient.login(ctx, password: "another long new password").2 == .unauthorized)
            let row = try #require(try await PasswordReset.query(on: ctx.app.db).first())
            #expect(row.usedAt != nil)
            #expect(row.tokenHash == Digest.sha256Hex(token), "only the hash is stored")
        }
    }

    @Test func aNewerLinkVoidsTheOlderOne() async throws {
        try await withTestApp { ctx in
            try await Self.setUp(ctx)
            _ = try await Self.forgot(ctx, "dr.smith")
            let first = try #require(try await Self.token(ctx, to: "dr.smith@example.org"))
            ctx.clock.advance(5)
            _ = try await Self.forgot(ctx, "dr.smith")
            let second = try #require(try await Self.token(ctx, to: "dr.smith@example.org"))
            #expect(first != second)
            #expect(try await Self.reset(ctx, token: first).status == .gone)
            #expect(try await Self.reset(ctx, token: second).status == .noContent)
        }
    }

    @Test func signingInVoidsTheLink() async throws {
        try await withTestApp { ctx in
            try await Self.setUp(ctx)
            _ = try await Self.forgot(ctx, "dr.smith")
            let token = try #require(try await Self.token(ctx, to: "dr.smith@example.org"))
            #expect(try await APIClient.login(ctx).2 == .ok)
            #expect(try await Self.reset(ctx, token: token).status == .gone)
            #expect(try await PasswordReset.query(on: ctx.app.db).first()?.voidedAt != nil)
        }
    }

    @Test func aParallelBurstForOneAccountQueuesAtMostTheLimit() async throws {
        try await withTestApp { ctx in
            try await Self.setUp(ctx)
            let statuses = try await withThrowingTaskGroup(of: HTTPStatus.self) { group in
                for _ in 0..<20 { group.addTask { try await Self.forgot(ctx, "dr.smith").status } }
                var all: [HTTPStatus] = []
                for try await status in group { all.append(status) }
                return all
            }
            #expect(statuses.allSatisfy { $0 == .accepted }, "throttled requests get the same answer: \(statuses)")
            let queued = try await Self.mails(ctx, to: "dr.smith@example.org").count
            #expect(queued == TwofoldPolicy.standard.passwordReset.perAccount.limit, "queued \(queued)")
            #expect(try await Self.events(ctx, .passwordResetThrottled).count == 20 - queued)
            // Only the newest of them still works.
            #expect(try await PasswordReset.query(on: ctx.app.db).filter(\.$voidedAt == nil).count() == 1)
            // The window ends after an hour.
            ctx.clock.advance(60 * 60 + 1)
            _ = try await Self.forgot(ctx, "dr.smith")
            #expect(try await Self.mails(ctx, to: "dr.smith@example.org").count == queued + 1)
        }
    }

    @Test func oneAddressIsLimitedAcrossAccounts() async throws {
        try await withTestApp { ctx in
            let (practice, _) = try await Self.setUp(ctx)
            for index in 0..<TwofoldPolicy.standard.passwordReset.perAddress.limit {
                _ = try await Self.forgot(ctx, "someone.\(index)")
            }
            _ = try await Fixtures.user(ctx, practice: practice, username: "nurse.jones")
            let answer = try await Self.forgot(ctx, "nurse.jones")
            #expect(answer.status == .accepted)
            #expect(try await Self.mails(ctx, to: "nurse.jones@example.org").isEmpty)
            let throttled = try await Self.events(ctx, .passwordResetThrottled)
            #expect(throttled.count == 1)
            #expect(throttled[0].details.contains(#""limit":"address""#))
        }
    }

    // MARK: the reset

    @Test func aResetEndsEverySessionAndRememberedBrowserAndStillNeedsTheSecondFactor() async throws {
        try await withTestApp { ctx in
            try await Self.setUp(ctx)
            let enrolled = try await Flows.enrollTOTP(ctx)
            // a second, remembered sign-in
            ctx.clock.advance(30)
            let half = try await Flows.halfSignedIn(ctx)
            let verified = try await half.send(
                .POST, "/api/v1/login/verify",
                json: ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now), "rememberBrowser": true])
            let rememberToken = try #require(verified.json["rememberToken"] as? String)
            #expect(try await TwofoldServer.SessionRecord.query(on: ctx.app.db).count() == 2)
            #expect(try await RememberedBrowser.query(on: ctx.app.db).count() == 1)

            _ = try await Self.forgot(ctx, "dr.smith")
            let token = try #require(try await Self.token(ctx, to: "dr.smith@example.org"))
            ctx.clock.advance(30)
            let done = try await Self.reset(ctx, token: token, code: try Fixtures.code(enrolled.secret, at: ctx.clock.now))
            #expect(done.status == .noContent, "\(done.text)")

            #expect(
                try await TwofoldServer.SessionRecord.query(on: ctx.app.db).count() == 0,
                "no session is opened by the reset, and every old one ended")
            #expect(try await RememberedBrowser.query(on: ctx.app.db).count() == 0)
            #expect(try await enrolled.client.send(.GET, "/api/v1/me").status == .unauthorized)
            #expect(try await half.send(.GET, "/api/v1/me").status == .unauthorized)

            // The old password is gone; the new one still leads to the second factor, even with the old remembered browser.
            #expect(try await APIClient.login(ctx).2 == .unauthorized)
            let (_, body, status) = try await APIClient.login(ctx, password: Self.newPassword, rememberToken: rememberToken)
            #expect(status == .ok)
            #expect(body["status"] as? String == "second_factor_required")

            // The user is notified, once, in the reset's transaction.
            let notices = try await Self.mails(ctx, to: "dr.smith@example.org").filter { $0.category == "notification.password_reset" }
            #expect(notices.count == 1)
            #expect(notices.first?.subject == "Your password was reset")

            let audit = try #require(try await Self.events(ctx, .passwordReset).first)
            #expect(audit.details.contains(#""second_factor":"totp""#))
            #expect(audit.details.contains(#""sessions_ended":"2""#))
        }
    }

    @Test func thePracticeCanRequireTheSecondFactorBeforeAReset() async throws {
        try await withTestApp { ctx in
            let (practice, _) = try await Self.setUp(ctx)
            #expect(practice.resetRequiresSecondFactor, "on by default")
            let enrolled = try await Flows.enrollTOTP(ctx)
            _ = try await Self.forgot(ctx, "dr.smith")
            let token = try #require(try await Self.token(ctx, to: "dr.smith@example.org"))

            let page = try await WebClient(ctx).get("/login/reset/\(token)")
            #expect(page.status == .ok)
            #expect(page.text.contains(#"name="code""#))
            #expect(page.text.contains("Code from your authenticator app"))

            let missing = try await Self.reset(ctx, token: token)
            #expect(missing.status == .badRequest)
            #expect(missing.reason == PasswordResetError.codeRequired.reason)
            let wrong = try await Self.reset(ctx, token: token, code: "000000")
            #expect(wrong.status == .badRequest)
            #expect(wrong.reason == PasswordResetError.wrongCode.reason)
            // the code the enrollment just used does not work again
            let replayed = try await Self.reset(ctx, token: token, code: try Fixtures.code(enrolled.secret, at: ctx.clock.now))
            #expect(replayed.status == .badRequest)
            #expect(try await APIClient.login(ctx).2 == .ok, "nothing changed")
            #expect(try await Self.events(ctx, .secondFactorFailed).count >= 1)

            // A recovery code counts as the second factor too.
            _ = try await Self.forgot(ctx, "dr.smith")
            let second = try #require(try await Self.token(ctx, to: "dr.smith@example.org"))
            let recovered = try await Self.reset(ctx, token: second, code: try #require(enrolled.recoveryCodes.first))
            #expect(recovered.status == .noContent, "\(recovered.text)")
            #expect(try await Self.events(ctx, .passwordReset).first?.details.contains(#""second_factor":"recovery_code""#) == true)
        }
    }

    @Test func withTheSettingOffNoCodeIsAsked() async throws {
        try await withTestApp { ctx in
            try await Self.setUp(ctx)
            _ = try await Fixtures.user(
                ctx, practice: try #require(try await Practice.query(on: ctx.app.db).first()), username: "office.admin", admin: true)
            let (admin, _, _) = try await APIClient.login(ctx, username: "office.admin")
            let patched = try await admin.send(
                .PATCH, "/api/v1/practice", json: ["adminPassword": Fixtures.password, "resetRequiresSecondFactor": false])
            #expect(patched.status == .ok)
            #expect(patched.json["resetRequiresSecondFactor"] as? Bool == false)
            _ = try await Flows.enrollTOTP(ctx)

            _ = try await Self.forgot(ctx, "dr.smith")
            let token = try #require(try await Self.token(ctx, to: "dr.smith@example.org"))
            let page = try await WebClient(ctx).get("/login/reset/\(token)")
            #expect(!page.text.contains(#"name="code""#))
            #expect(try await Self.reset(ctx, token: token).status == .noContent)
            #expect(try await Self.events(ctx, .passwordReset).first?.details.contains(#""second_factor":"not_required""#) == true)
            // the bar is not lowered: the next sign-in still asks for the second factor
            let (_, body, _) = try await APIClient.login(ctx, password: Self.newPassword)
            #expect(body["status"] as? String == "second_factor_required")
        }
    }

    @Test func aUserWithOnlyPushOrPasskeysIsSentToTheAdministrator() async throws {
        try await withTestApp { ctx in
            let (_, user) = try await Self.setUp(ctx)
            let factor = Factor(userID: try user.requireID(), kind: .webauthn, nickname: "Security key")
            factor.status = .active
            factor.isPrimary = true
            try await factor.create(on: ctx.app.db)
            _ = try await Self.forgot(ctx, "dr.smith")
            let token = try #require(try await Self.token(ctx, to: "dr.smith@example.org"))
            let page = try await WebClient(ctx).get("/login/reset/\(token)")
            #expect(page.text.contains("Ask your practice administrator"))
            #expect(!page.text.contains(#"name="newPassword""#))
            let refused = try await Self.reset(ctx, token: token)
            #expect(refused.status == .conflict)
            #expect(try await PasswordReset.query(on: ctx.app.db).first()?.usedAt == nil)
        }
    }

    @Test func thePasswordRulesApply() async throws {
        try await withTestApp { ctx in
            try await Self.setUp(ctx)
            _ = try await Self.forgot(ctx, "dr.smith")
            let token = try #require(try await Self.token(ctx, to: "dr.smith@example.org"))
            // dr.smith has no second factor: the password is their only one and needs 15 characters
            let short = try await Self.reset(ctx, token: token, password: "short pass")
            #expect(short.status == .badRequest)
            #expect(short.reason.contains("at least 15 characters"))
            let common = try await Self.reset(ctx, token: token, password: "passwordpassword")
            #expect(common.status == .badRequest)
            #expect(common.reason.contains("common or breached"))
            // the web form also checks the confirmation
            let web = WebClient(ctx)
            _ = try await web.get("/login/reset/\(token)")
            let differ = try await web.post(
                "/login/reset/\(token)", ["newPassword": Self.newPassword, "confirmPassword": "something else entirely"])
            #expect(differ.status == .badRequest)
            #expect(differ.text.contains("The two new passwords do not match."))
            // the link still works after refused passwords
            let done = try await web.post("/login/reset/\(token)", ["newPassword": Self.newPassword, "confirmPassword": Self.newPassword])
            #expect(done.status == .seeOther)
            #expect(done.location == "/login?notice=password-reset")
            let login = try await web.get(try #require(done.location))
            #expect(login.text.contains("Your password was reset"))
            #expect(try await APIClient.login(ctx, password: Self.newPassword).2 == .ok)
        }
    }

    @Test func theWholeFlowThroughThePages() async throws {
        try await withTestApp { ctx in
            try await Self.setUp(ctx)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let web = WebClient(ctx)
            _ = try await web.get("/login/forgot")
            #expect(try await web.post("/login/forgot", ["login": "Dr.Smith"]).status == .ok)
            let token = try #require(try await Self.token(ctx, to: "dr.smith@example.org"))
            let mail = try #require(try await Self.mails(ctx, to: "dr.smith@example.org").first)
            let body = try #require(try ctx.app.mailer.body(of: mail))
            #expect(mail.subject == "Set a new password for Riverside Family Medicine")
            #expect(body.text.contains("expires in 30 minutes"))
            #expect(body.text.contains("If this was not you"))
            #expect(body.html.contains("Riverside Family Medicine"))
            #expect(body.html.contains("<h1"))

            let page = try await web.get("/login/reset/\(token)")
            #expect(page.text.contains("Choose a new password"))
            ctx.clock.advance(30)
            let done = try await web.post(
                "/login/reset/\(token)",
                [
                    "newPassword": Self.newPassword, "confirmPassword": Self.newPassword,
                    "code": try Fixtures.code(enrolled.secret, at: ctx.clock.now),
                ])
            #expect(done.location == "/login?notice=password-reset", "\(done.status) \(done.text)")
            _ = try await web.get("/login")
            let signIn = try await web.post("/login", ["username": "dr.smith", "password": Self.newPassword])
            #expect(signIn.location == "/login/two-factor")
        }
    }

    // MARK: administrator

    @Test func anAdministratorSendsAResetLink() async throws {
        try await withTestApp { ctx in
            let (practice, user) = try await Self.setUp(ctx)
            let admin = try await Fixtures.user(ctx, practice: practice, username: "office.admin", admin: true)
            let web = try await Self.signedInWeb(ctx, username: "office.admin")
            let userPage = try await web.get("/admin/staff/\(user.id!.uuidString)")
            #expect(userPage.text.contains("Send a password reset link"))
            let confirm = try await web.get("/admin/staff/\(user.id!.uuidString)/password-reset")
            #expect(confirm.status == .ok)
            #expect(confirm.text.contains("dr.smith@example.org"))
            let wrong = try await web.post("/admin/staff/\(user.id!.uuidString)/password-reset", ["adminPassword": "not my password"])
            #expect(wrong.status == .forbidden)
            #expect(try await Self.mails(ctx, to: "dr.smith@example.org").isEmpty)
            let sent = try await web.post("/admin/staff/\(user.id!.uuidString)/password-reset", ["adminPassword": Fixtures.password])
            #expect(sent.location == "/admin/staff/\(user.id!.uuidString)?notice=password-reset-sent")
            let mail = try #require(try await Self.mails(ctx, to: "dr.smith@example.org").first)
            #expect(try ctx.app.mailer.body(of: mail)?.text.contains("Sam Smith, an administrator of Riverside Family Medicine") == true)
            let audit = try #require(try await Self.events(ctx, .passwordResetSent).first)
            #expect(audit.actorID == admin.id)
            #expect(audit.subjectID == user.id)
            #expect(audit.details.contains(#""sent_by":"office.admin""#))

            // the API does the same
            let (client, _, _) = try await APIClient.login(ctx, username: "office.admin")
            ctx.clock.advance(1)
            let api = try await client.send(
                .POST, "/api/v1/practice/users/\(user.id!.uuidString)/password-reset", json: ["adminPassword": Fixtures.password])
            #expect(api.status == .accepted)
            #expect(try await Self.mails(ctx, to: "dr.smith@example.org").count == 2)
            #expect(try await Self.events(ctx, .passwordResetSent).filter { $0.actorID == admin.id }.count == 2)
            let token = try #require(try await Self.token(ctx, to: "dr.smith@example.org"))
            #expect(try await Self.reset(ctx, token: token).status == .noContent)
            #expect(try await Self.events(ctx, .passwordReset).first?.details.contains("link_sent_by") == true)

            // not for staff members of other practices, nor for non-administrators
            let otherPractice = try await Fixtures.practice(ctx, name: "Hillside Clinic")
            let outsider = try await Fixtures.user(ctx, practice: otherPractice, username: "dr.other")
            #expect(
                try await client.send(
                    .POST, "/api/v1/practice/users/\(outsider.id!.uuidString)/password-reset", json: ["adminPassword": Fixtures.password]
                ).status == .notFound)
            let (plain, _, _) = try await APIClient.login(ctx, username: "dr.other")
            #expect(
                try await plain.send(
                    .POST, "/api/v1/practice/users/\(user.id!.uuidString)/password-reset", json: ["adminPassword": Fixtures.password]
                ).status == .forbidden)
        }
    }

    // MARK: API

    @Test func theAPIForIntegrators() async throws {
        try await withTestApp { ctx in
            try await Self.setUp(ctx)
            let empty = try await APIClient(ctx).send(.POST, "/api/v1/login/forgot", json: ["login": "  "])
            #expect(empty.status == .badRequest)
            let accepted = try await Self.forgot(ctx, "dr.smith")
            #expect(accepted.status == .accepted)
            #expect(accepted.json["status"] as? String == "accepted")
            let token = try #require(try await Self.token(ctx, to: "dr.smith@example.org"))
            #expect(try await Self.reset(ctx, token: "not-a-token").status == .gone)
            let weak = try await Self.reset(ctx, token: token, password: "short")
            #expect(weak.status == .badRequest)
            #expect(weak.json["error"] as? Bool == true)
            #expect(try await Self.reset(ctx, token: token).status == .noContent)
            #expect(try await Self.reset(ctx, token: token).status == .gone)
        }
    }

    // MARK: email verification

    @Test func aChangedAddressIsUsedOnlyOnceConfirmed() async throws {
        try await withTestApp { ctx in
            let (_, user) = try await Self.setUp(ctx)
            #expect(user.emailVerifiedAt != nil, "addresses entered by an administrator count as verified")
            let web = try await Self.signedInWeb(ctx)
            _ = try await web.get("/account/profile")
            let saved = try await web.post(
                "/account/profile", ["email": "sam.new@example.org", "cellPhone": "+15551234567", "password": Fixtures.password])
            #expect(saved.location == "/account/security?notice=email-confirmation-sent")
            var stored = try #require(try await User.find(user.id, on: ctx.app.db))
            #expect(stored.email == "dr.smith@example.org")
            #expect(stored.pendingEmail == "sam.new@example.org")
            let profile = try await web.get("/account/profile")
            #expect(profile.text.contains("sam.new@example.org is waiting for confirmation"))
            let confirmMail = try #require(try await Self.mails(ctx, to: "sam.new@example.org").first)
            #expect(confirmMail.category == "email_confirmation")
            #expect(try ctx.app.mailer.body(of: confirmMail)?.text.contains("expires in 24 hours") == true)
            let confirmToken = try #require(
                try await Self.token(ctx, to: "sam.new@example.org", category: "email_confirmation", path: "/account/email/confirm/"))

            // Until it is confirmed, reset links go to the old address; the new one matches no account.
            _ = try await Self.forgot(ctx, "dr.smith")
            _ = try await Self.forgot(ctx, "sam.new@example.org")
            #expect(try await Self.mails(ctx, to: "dr.smith@example.org").filter { $0.category == "password_reset" }.count == 1)
            #expect(try await Self.mails(ctx, to: "sam.new@example.org").filter { $0.category == "password_reset" }.isEmpty)

            // Opening the link only asks; confirming swaps the address in.
            let other = WebClient(ctx)
            let question = try await other.get("/account/email/confirm/\(confirmToken)")
            #expect(question.status == .ok)
            #expect(question.text.contains("sam.new@example.org"))
            #expect(try await User.find(user.id, on: ctx.app.db)?.pendingEmail == "sam.new@example.org")
            ctx.clock.advance(60)
            let confirmed = try await other.post("/account/email/confirm/\(confirmToken)")
            #expect(confirmed.status == .ok)
            #expect(confirmed.text.contains("is now the email address of your account"))
            stored = try #require(try await User.find(user.id, on: ctx.app.db))
            #expect(stored.email == "sam.new@example.org")
            #expect(stored.pendingEmail == nil)
            #expect(stored.emailVerifiedAt == ctx.clock.now)
            #expect(try await Self.events(ctx, .emailConfirmed).count == 1)
            #expect(try await other.post("/account/email/confirm/\(confirmToken)").status == .gone, "single use")

            // Now resets go to the new address.
            ctx.clock.advance(1)
            _ = try await Self.forgot(ctx, "sam.new@example.org")
            #expect(try await Self.mails(ctx, to: "sam.new@example.org").filter { $0.category == "password_reset" }.count == 1)
        }
    }

    @Test func confirmationLinksExpireAfterADayAndAnAdministratorsChangeNeedsOneToo() async throws {
        try await withTestApp { ctx in
            let (practice, user) = try await Self.setUp(ctx)
            _ = try await Fixtures.user(ctx, practice: practice, username: "office.admin", admin: true)
            let web = try await Self.signedInWeb(ctx, username: "office.admin")
            _ = try await web.get("/admin/staff/\(user.id!.uuidString)/edit")
            let saved = try await web.post(
                "/admin/staff/\(user.id!.uuidString)/edit",
                [
                    "firstName": "Sam", "lastName": "Smith", "email": "sam.typo@example.org", "cellPhone": "+15551234567",
                    "role": "provider", "adminPassword": Fixtures.password,
                ])
            #expect(saved.status == .seeOther, "\(saved.text)")
            #expect(try await User.find(user.id, on: ctx.app.db)?.email == "dr.smith@example.org")
            let userPage = try await web.get("/admin/staff/\(user.id!.uuidString)")
            #expect(userPage.text.contains("changing to sam.typo@example.org: waiting for confirmation"))
            let mail = try #require(try await Self.mails(ctx, to: "sam.typo@example.org").first)
            #expect(try ctx.app.mailer.body(of: mail)?.text.contains("an administrator of Riverside Family Medicine") == true)
            let token = try #require(
                try await Self.token(ctx, to: "sam.typo@example.org", category: "email_confirmation", path: "/account/email/confirm/"))
            #expect(try await Self.events(ctx, .emailChangeRequested).first?.actorID != user.id)

            ctx.clock.advance(24 * 60 * 60 + 1)
            let late = WebClient(ctx)
            _ = try await late.get("/login")
            #expect(try await late.get("/account/email/confirm/\(token)").status == .gone)
            #expect(try await late.post("/account/email/confirm/\(token)").status == .gone)
            #expect(try await User.find(user.id, on: ctx.app.db)?.email == "dr.smith@example.org")
        }
    }
}
