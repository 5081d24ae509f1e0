import Fluent
import Foundation
import SQLKit
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// Security notifications: every security change of an account is emailed to its owner, queued in the change's own
/// transaction by the audit log; lockouts and administrators' actions also go to the practice's copy address.
@Suite("Security notifications")
struct SecurityNotificationTests {
    static let publicURL = "https://2fa.example-clinic.org"
    static let chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36"
    static var browser: HTTPHeaders { ["User-Agent": chrome] }

    struct Mail {
        var row: QueuedMail
        var body: MailBody
        var text: String { body.text }
    }

    /// Every queued security notification (and copy), oldest first, with its opened bodies.
    static func notifications(_ ctx: TestContext, to address: String? = nil) async throws -> [Mail] {
        let mailer = ctx.app.mailer
        return try await QueuedMail.query(on: ctx.app.db).sort(\.$createdAt).all()
            .filter { $0.category.hasPrefix("notification") && (address == nil || $0.recipient == address) }
            .map { Mail(row: $0, body: try #require(try mailer.body(of: $0))) }
    }

    static func lastEvent(_ ctx: TestContext, _ type: AuditEventType) async throws -> AuditEvent {
        try #require(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == type.rawValue).sort(\.$seq, .descending).first())
    }

    /// The message states what happened and when, from which address and browser (those of the audit entry), what
    /// to do if it was not the user, and links only to the public address's security page.
    static func expectDescribes(_ mail: Mail, _ event: AuditEvent, headline: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let text = mail.text, html = mail.body.html
        #expect(mail.row.subject == headline, sourceLocation: sourceLocation)
        #expect(text.contains("What happened: \(headline)"), "\(text)", sourceLocation: sourceLocation)
        #expect(
            text.contains("When: \(SecurityNotifier.displayDate(event.occurredAt)) (\(event.occurredAt.ISO8601Format()))"), "\(text)",
            sourceLocation: sourceLocation)
        #expect(text.contains("From address: \(event.ip)"), "\(text)", sourceLocation: sourceLocation)
        #expect(text.contains("Browser: \(UserAgentSummary.describe(event.userAgent))"), "\(text)", sourceLocation: sourceLocation)
        #expect(text.contains("If this was not you:"), sourceLocation: sourceLocation)
        #expect(text.contains("Review your security settings: \(publicURL)/account/security"), sourceLocation: sourceLocation)
        #expect(html.contains("href=\"\(publicURL)/account/security\""), sourceLocation: sourceLocation)
        #expect(html.contains(">Review your security settings</a>"), sourceLocation: sourceLocation)
        #expect(html.contains("Riverside Family Medicine"), sourceLocation: sourceLocation)
        // Links go to the public address only.
        let links = html.components(separatedBy: "href=\"").dropFirst().map { $0.prefix { $0 != "\"" } }
        #expect(!links.isEmpty && links.allSatisfy { $0.hasPrefix(publicURL + "/") }, "\(links)", sourceLocation: sourceLocation)
        #expect(mail.row.status == .kept, sourceLocation: sourceLocation)
        #expect(mail.row.userID == event.subjectID, sourceLocation: sourceLocation)
    }

    static func setUp(_ ctx: TestContext) async throws -> (Practice, User) {
        ctx.app.twofold.configuration.publicURL = publicURL
        let practice = try await Fixtures.practice(ctx)
        return (practice, try await Fixtures.user(ctx, practice: practice))
    }

    /// Enrolls an authenticator app over the API with a Chrome user agent.
    static func enroll(_ ctx: TestContext, username: String = "dr.smith") async throws -> Flows.Enrolled {
        let (client, _, _) = try await APIClient.login(ctx, username: username)
        let start = try await client.send(.POST, "/api/v1/me/factors/totp", json: ["password": Fixtures.password], headers: browser)
        let secret = try #require(start.json["secret"] as? String)
        let factorID = try #require(start.json["factorId"] as? String)
        let activate = try await client.send(
            .POST, "/api/v1/me/factors/\(factorID)/activate", json: ["code": try Fixtures.code(secret, at: ctx.clock.now)], headers: browser
        )
        #expect(activate.status == .ok, "\(activate.text)")
        return Flows.Enrolled(
            client: client, secret: secret, recoveryCodes: activate.json["recoveryCodes"] as? [String] ?? [], factorID: factorID)
    }

    static func setCopyAddress(_ ctx: TestContext, _ practice: Practice, _ address: String?) async throws {
        try await ctx.app.db.sql.update(Practice.schema).set("notification_copy_address", to: address).where("id", .equal, practice.id!)
            .run()
    }

    // MARK: real flows

    @Test func enrollingAnAuthenticatorAppSendsOneMessage() async throws {
        try await withTestApp { ctx in
            let (_, user) = try await Self.setUp(ctx)
            _ = try await Self.enroll(ctx)
            let mails = try await Self.notifications(ctx)
            #expect(mails.count == 1)
            let mail = try #require(mails.first)
            #expect(mail.row.recipient == "dr.smith@example.org")
            #expect(mail.row.category == "notification.factor_added")
            #expect(mail.row.userID == user.id)
            let event = try await Self.lastEvent(ctx, .factorAdded)
            #expect(event.userAgent == Self.chrome)
            Self.expectDescribes(mail, event, headline: "A sign-in method was added to your account")
            #expect(mail.text.contains("Browser: Chrome on Windows"))
            let factor = try #require(try await Factor.query(on: ctx.app.db).first())
            #expect(mail.text.contains("Authenticator app \u{201C}\(factor.nickname)\u{201D} was added to your account."))
            #expect(mail.text.contains("someone may have your password"))
            #expect(mail.text.hasPrefix("Hello Sam,"))
        }
    }

    @Test func enrollmentMessageHoldsNoSecret() async throws {
        try await withTestApp { ctx in
            _ = try await Self.setUp(ctx)
            let enrolled = try await Self.enroll(ctx)
            let mail = try #require(try await Self.notifications(ctx).first)
            #expect(!enrolled.recoveryCodes.isEmpty)
            for secret in [enrolled.secret] + enrolled.recoveryCodes {
                #expect(!mail.text.contains(secret) && !mail.body.html.contains(secret))
            }
        }
    }

    @Test func removingAFactorAndTurningTwoFactorOffNotify() async throws {
        try await withTestApp { ctx in
            _ = try await Self.setUp(ctx)
            let enrolled = try await Self.enroll(ctx)
            // A second app, then remove it.
            ctx.clock.advance(30)
            let start = try await enrolled.client.send(
                .POST, "/api/v1/me/factors/totp", json: ["password": Fixtures.password], headers: Self.browser)
            let second = try #require(start.json["factorId"] as? String)
            let secondSecret = try #require(start.json["secret"] as? String)
            #expect(
                try await enrolled.client.send(
                    .POST, "/api/v1/me/factors/\(second)/activate", json: ["code": try Fixtures.code(secondSecret, at: ctx.clock.now)],
                    headers: Self.browser
                ).status == .ok)
            let removed = try await enrolled.client.send(
                .DELETE, "/api/v1/me/factors/\(second)", json: ["password": Fixtures.password], headers: Self.browser)
            #expect(removed.status == .noContent, "\(removed.text)")
            var mails = try await Self.notifications(ctx)
            #expect(mails.map(\.row.category) == ["notification.factor_added", "notification.factor_added", "notification.factor_removed"])
            Self.expectDescribes(
                try #require(mails.last), try await Self.lastEvent(ctx, .factorRemoved),
                headline: "A sign-in method was removed from your account")

            ctx.clock.advance(30)
            let off = try await enrolled.client.send(
                .DELETE, "/api/v1/me/two-factor",
                json: ["password": Fixtures.password, "code": try Fixtures.code(enrolled.secret, at: ctx.clock.now)], headers: Self.browser)
            #expect(off.status == .noContent, "\(off.text)")
            mails = try await Self.notifications(ctx)
            #expect(mails.count == 4)
            let offMail = try #require(mails.last)
            #expect(offMail.row.category == "notification.two_factor_disabled")
            Self.expectDescribes(
                offMail, try await Self.lastEvent(ctx, .twoFactorDisabled),
                headline: "Two-factor authentication was turned off for your account")
            #expect(offMail.text.contains("someone may have your password"))
        }
    }

