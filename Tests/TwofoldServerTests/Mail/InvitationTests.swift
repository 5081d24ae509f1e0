import ConsoleKit
import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("Invitations: staff choose their own password from an emailed link")
struct InvitationTests {
    static let newPassword = "meadow lantern copper"

    /// An administrator signed in on the pages (the practice does not require 2FA yet).
    static func adminWeb(_ ctx: TestContext, mandatory: Bool = false) async throws -> (WebClient, Practice) {
        let practice = try await Fixtures.practice(ctx)
        _ = try await Fixtures.user(ctx, practice: practice, username: "admin", admin: true)
        let web = WebClient(ctx)
        _ = try await web.get("/login")
        let signedIn = try await web.post("/login", ["username": "admin", "password": Fixtures.password])
        #expect(signedIn.location == "/")
        return (web, practice)
    }

    static func adminAPI(_ ctx: TestContext) async throws -> (APIClient, Practice) {
        let practice = try await Fixtures.practice(ctx)
        _ = try await Fixtures.user(ctx, practice: practice, username: "admin", admin: true)
        let (client, body, status) = try await APIClient.login(ctx, username: "admin")
        #expect(status == .ok && body["status"] as? String == "authenticated")
        return (client, practice)
    }

    static let staffForm: [String: String] = [
        "username": "nina.new", "firstName": "Nina", "lastName": "Newton", "email": "Nina@Example.org", "cellPhone": "+1 555 010 0007",
        "role": "staff", "delivery": "invite", "adminPassword": Fixtures.password,
    ]

    static let staffJSON: [String: any Sendable] = [
        "username": "nina.new", "firstName": "Nina", "lastName": "Newton", "email": "nina@example.org", "role": "staff",
        "invite": true, "adminPassword": Fixtures.password,
    ]

    /// Every invitation message to `address`, oldest first, with its decrypted bodies.
    static func invitations(_ ctx: TestContext, to address: String = "nina@example.org") async throws -> [(
        mail: QueuedMail, body: MailBody
    )] {
        let mails = try await QueuedMail.query(on: ctx.app.db).filter(\.$recipient == address).filter(\.$category == "invitation")
            .sort(\.$createdAt).all()
        return try mails.map { ($0, try #require(try ctx.app.mailer.body(of: $0))) }
    }

    /// The path (`/invite/<token>`) of a message's link; the text and HTML bodies must carry the same one.
    static func path(in body: MailBody) throws -> String {
        let pattern = #"https?://[^/\s"]+(/invite/[A-Za-z0-9_-]{43})"#
        let text = try #require(body.text.firstMatch(of: try Regex(pattern)))
        let html = try #require(body.html.firstMatch(of: try Regex(pattern)))
        let textPath = try #require(text.output[1].substring).description
        #expect(html.output[1].substring?.description == textPath)
        return textPath
    }

    static func latestPath(_ ctx: TestContext, to address: String = "nina@example.org") async throws -> String {
        try path(in: try #require(try await invitations(ctx, to: address).last).body)
    }

    /// Opens the link in a fresh browser and chooses a password.
    static func accept(_ ctx: TestContext, path: String, password: String = newPassword) async throws -> (WebClient, TestingHTTPResponse) {
        let browser = WebClient(ctx)
        let page = try await browser.get(path)
        #expect(page.status == .ok)
        return (browser, try await browser.post(path, ["password": password, "confirmPassword": password]))
    }

    static func events(_ ctx: TestContext, _ type: String) async throws -> [AuditEvent] {
        try await AuditEvent.query(on: ctx.app.db).filter(\.$event == type).all()
    }

    static func user(_ ctx: TestContext, _ username: String = "nina.new") async throws -> User {
        try #require(try await User.query(on: ctx.app.db).filter(\.$usernameKey == username).first())
    }

    // MARK: the page

    @Test func anAdministratorInvitesOnThePageAndTheStaffMemberChoosesAPassword() async throws {
        try await withTestApp { ctx in
            let (web, _) = try await Self.adminWeb(ctx)
            let form = try await web.get("/admin/staff/new")
            #expect(form.text.contains("Send an invitation by email"))
            #expect(form.text.contains("Set a temporary password"))
            #expect(form.text.contains(#"value="invite" id="delivery-invite" checked"#))

            let created = try await web.post("/admin/staff", Self.staffForm)
            #expect(created.location == "/admin/staff?notice=invitation-sent", "\(created.status) \(created.text)")
            let nina = try await Self.user(ctx)
            #expect(nina.passwordHash == InvitationService.unusablePasswordHash)
            #expect(PasswordRules.bcryptCost(of: nina.passwordHash) == nil)

            // The staff list shows Invited, with the expiry, until she accepts.
            let list = try await web.get(created.location!)
            #expect(list.text.contains("an invitation was emailed"))
            let expires = InvitationService.displayDate(ctx.clock.now.addingTimeInterval(7 * 86_400))
            #expect(list.text.contains(#"<span class="badge">Invited</span> <span class="muted">expires \#(expires)</span>"#))

            // One message, to her address, naming the practice and the administrator, with a link that works.
            let messages = try await Self.invitations(ctx)
            #expect(messages.count == 1)
            let message = try #require(messages.first)
            #expect(message.mail.subject.contains("Riverside Family Medicine"))
            #expect(message.mail.userID == nina.id)
            #expect(message.mail.status == .kept)
            #expect(message.body.text.contains("Sam Smith (Riverside Family Medicine) invited you"))
            #expect(message.body.text.contains("Your login: nina.new"))
            #expect(message.body.text.contains("expires in 7 days"))
            #expect(message.body.text.contains("If you did not expect this invitation"))
            #expect(message.body.html.contains("Choose your password"))
            #expect(message.body.html.contains("Riverside Family Medicine · Twofold"))
            let path = try Self.path(in: message.body)
            let token = String(path.dropFirst("/invite/".count))
            let stored = try #require(try await Invitation.query(on: ctx.app.db).filter(\.$userID == nina.id!).first())
            #expect(stored.tokenHash == Digest.sha256Hex(token))
            #expect(try Base64URL.decode(token).count == 32)
            #expect(stored.createdBy != nil && stored.sentCount == 1)
            #expect(stored.expiresAt == ctx.clock.now.addingTimeInterval(7 * 86_400))
            let sent = try await Self.events(ctx, "invitation.sent")
            #expect(
                sent.count == 1 && sent.first?.subjectID == nina.id && sent.first?.details.lowercased().contains("nina@example.org") == true
            )

            // Before accepting she cannot sign in, whatever she types.
            #expect(
                try await APIClient.login(ctx, username: "nina.new", password: InvitationService.unusablePasswordHash).2 == .unauthorized)
            #expect(try await APIClient.login(ctx, username: "nina.new", password: Self.newPassword).2 == .unauthorized)

            // The page names the practice and the person; the password follows the single-factor rules (15 characters).
            let browser = WebClient(ctx)
            let page = try await browser.get(path)
            #expect(page.status == .ok)
            #expect(page.text.contains("Welcome to Riverside Family Medicine"))
            #expect(page.text.contains("Nina Newton"))
            #expect(page.text.contains(#"<dd id="invitation-username">nina.new</dd>"#))
            #expect(page.text.contains("at least 15 characters"))
            #expect(page.headers.first(name: .cacheControl) == "no-store")
            let short = try await browser.post(path, ["password": "short pw 12", "confirmPassword": "short pw 12"])
            #expect(short.status == .badRequest)
            #expect(short.text.contains("at least 15 characters"))
            let differ = try await browser.post(path, ["password": Self.newPassword, "confirmPassword": Self.newPassword + "x"])
            #expect(differ.status == .badRequest)
            #expect(differ.text.contains("do not match"))
            let withoutCSRF = try await browser.post(path, ["password": Self.newPassword, "confirmPassword": Self.newPassword], csrf: "")
            #expect(withoutCSRF.status == .forbidden)
            #expect(try await Self.user(ctx).passwordHash == InvitationService.unusablePasswordHash)

            let accepted = try await browser.post(path, ["password": Self.newPassword, "confirmPassword": Self.newPassword])
            #expect(accepted.location == "/?notice=invitation-accepted", "\(accepted.status) \(accepted.text)")
            let home = try await browser.get(accepted.location!)
            #expect(home.status == .ok)
            #expect(home.text.contains("Welcome! Your password is set and you are signed in."))
            #expect(home.text.contains("Welcome, Nina"))
            let session = try #require(try await SessionRecord.query(on: ctx.app.db).filter(\.$user.$id == nina.id!).first())
            #expect(session.stage == .signedIn)
            let acceptedEvents = try await Self.events(ctx, "invitation.accepted")
            #expect(acceptedEvents.count == 1 && acceptedEvents.first?.actorID == nina.id)
            #expect(try await Self.events(ctx, "sign_in.succeeded").contains { $0.actorID == nina.id && $0.details.contains("invitation") })
            let after = try await Self.user(ctx)
            #expect(after.passwordMeetsSingleFactorMinimum && !after.mustChangePassword)

            // Single use: the link is dead, with a page that says what to do.
            for response in [
                try await WebClient(ctx).get(path),
                try await browser.post(path, ["password": Self.newPassword, "confirmPassword": Self.newPassword]),
            ] {
                #expect(response.status == .gone)
                #expect(response.text.contains("This invitation link no longer works"))
                #expect(response.text.contains("Ask your practice administrator to send you a new invitation"))
            }
            #expect(try await Self.events(ctx, "invitation.accepted").count == 1)

            // She signs in with her own password from now on, and the list no longer says Invited.
            let (_, body, status) = try await APIClient.login(ctx, username: "nina.new", password: Self.newPassword)
            #expect(status == .ok && body["status"] as? String == "authenticated")
            #expect(!(try await web.get("/admin/staff")).text.contains(">Invited<"))
        }
    }

    @Test func aTemporaryPasswordIsStillAChoice() async throws {
        try await withTestApp { ctx in
            let (web, _) = try await Self.adminWeb(ctx)
            _ = try await web.get("/admin/staff/new")
            var fields = Self.staffForm
            fields["delivery"] = "password"
            fields["temporaryPassword"] = "temporary pass 12"
            let created = try await web.post("/admin/staff", fields)
            #expect(created.location?.hasPrefix("/admin/staff?notice=staff-created") == true)
            #expect(try await Self.invitations(ctx).isEmpty)
            #expect(try await Invitation.query(on: ctx.app.db).count() == 0)
            #expect(try await APIClient.login(ctx, username: "nina.new", password: "temporary pass 12").2 == .ok)

            // Choosing the temporary password without typing one is refused and keeps the choice.
            _ = try await web.get("/admin/staff/new")
            fields["username"] = "other.one"
            fields["temporaryPassword"] = ""
            let refused = try await web.post("/admin/staff", fields)
            #expect(refused.status == .badRequest)
            #expect(refused.text.contains(#"value="password" id="delivery-password" checked"#))
            #expect(try await User.query(on: ctx.app.db).filter(\.$usernameKey == "other.one").first() == nil)
        }
    }

    @Test func acceptingLeadsToEnrollmentWhereTwoFactorIsRequired() async throws {
        try await withTestApp { ctx in
            let (web, practice) = try await Self.adminWeb(ctx)
            _ = try await web.get("/admin/staff/new")
            #expect(try await web.post("/admin/staff", Self.staffForm).location == "/admin/staff?notice=invitation-sent")
            // The practice requires 2FA from now on: the password may be 8 characters, and she must enroll right away.
            practice.mandatoryTwoFactor = true
            try await practice.save(on: ctx.app.db)

            let path = try await Self.latestPath(ctx)
            let browser = WebClient(ctx)
            let page = try await browser.get(path)
            #expect(page.text.contains("at least 8 characters"))
            #expect(page.text.contains("requires two-factor authentication"))
            let accepted = try await browser.post(path, ["password": "copper kettle", "confirmPassword": "copper kettle"])
            #expect(accepted.location == "/account/security/setup?notice=invitation-accepted-enroll", "\(accepted.status) \(accepted.text)")
            #expect(try await Self.user(ctx).passwordMeetsSingleFactorMinimum == false)

            // Nothing else is reachable until she has enrolled.
            #expect(try await browser.get("/").location == "/account/security/setup")
            #expect(try await browser.get("/account/security").location == "/account/security/setup")
            let setup = try await browser.get(accepted.location!)
            #expect(setup.text.contains("Welcome! Your password is set."))
            #expect(setup.text.contains("Your practice requires two-factor authentication"))
            // The password she just chose counts as fresh: no need to type it again to start.
            let started = try await browser.post("/account/security/setup/app")
            let appLocation = try #require(started.location, "\(started.status) \(started.text)")
            let appPage = try await browser.get(appLocation)
            let nina = try await Self.user(ctx)
            let factor = try #require(try await Factor.query(on: ctx.app.db).filter(\.$user.$id == nina.id!).first())
            let secret = try TOTPVerifier(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now).secret(of: factor)
            #expect(appPage.text.contains(secret.base32Grouped))
            let codes = try await browser.post(appLocation, ["code": try Fixtures.code(secret.base32, at: ctx.clock.now)])
            #expect(codes.text.contains("I have saved these codes"))
            let saved = try await browser.post("/account/security/recovery-codes/saved", ["saved": "1"])
            #expect(saved.location == "/?notice=enabled")
            let home = try await browser.get("/")
            #expect(home.status == .ok)
            #expect(home.text.contains("Two-factor authentication is <strong>on</strong>"))
            #expect(try await Self.events(ctx, "factor.added").contains { $0.actorID == nina.id })

            // Her next sign-in asks for the password she chose, then a code.
            let (_, body, status) = try await APIClient.login(ctx, username: "nina.new", password: "copper kettle")
            #expect(status == .ok && body["status"] as? String == "second_factor_required")
        }
    }

    @Test func twoSubmissionsOfOneLinkCannotBothSucceed() async throws {
        try await withTestApp { ctx in
            let (web, _) = try await Self.adminWeb(ctx)
            _ = try await web.get("/admin/staff/new")
            _ = try await web.post("/admin/staff", Self.staffForm)
            let path = try await Self.latestPath(ctx)
            let first = WebClient(ctx), second = WebClient(ctx)
            _ = try await first.get(path)
            _ = try await second.get(path)
            async let a = first.post(path, ["password": Self.newPassword, "confirmPassword": Self.newPassword])
            async let b = second.post(path, ["password": "another long password", "confirmPassword": "another long password"])
            let statuses = [try await a.status, try await b.status].map(\.code).sorted()
            #expect(statuses == [303, 410])
            #expect(try await Self.events(ctx, "invitation.accepted").count == 1)
            let nina = try await Self.user(ctx)
            #expect(try await SessionRecord.query(on: ctx.app.db).filter(\.$user.$id == nina.id!).count() == 1)
        }
    }

    // MARK: expiry, resend and revoke

    @Test func anInvitationExpiresAfterSevenDays() async throws {
        try await withTestApp { ctx in
            let (web, _) = try await Self.adminWeb(ctx)
            _ = try await web.get("/admin/staff/new")
            _ = try await web.post("/admin/staff", Self.staffForm)
            let path = try await Self.latestPath(ctx)
            ctx.clock.advance(7 * 86_400 - 60)
            #expect(try await WebClient(ctx).get(path).status == .ok)
            ctx.clock.advance(120)
            let browser = WebClient(ctx)
            let expired = try await browser.get(path)
            #expect(expired.status == .gone)
            #expect(expired.text.contains("expired"))
            _ = try await browser.get("/login")
            #expect(try await browser.post(path, ["password": Self.newPassword, "confirmPassword": Self.newPassword]).status == .gone)
            #expect(try await Self.user(ctx).passwordHash == InvitationService.unusablePasswordHash)

            // The administrator sees it expired (the admin signs in again: their session has ended meanwhile).
            let admin = WebClient(ctx)
            _ = try await admin.get("/login")
            _ = try await admin.post("/login", ["username": "admin", "password": Fixtures.password])
            #expect(try await admin.get("/admin/staff").text.contains("Invitation expired"))
            let nina = try await Self.user(ctx)
            let userPage = try await admin.get("/admin/staff/\(nina.id!)")
            #expect(userPage.text.contains("Send a new invitation"))
            #expect(!userPage.text.contains("id=\"revoke-invitation\""))
            // and sends a new one, valid 7 days from now.
            let resent = try await admin.post("/admin/staff/\(nina.id!)/invitation/resend", ["adminPassword": Fixtures.password])
            #expect(resent.location == "/admin/staff/\(nina.id!.uuidString)?notice=invitation-resent", "\(resent.status)")
            let fresh = try await Self.latestPath(ctx)
            #expect(fresh != path)
            let stored = try #require(try await Invitation.query(on: ctx.app.db).filter(\.$userID == nina.id!).first())
            #expect(stored.expiresAt == ctx.clock.now.addingTimeInterval(7 * 86_400) && stored.sentCount == 2)
            let (_, accepted) = try await Self.accept(ctx, path: fresh)
            #expect(accepted.location == "/?notice=invitation-accepted")
        }
    }

    @Test func resendVoidsTheOldLinkAndRevokeNeedsConfirmation() async throws {
        try await withTestApp { ctx in
            let (web, _) = try await Self.adminWeb(ctx)
            _ = try await web.get("/admin/staff/new")
            _ = try await web.post("/admin/staff", Self.staffForm)
            let nina = try await Self.user(ctx)
            let first = try await Self.latestPath(ctx)
            let userPage = try await web.get("/admin/staff/\(nina.id!)")
            #expect(userPage.text.contains("Resend invitation"))
            #expect(userPage.text.contains("Revoke invitation"))
            #expect(userPage.text.contains("Invited · expires"))

            let wrong = try await web.post("/admin/staff/\(nina.id!)/invitation/resend", ["adminPassword": "not my password"])
            #expect(wrong.status == .forbidden)
            #expect(try await Self.invitations(ctx).count == 1)
            ctx.clock.advance(60)
            let resent = try await web.post("/admin/staff/\(nina.id!)/invitation/resend", ["adminPassword": Fixtures.password])
            #expect(resent.location == "/admin/staff/\(nina.id!.uuidString)?notice=invitation-resent")
            #expect(try await web.get(resent.location!).text.contains("Sent 2 times"))
            let second = try await Self.latestPath(ctx)
            #expect(second != first)
            #expect(try await WebClient(ctx).get(first).status == .gone)
            #expect(try await WebClient(ctx).get(second).status == .ok)
            #expect(try await Self.events(ctx, "invitation.resent").count == 1)

            // Revoking asks for confirmation (a page with the administrator's password), then the link is dead.
            let confirm = try await web.get("/admin/staff/\(nina.id!)/invitation/revoke")
            #expect(confirm.status == .ok)
            #expect(confirm.text.contains("Withdraw the invitation of Nina Newton"))
            #expect(try await web.post("/admin/staff/\(nina.id!)/invitation/revoke", ["adminPassword": "wrong"]).status == .forbidden)
            #expect(try await WebClient(ctx).get(second).status == .ok)
            let revoked = try await web.post("/admin/staff/\(nina.id!)/invitation/revoke", ["adminPassword": Fixtures.password])
            #expect(revoked.location == "/admin/staff/\(nina.id!.uuidString)?notice=invitation-revoked")
            #expect(try await web.get(revoked.location!).text.contains("Invitation withdrawn"))
            #expect(try await WebClient(ctx).get(second).status == .gone)
            #expect(try await Self.events(ctx, "invitation.revoked").count == 1)
            #expect(
                try await web.post("/admin/staff/\(nina.id!)/invitation/revoke", ["adminPassword": Fixtures.password]).status == .conflict)
            #expect(try await APIClient.login(ctx, username: "nina.new", password: Self.newPassword).2 == .unauthorized)
            #expect(try await Self.invitations(ctx).count == 2)
        }
    }