    @Test func recoveryCodesRegeneratedAndUsedNotify() async throws {
        try await withTestApp { ctx in
            _ = try await Self.setUp(ctx)
            let enrolled = try await Self.enroll(ctx)
            let regenerated = try await enrolled.client.send(
                .POST, "/api/v1/me/recovery-codes", json: ["password": Fixtures.password], headers: Self.browser)
            #expect(regenerated.status == .ok)
            let codes = try #require(regenerated.json["recoveryCodes"] as? [String])
            var mails = try await Self.notifications(ctx)
            #expect(mails.map(\.row.category) == ["notification.factor_added", "notification.recovery_codes_regenerated"])
            Self.expectDescribes(
                try #require(mails.last), try await Self.lastEvent(ctx, .recoveryCodesRegenerated),
                headline: "New recovery codes were created for your account")
            #expect(codes.allSatisfy { !(mails.last?.text.contains($0) ?? true) })

            let half = try await Flows.halfSignedIn(ctx)
            let recovered = try await half.send(.POST, "/api/v1/login/recovery", json: ["code": codes[0]], headers: Self.browser)
            #expect(recovered.status == .ok, "\(recovered.text)")
            mails = try await Self.notifications(ctx)
            #expect(mails.count == 3)
            let used = try #require(mails.last)
            #expect(used.row.category == "notification.recovery_code_used")
            Self.expectDescribes(used, try await Self.lastEvent(ctx, .recoveryCodeUsed), headline: "A recovery code was used")
            #expect(used.text.contains("9 unused recovery codes are left"))
        }
    }