    // MARK: the API

    @Test func theAPIInvitesResendsAndRevokes() async throws {
        try await withTestApp { ctx in
            let (admin, _) = try await Self.adminAPI(ctx)
            var missingPassword = Self.staffJSON
            missingPassword["adminPassword"] = nil
            #expect(try await admin.send(.POST, "/api/v1/practice/users", json: missingPassword).status == .badRequest)
            missingPassword["adminPassword"] = ""
            #expect(try await admin.send(.POST, "/api/v1/practice/users", json: missingPassword).status == .unauthorized)
            var badRole = Self.staffJSON
            badRole["role"] = "janitor"
            #expect(try await admin.send(.POST, "/api/v1/practice/users", json: badRole).status == .badRequest)
            #expect(try await User.query(on: ctx.app.db).filter(\.$usernameKey == "nina.new").first() == nil)

            let created = try await admin.send(.POST, "/api/v1/practice/users", json: Self.staffJSON)
            #expect(created.status == .created, "\(created.text)")
            let nina = try await Self.user(ctx)
            #expect(created.json["userId"] as? String == nina.id!.uuidString)
            let expiresAt = try #require((created.json["invitation"] as? [String: Any])?["expiresAt"] as? String)
            #expect(try Date(expiresAt, strategy: .iso8601) == ctx.clock.now.addingTimeInterval(7 * 86_400))
            #expect(try await Self.invitations(ctx).count == 1)
            let first = try await Self.latestPath(ctx)
            // The same username again is refused, and sends nothing.
            let again = try await admin.send(.POST, "/api/v1/practice/users", json: Self.staffJSON)
            #expect(again.status == .badRequest && again.reason.contains("already taken"))
            #expect(try await Self.invitations(ctx).count == 1)

            // The list says invited; a plain listing is unchanged otherwise.
            #expect(try await APIClient.login(ctx, username: "nina.new", password: Self.newPassword).2 == .unauthorized)

            let resent = try await admin.send(
                .POST, "/api/v1/practice/users/\(nina.id!)/invitation/resend", json: ["adminPassword": Fixtures.password])
            #expect(resent.status == .ok, "\(resent.text)")
            #expect(resent.json["sentCount"] as? Int == 2)
            let second = try await Self.latestPath(ctx)
            #expect(try await WebClient(ctx).get(first).status == .gone)

            #expect(try await admin.send(.DELETE, "/api/v1/practice/users/\(nina.id!)/invitation").status == .unauthorized)
            let revoked = try await admin.send(
                .DELETE, "/api/v1/practice/users/\(nina.id!)/invitation", json: ["adminPassword": Fixtures.password])
            #expect(revoked.status == .noContent)
            #expect(try await WebClient(ctx).get(second).status == .gone)
            #expect(
                try await admin.send(.DELETE, "/api/v1/practice/users/\(nina.id!)/invitation", json: ["adminPassword": Fixtures.password])
                    .status == .conflict)

            // A new invitation after a revocation works; once accepted, there is nothing left to resend.
            #expect(
                try await admin.send(
                    .POST, "/api/v1/practice/users/\(nina.id!)/invitation/resend", json: ["adminPassword": Fixtures.password]
                ).status == .ok)
            let (_, accepted) = try await Self.accept(ctx, path: try await Self.latestPath(ctx))
            #expect(accepted.location == "/?notice=invitation-accepted")
            let late = try await admin.send(
                .POST, "/api/v1/practice/users/\(nina.id!)/invitation/resend", json: ["adminPassword": Fixtures.password])
            #expect(late.status == .conflict)
            #expect(try await Self.events(ctx, "invitation.sent").count == 1)
            #expect(try await Self.events(ctx, "invitation.resent").count == 2)
            #expect(try await Self.events(ctx, "invitation.revoked").count == 1)
            #expect(try await Self.events(ctx, "invitation.accepted").count == 1)

            // A staff member of another practice is not found.
            let other = try await Fixtures.practice(ctx, name: "Hillside Clinic")
            let stranger = try await Fixtures.user(ctx, practice: other, username: "stranger")
            #expect(
                try await admin.send(
                    .POST, "/api/v1/practice/users/\(stranger.id!)/invitation/resend", json: ["adminPassword": Fixtures.password]
                ).status == .notFound)
        }
    }

    @Test func theAPICanStillSetATemporaryPassword() async throws {
        try await withTestApp { ctx in
            let (admin, _) = try await Self.adminAPI(ctx)
            var body = Self.staffJSON
            body["invite"] = false
            body["temporaryPassword"] = "temporary pass 12"
            let created = try await admin.send(.POST, "/api/v1/practice/users", json: body)
            #expect(created.status == .created, "\(created.text)")
            #expect(created.json["invitation"] is NSNull)
            #expect(try await Self.invitations(ctx).isEmpty)
            let (_, reply, _) = try await APIClient.login(ctx, username: "nina.new", password: "temporary pass 12")
            #expect(reply["status"] as? String == "authenticated")
        }
    }

    @Test func staffWithoutManageAccountsCannotInvite() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice, username: "plain")
            let (client, _, _) = try await APIClient.login(ctx, username: "plain")
            #expect(try await client.send(.POST, "/api/v1/practice/users", json: Self.staffJSON).status == .forbidden)
            #expect(try await Self.invitations(ctx).isEmpty)
        }
    }

    // MARK: the command line

    static func run(_ ctx: TestContext, _ group: any AnyAsyncCommand, _ arguments: [String]) async throws -> String {
        let console = EPCSReportTests.CapturingConsole()
        var context = CommandContext(console: console, input: CommandInput(arguments: ["twofold"] + arguments))
        context.application = ctx.app
        try await group.run(using: &context)
        return console.text
    }

    @Test func theCommandLineInvites() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx, mandatory: true)
            let output = try await Self.run(
                ctx, UserCommands(),
                [
                    "invite", "--practice", practice.id!.uuidString, "--username", "nina.new", "--first-name", "Nina", "--last-name",
                    "Newton",
                    "--email", "nina@example.org", "--cell", "+1 555 010 0007", "--role", "provider", "--manage-accounts",
                ])
            let nina = try await Self.user(ctx)
            #expect(output.contains(nina.id!.uuidString))
            #expect(output.contains("An invitation to nina@example.org was queued"))
            #expect(nina.role == .provider && nina.has(.manageAccounts) && nina.cellPhone == "+15550100007")
            let message = try #require(try await Self.invitations(ctx).first)
            #expect(message.body.text.contains("http://localhost:8080/invite/"))
            #expect(message.body.text.contains("an administrator of Riverside Family Medicine invited you"))
            #expect(message.body.text.contains("requires two-factor authentication"))
            #expect(try await Self.events(ctx, "invitation.sent").count == 1)
            let (_, accepted) = try await Self.accept(ctx, path: try Self.path(in: message.body), password: "copper kettle")
            #expect(accepted.location == "/account/security/setup?notice=invitation-accepted-enroll")

            // Mistakes are one-line errors, and create nothing.
            await #expect(throws: CLIError.self) {
                try await Self.run(
                    ctx, UserCommands(),
                    ["invite", "--practice", practice.id!.uuidString, "--username", "x.y", "--first-name", "X", "--last-name", "Y"])
            }
            do {
                _ = try await Self.run(
                    ctx, UserCommands(),
                    [
                        "invite", "--practice", practice.id!.uuidString, "--username", "nina.new", "--first-name", "N",
                        "--last-name", "N", "--email", "n2@example.org",
                    ])
                Issue.record("a taken username must be refused")
            } catch let error as CLIError {
                #expect(error.description.contains("already taken"))
            }
            #expect(try await Self.invitations(ctx, to: "n2@example.org").isEmpty)
        }
    }

    @Test func aCSVImportWithInviteInvitesTheUsersWithoutAPassword() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            // Imported earlier without a password: not part of this import, so not invited by it.
            _ = try await Importer(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now, practiceID: practice.id!)
                .importUsers(csv: "username,first_name,last_name,email,cell,role\nearlier,Earl,Lier,earl@example.org,,staff\n")
            let hash = try ctx.app.password.hash("imported password 1")
            let csv = """
                username,first_name,last_name,email,cell,role,password_hash
                amy.ng,Amy,Ng,amy@example.org,,provider,\(hash)
                bob,Bob,Olsen,bob@example.org,,staff,
                cy,Cy,Young,cy@example.org,+1 555 010 0003,staff,
                """
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("twofold-invite-\(UUID().uuidString).csv")
            try csv.write(to: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(at: file) }
            let output = try await Self.run(ctx, ImportCommands(), ["users", "--practice", practice.id!.uuidString, file.path, "--invite"])
            #expect(output.contains("Imported 3 users"))
            #expect(output.contains("Queued 2 invitations"))
            #expect(try await Self.invitations(ctx, to: "amy@example.org").isEmpty)
            #expect(try await Self.invitations(ctx, to: "earl@example.org").isEmpty)
            #expect(try await Self.invitations(ctx, to: "cy@example.org").count == 1)
            let bobMail = try await Self.invitations(ctx, to: "bob@example.org")
            #expect(bobMail.count == 1)
            #expect(try await Self.events(ctx, "invitation.sent").count == 2)

            let (browser, accepted) = try await Self.accept(ctx, path: try Self.path(in: try #require(bobMail.first).body))
            #expect(accepted.location == "/?notice=invitation-accepted")
            #expect(try await browser.get("/").status == .ok)
            let bob = try await Self.user(ctx, "bob")
            #expect(!bob.mustChangePassword)
            let (_, body, status) = try await APIClient.login(ctx, username: "bob", password: Self.newPassword)
            #expect(status == .ok && body["status"] as? String == "authenticated")

            // Without --invite nothing is sent; --invite is refused for factors.
            try "username,first_name,last_name,email,cell,role\ndee,Dee,Dee,dee@example.org,,staff\n".write(
                to: file, atomically: true, encoding: .utf8)
            _ = try await Self.run(ctx, ImportCommands(), ["users", "--practice", practice.id!.uuidString, file.path])
            #expect(try await Self.invitations(ctx, to: "dee@example.org").isEmpty)
            await #expect(throws: CLIError.self) {
                try await Self.run(ctx, ImportCommands(), ["factors", "--practice", practice.id!.uuidString, file.path, "--invite"])
            }
        }
    }
}