    @Test func changingThePasswordNotifies() async throws {
        try await withTestApp { ctx in
            _ = try await Self.setUp(ctx)
            let web = WebClient(ctx)
            _ = try await web.get("/login")
            _ = try await web.post("/login", ["username": "dr.smith", "password": Fixtures.password])
            _ = try await web.get("/account/password")
            let changed = try await web.post(
                "/account/password",
                ["currentPassword": Fixtures.password, "newPassword": "purple ocean lantern", "confirmPassword": "purple ocean lantern"])
            #expect(changed.status == .seeOther)
            let mails = try await Self.notifications(ctx)
            #expect(mails.count == 1)
            let mail = try #require(mails.first)
            #expect(mail.row.category == "notification.password_changed")
            Self.expectDescribes(mail, try await Self.lastEvent(ctx, .passwordChanged), headline: "Your password was changed")
            #expect(mail.text.contains("Browser: Chrome on Linux"))
            #expect(!mail.text.contains("purple ocean lantern") && !mail.body.html.contains("purple ocean lantern"))
        }
    }

    @Test func rememberingABrowserNotifies() async throws {
        try await withTestApp { ctx in
            _ = try await Self.setUp(ctx)
            let enrolled = try await Self.enroll(ctx)
            ctx.clock.advance(30)
            let half = try await Flows.halfSignedIn(ctx)
            let verify = try await half.send(
                .POST, "/api/v1/login/verify",
                json: ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now), "rememberBrowser": true],
                headers: Self.browser)
            #expect(verify.status == .ok)
            let token = try #require(verify.json["rememberToken"] as? String)
            let mails = try await Self.notifications(ctx)
            #expect(mails.map(\.row.category) == ["notification.factor_added", "notification.remembered_browser_created"])
            let mail = try #require(mails.last)
            Self.expectDescribes(
                mail, try await Self.lastEvent(ctx, .rememberedBrowserCreated), headline: "A browser was remembered for your account")
            #expect(mail.text.contains("A browser (Chrome on Windows) was remembered"))
            #expect(mail.text.contains("for 30 days"))
            #expect(!mail.text.contains(token))
            // Signing in with the remembered browser is no security change.
            let (_, body, _) = try await APIClient.login(ctx, rememberToken: token)
            #expect(body["status"] as? String == "authenticated")
            #expect(try await Self.notifications(ctx).count == 2)
        }
    }

    @Test func reachingTheLockoutNotifiesTheUserAndTheCopyAddress() async throws {
        try await withTestApp { ctx in
            let (practice, _) = try await Self.setUp(ctx)
            try await Self.setCopyAddress(ctx, practice, "security@riverside.example")
            _ = try await Self.enroll(ctx)
            var client = try await Flows.halfSignedIn(ctx)
            var attempts = 0
            while try await AuditEvent.query(on: ctx.app.db).filter(\.$event == AuditEventType.secondFactorLocked.rawValue).count() == 0,
                attempts < 40
            {
                ctx.clock.advance(61)
                let response = try await client.send(.POST, "/api/v1/login/verify", json: ["code": "000000"], headers: Self.browser)
                if response.reason.contains("sign in again") { client = try await Flows.halfSignedIn(ctx) }
                attempts += 1
            }
            let event = try await Self.lastEvent(ctx, .secondFactorLocked)
            let toUser = try await Self.notifications(ctx, to: "dr.smith@example.org").filter {
                $0.row.category == "notification.second_factor_locked"
            }
            #expect(toUser.count == 1)
            let mail = try #require(toUser.first)
            Self.expectDescribes(mail, event, headline: "Your account is locked after wrong codes")
            #expect(mail.text.contains("wrong codes in a row were entered for your account"))
            #expect(mail.text.contains("locked for 15 minutes"))
            let copies = try await Self.notifications(ctx, to: "security@riverside.example")
            #expect(copies.count == 1)
            let copy = try #require(copies.first)
            #expect(copy.row.category == "notification_copy.second_factor_locked")
            #expect(copy.row.subject == "Copy: Your account is locked after wrong codes (Sam Smith)")
            #expect(copy.text.contains("The message below went to Sam Smith (dr.smith)."))
            #expect(copy.text.contains("From address: \(event.ip)"))
            // The enrollment (the user's own action) went only to the user.
            #expect(try await Self.notifications(ctx).count == 3)
        }
    }

    @Test func administratorTurningTwoFactorOffNotifiesTheUserAndTheCopyAddress() async throws {
        try await withTestApp { ctx in
            let (practice, _) = try await Self.setUp(ctx)
            let admin = try await Fixtures.user(ctx, practice: practice, username: "admin", admin: true)
            let staff = try await Fixtures.user(ctx, practice: practice, username: "lost.phone", role: .staff)
            try await Self.setCopyAddress(ctx, practice, "Security@Riverside.example")
            let adminEnrolled = try await Self.enroll(ctx, username: "admin")
            _ = try await Self.enroll(ctx, username: "lost.phone")
            ctx.clock.advance(30)
            let adminClient = try await Flows.halfSignedIn(ctx, username: "admin")
            #expect(
                try await adminClient.send(
                    .POST, "/api/v1/login/verify", json: ["code": try Fixtures.code(adminEnrolled.secret, at: ctx.clock.now)]
                ).status == .ok)
            let before = try await Self.notifications(ctx).count
            #expect(before == 2)

            let disabled = try await adminClient.send(
                .POST, "/api/v1/practice/users/\(staff.id!)/two-factor/disable", json: ["adminPassword": Fixtures.password],
                headers: Self.browser)
            #expect(disabled.status == .noContent)
            let mails = try await Self.notifications(ctx).dropFirst(before)
            #expect(mails.count == 2)
            let event = try await Self.lastEvent(ctx, .adminTwoFactorDisabled)
            #expect(event.actorID == admin.id && event.subjectID == staff.id)
            let mail = try #require(mails.first { $0.row.recipient == "lost.phone@example.org" })
            #expect(mail.row.category == "notification.admin_two_factor_disabled")
            Self.expectDescribes(mail, event, headline: "An administrator turned off two-factor authentication for your account")
            #expect(
                mail.text.contains(
                    "Sam Smith, an administrator of Riverside Family Medicine, turned off two-factor authentication for your account and removed its 1 sign-in method"
                ))
            #expect(mail.text.contains("By: Sam Smith, an administrator of Riverside Family Medicine"))
            #expect(mail.text.contains("someone may have your password"))
            let copy = try #require(mails.first { $0.row.recipient == "security@riverside.example" })
            #expect(copy.row.category == "notification_copy.admin_two_factor_disabled")
            #expect(copy.text.contains("The message below went to Sam Smith (lost.phone)."))

            // Requiring 2FA again is an administrator's action too.
            let required = try await adminClient.send(
                .POST, "/api/v1/practice/users/\(staff.id!)/two-factor/setup", json: ["adminPassword": Fixtures.password],
                headers: Self.browser)
            #expect(required.status == .noContent)
            let after = try await Self.notifications(ctx).dropFirst(before + 2)
            #expect(
                after.map(\.row.category).sorted() == [
                    "notification.admin_two_factor_required", "notification_copy.admin_two_factor_required",
                ])
            Self.expectDescribes(
                try #require(after.first { $0.row.recipient == "lost.phone@example.org" }),
                try await Self.lastEvent(ctx, .adminTwoFactorRequired),
                headline: "An administrator now requires two-factor authentication for your account")
        }
    }

    // MARK: every event type

    /// Each notifying event queues exactly one message to the user (and nothing else without a copy address).
    @Test func everyNotifyingEventQueuesOneMessage() async throws {
        try await withTestApp { ctx in
            let (practice, user) = try await Self.setUp(ctx)
            let admin = try await Fixtures.user(ctx, practice: practice, username: "admin", admin: true)
            let cases: [(AuditEventType, Bool, [String: String], String)] = [
                (.factorAdded, false, ["kind": "push", "nickname": "Pixel 9"], "A sign-in method was added to your account"),
                (.factorAdded, false, ["kind": "webauthn", "nickname": "YubiKey"], "A sign-in method was added to your account"),
                (.factorRemoved, false, ["kind": "sms", "nickname": "Cell"], "A sign-in method was removed from your account"),
                (.passkeyRemoved, false, ["kind": "webauthn", "nickname": "YubiKey"], "A sign-in method was removed from your account"),
                (.twoFactorDisabled, false, [:], "Two-factor authentication was turned off for your account"),
                (
                    .adminTwoFactorDisabled, true, ["factors_removed": "2"],
                    "An administrator turned off two-factor authentication for your account"
                ),
                (.adminTwoFactorRequired, true, [:], "An administrator now requires two-factor authentication for your account"),
                (.recoveryCodesRegenerated, false, [:], "New recovery codes were created for your account"),
                (.recoveryCodeUsed, false, ["remaining": "1"], "A recovery code was used"),
                (.passwordChanged, false, [:], "Your password was changed"),
                (.passwordReset, false, ["second_factor": "totp"], "Your password was reset"),
                (.rememberedBrowserCreated, false, ["browser": Self.chrome, "days": "7"], "A browser was remembered for your account"),
                (.secondFactorLocked, false, ["consecutive_failures": "10", "minutes": "15"], "Your account is locked after wrong codes"),
                (
                    .secondFactorLockedPermanently, false, ["consecutive_failures": "100", "minutes": "until reset"],
                    "Your account is locked until an administrator unlocks it"
                ),
                (.epcsGrantApproved, true, ["grant": "ab12"], "You may now sign prescriptions for controlled substances"),
                (
                    .epcsGrantRevoked, true, ["reason": "left the practice"],
                    "Your permission to sign prescriptions for controlled substances was revoked"
                ),
                (
                    .epcsTokenReportedLost, false, ["kind": "totp", "nickname": "Old phone", "by": "owner"],
                    "A device of yours was reported lost or stolen"
                ),
                (.userUpdated, true, ["role": "provider", "manage_accounts": "false"], "An administrator changed your account"),
                (.emailChangeRequested, false, ["to": "s…@example.net"], "A new email address was entered for your account"),
            ]
            for (index, (type, byAdmin, details, headline)) in cases.enumerated() {
                ctx.clock.advance(60)
                let entry = AuditEntry(
                    type: type, practiceID: practice.id, actorID: byAdmin ? admin.id : user.id, subjectID: user.id,
                    ip: "203.0.113.\(index + 1)", userAgent: Self.chrome, details: details)
                try await AuditLog.append(entry, on: ctx.app.db, now: ctx.clock.now)
                let mails = try await Self.notifications(ctx)
                #expect(mails.count == index + 1, "\(type.rawValue)")
                let mail = try #require(mails.last)
                #expect(mail.row.recipient == "dr.smith@example.org")
                #expect(mail.row.category == "notification." + type.rawValue.replacingOccurrences(of: ".", with: "_"))
                Self.expectDescribes(mail, try await Self.lastEvent(ctx, type), headline: headline)
                #expect(mail.text.contains("From address: 203.0.113.\(index + 1)"))
                #expect(mail.text.contains("Browser: Chrome on Windows"))
                #expect(mail.text.contains("Browser: Chrome on Windows\nBrowser details: \(Self.chrome)\n"))
                #expect(mail.text.contains("By: Sam Smith, an administrator") == byAdmin, "\(type.rawValue)")
            }
            #expect(try await QueuedMail.query(on: ctx.app.db).count() == cases.count)
        }
    }

    @Test func duplicatesOfOneChangeAreNotNotifiedTwice() async throws {
        try await withTestApp { ctx in
            let (practice, user) = try await Self.setUp(ctx)
            let admin = try await Fixtures.user(ctx, practice: practice, username: "admin", admin: true)
            let quiet: [(AuditEventType, UUID?, [String: String])] = [
                // follows the factor.added of the same passkey
                (.passkeyAdded, user.id, ["nickname": "YubiKey"]),
                // follows epcs.token_reported_lost, which said so
                (.factorRemoved, user.id, ["kind": "totp", "reason": "reported_lost"]),
                // an administrator's address change is told by user.updated
                (.emailChangeRequested, admin.id, ["to": "s…@example.net"]),
                // a user editing themself is not an administrator's action
                (.userUpdated, user.id, ["role": "provider"]),
            ]
            for (type, actor, details) in quiet {
                try await AuditLog.append(
                    AuditEntry(type: type, practiceID: practice.id, actorID: actor, subjectID: user.id, details: details), on: ctx.app.db,
                    now: ctx.clock.now)
            }
            #expect(try await QueuedMail.query(on: ctx.app.db).count() == 0)
        }
    }

    @Test func eventsThatDoNotNotifyQueueNothing() async throws {
        try await withTestApp { ctx in
            let (practice, user) = try await Self.setUp(ctx)
            try await Self.setCopyAddress(ctx, practice, "security@riverside.example")
            // A whole sign-in with the password and a code, a rename and a sign-out: no security change.
            let enrolled = try await Self.enroll(ctx)
            ctx.clock.advance(30)
            let half = try await Flows.halfSignedIn(ctx)
            #expect(
                try await half.send(.POST, "/api/v1/login/verify", json: ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now)])
                    .status == .ok)
            #expect(try await half.send(.PATCH, "/api/v1/me/factors/\(enrolled.factorID)", json: ["nickname": "Work phone"]).status == .ok)
            #expect(try await half.send(.POST, "/api/v1/logout").status.code < 300)
            let notifying = Set(AuditEventType.allCases.filter(SecurityNotifier.mayNotify))
            for type in AuditEventType.allCases where !notifying.contains(type) {
                try await AuditLog.append(
                    AuditEntry(type: type, practiceID: practice.id, actorID: user.id, subjectID: user.id), on: ctx.app.db,
                    now: ctx.clock.now)
            }
            let mails = try await QueuedMail.query(on: ctx.app.db).all()
            #expect(mails.map(\.category) == ["notification.factor_added"])
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == AuditEventType.signInSucceeded.rawValue).count() >= 1)
        }
    }

    // MARK: transactions, copies, missing addresses

    @Test func aRolledBackChangeSendsNothing() async throws {
        try await withTestApp { ctx in
            let (practice, user) = try await Self.setUp(ctx)
            struct Refused: Error {}
            await #expect(throws: Refused.self) {
                try await ctx.app.db.transaction { db in
                    try await db.sql.update(User.schema).set("email", to: "changed@example.org").where("id", .equal, user.id!).run()
                    try await AuditLog.append(
                        AuditEntry(type: .passwordChanged, practiceID: practice.id, actorID: user.id, subjectID: user.id), on: db,
                        now: ctx.clock.now)
                    // The message is written in the change's transaction, to the address it sees.
                    let inside = try await QueuedMail.query(on: db).all()
                    #expect(inside.map(\.recipient) == ["changed@example.org"])
                    throw Refused()
                }
            }
            #expect(try await QueuedMail.query(on: ctx.app.db).count() == 0)
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == AuditEventType.passwordChanged.rawValue).count() == 0)

            // The same change committed sends exactly one.
            try await ctx.app.db.transaction { db in
                try await AuditLog.append(
                    AuditEntry(type: .passwordChanged, practiceID: practice.id, actorID: user.id, subjectID: user.id), on: db,
                    now: ctx.clock.now)
            }
            #expect(try await Self.notifications(ctx).map(\.row.recipient) == ["dr.smith@example.org"])
        }
    }

    @Test func theCopyAddressGetsLockoutsAndAdministratorActionsOnly() async throws {
        try await withTestApp { ctx in
            let (practice, user) = try await Self.setUp(ctx)
            let admin = try await Fixtures.user(ctx, practice: practice, username: "admin", admin: true)
            try await Self.setCopyAddress(ctx, practice, "security@riverside.example")
            func append(_ type: AuditEventType, by actor: UUID?, _ details: [String: String] = [:]) async throws {
                try await AuditLog.append(
                    AuditEntry(
                        type: type, practiceID: practice.id, actorID: actor, subjectID: user.id, ip: "198.51.100.4",
                        userAgent: Self.chrome, details: details), on: ctx.app.db, now: ctx.clock.now)
            }
            // the user's own changes: to the user only
            for type in [
                AuditEventType.factorAdded, .factorRemoved, .twoFactorDisabled, .recoveryCodesRegenerated, .recoveryCodeUsed,
                .passwordChanged,
                .passwordReset, .rememberedBrowserCreated, .epcsTokenReportedLost,
            ] {
                try await append(type, by: user.id, ["kind": "totp"])
            }
            #expect(try await Self.notifications(ctx, to: "security@riverside.example").isEmpty)
            #expect(try await Self.notifications(ctx, to: "dr.smith@example.org").count == 9)
            // lockouts and administrators' actions: to both
            try await append(.secondFactorLocked, by: user.id, ["consecutive_failures": "10", "minutes": "15"])
            try await append(.secondFactorLockedPermanently, by: user.id, ["consecutive_failures": "100"])
            try await append(.adminTwoFactorDisabled, by: admin.id, ["factors_removed": "1"])
            try await append(.adminTwoFactorRequired, by: admin.id)
            try await append(.userUpdated, by: admin.id, ["role": "staff", "manage_accounts": "true"])
            try await append(.epcsGrantApproved, by: admin.id)
            try await append(.epcsGrantRevoked, by: admin.id, ["reason": "audit finding"])
            try await append(.epcsTokenReportedLost, by: admin.id, ["kind": "totp", "nickname": "Old phone", "by": "administrator"])
            let copies = try await Self.notifications(ctx, to: "security@riverside.example")
            #expect(
                copies.map(\.row.category) == [
                    "notification_copy.second_factor_locked", "notification_copy.second_factor_locked_permanently",
                    "notification_copy.admin_two_factor_disabled",
                    "notification_copy.admin_two_factor_required", "notification_copy.user_updated",
                    "notification_copy.epcs_grant_approved",
                    "notification_copy.epcs_grant_revoked", "notification_copy.epcs_token_reported_lost",
                ])
            for copy in copies {
                #expect(copy.row.subject.hasPrefix("Copy: ") && copy.row.subject.hasSuffix(" (Sam Smith)"))
                #expect(
                    copy.text.hasPrefix(
                        "This is a copy for Riverside Family Medicine's notification address. The message below went to Sam Smith (dr.smith)."
                    ))
                #expect(copy.text.contains("From address: 198.51.100.4"))
                #expect(copy.row.userID == user.id)
            }
            #expect(try await Self.notifications(ctx, to: "dr.smith@example.org").count == 17)
            #expect(try await Self.notifications(ctx).count == 25)
        }
    }

    @Test func usersWithoutAnEmailAddressAreSkipped() async throws {
        try await withTestApp { ctx in
            let (practice, user) = try await Self.setUp(ctx)
            try await ctx.app.db.sql.update(User.schema).set("email", to: "").where("id", .equal, user.id!).run()
            try await AuditLog.append(
                AuditEntry(type: .passwordChanged, practiceID: practice.id, actorID: user.id, subjectID: user.id), on: ctx.app.db,
                now: ctx.clock.now)
            try await AuditLog.append(
                AuditEntry(type: .secondFactorLocked, practiceID: practice.id, actorID: user.id, subjectID: user.id), on: ctx.app.db,
                now: ctx.clock.now)
            #expect(try await QueuedMail.query(on: ctx.app.db).count() == 0)
            // With a copy address, the practice still hears of the lockout (and is told the user was not).
            try await Self.setCopyAddress(ctx, practice, "security@riverside.example")
            try await AuditLog.append(
                AuditEntry(type: .secondFactorLocked, practiceID: practice.id, actorID: user.id, subjectID: user.id), on: ctx.app.db,
                now: ctx.clock.now)
            try await AuditLog.append(
                AuditEntry(type: .passwordChanged, practiceID: practice.id, actorID: user.id, subjectID: user.id), on: ctx.app.db,
                now: ctx.clock.now)
            let mails = try await Self.notifications(ctx)
            #expect(mails.map(\.row.recipient) == ["security@riverside.example"])
            #expect(mails.first?.text.contains("Sam Smith (dr.smith) has no email address, so only this copy was sent.") == true)
        }
    }

    /// The queue row is written once per event, in the event's transaction: concurrent events (as from two
    /// instances on one database) each give exactly one row, and the delivery task leases rows to send them once.
    @Test func concurrentEventsQueueExactlyOneRowEach() async throws {
        try await withTestApp { ctx in
            let (practice, user) = try await Self.setUp(ctx)
            let count = 12
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<count {
                    group.addTask {
                        try await AuditLog.append(
                            AuditEntry(
                                type: .factorAdded, practiceID: practice.id, actorID: user.id, subjectID: user.id,
                                ip: "192.0.2.\(index + 1)", details: ["kind": "totp", "nickname": "App \(index)"]),
                            on: ctx.app.db, now: ctx.clock.now)
                    }
                }
                try await group.waitForAll()
            }
            let mails = try await Self.notifications(ctx)
            #expect(mails.count == count)
            #expect(Set(mails.map(\.row.messageID)).count == count)
            for index in 0..<count {
                #expect(mails.filter { $0.text.contains("From address: 192.0.2.\(index + 1)\n") }.count == 1)
            }
            #expect(try await AuditLog.verify(on: ctx.app.db).isIntact)
        }
    }

    // MARK: the practice setting

    @Test func theCopyAddressIsAPracticeSetting() async throws {
        try await withTestApp { ctx in
            let (practice, _) = try await Self.setUp(ctx)
            _ = try await Fixtures.user(ctx, practice: practice, username: "admin", admin: true)
            let (admin, _, _) = try await APIClient.login(ctx, username: "admin")
            #expect(try await admin.send(.GET, "/api/v1/practice").json["notificationCopyAddress"] == nil)
            let refused = try await admin.send(
                .PATCH, "/api/v1/practice", json: ["adminPassword": Fixtures.password, "notificationCopyAddress": "not an address"])
            #expect(refused.status == .badRequest)
            #expect(refused.reason.contains("notification copy address"))
            let saved = try await admin.send(
                .PATCH, "/api/v1/practice",
                json: ["adminPassword": Fixtures.password, "notificationCopyAddress": " security@riverside.example "])
            #expect(saved.status == .ok, "\(saved.text)")
            #expect(saved.json["notificationCopyAddress"] as? String == "security@riverside.example")
            #expect(try await Practice.find(practice.id, on: ctx.app.db)?.notificationCopyAddress == "security@riverside.example")
            let changed = try await Self.lastEvent(ctx, .practiceSettingsChanged)
            #expect(changed.details.contains("notification_copy_address"))
            // Other changes leave it.
            #expect(
                try await admin.send(.PATCH, "/api/v1/practice", json: ["adminPassword": Fixtures.password, "rememberBrowserDays": 7]).json[
                    "notificationCopyAddress"] as? String == "security@riverside.example")

            // The settings page shows it and saves it; an empty field removes it.
            let web = WebClient(ctx)
            _ = try await web.get("/login")
            _ = try await web.post("/login", ["username": "admin", "password": Fixtures.password])
            let page = try await web.get("/admin/practice")
            #expect(page.status == .ok)
            #expect(page.text.contains(#"name="notificationCopyAddress" type="email" value="security@riverside.example""#))
            let current = try #require(try await Practice.find(practice.id, on: ctx.app.db))
            var form = [
                "name": current.name, "rememberBrowserDays": "7", "inactivityMinutes": String(current.inactivityMinutes), "otpDigits": "6",
                "allowTOTP": "1", "allowSMS": "1", "allowPush": "1", "allowPasskeys": "1", "refuseClonedPasskeys": "1",
                "sessionLifetimeHours": String(current.sessionLifetimeHours), "accessTokenMinutes": String(current.accessTokenMinutes),
                "refreshTokenDays": String(current.refreshTokenDays), "resetRequiresSecondFactor": "1",
                "notificationCopyAddress": "it@riverside.example", "adminPassword": Fixtures.password,
            ]
            var posted = try await web.post("/admin/practice", form)
            #expect(posted.status.code < 400, "\(posted.text)")
            #expect(try await Practice.find(practice.id, on: ctx.app.db)?.notificationCopyAddress == "it@riverside.example")
            form["notificationCopyAddress"] = ""
            _ = try await web.get("/admin/practice")
            posted = try await web.post("/admin/practice", form)
            #expect(posted.status.code < 400, "\(posted.text)")
            #expect(try await Practice.find(practice.id, on: ctx.app.db)?.notificationCopyAddress == nil)
        }
    }
}
