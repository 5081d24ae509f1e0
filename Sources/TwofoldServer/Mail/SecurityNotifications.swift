import Fluent
import Foundation
import SQLKit
import TwofoldCore
import Vapor

/// Security notifications: the email a user gets when their account's security changes (a sign-in method added or
/// removed, 2FA turned off, recovery codes, the password, a remembered browser, a lockout, EPCS permissions, an
/// administrator's change). Every such change is audited in the transaction that makes it, so the notifier hangs off
/// ``AuditLog/append(_:on:now:)``: the message is queued in that same transaction (a rolled-back change sends nothing,
/// a committed one always sends, and it is written once however many instances run). Users cannot turn these off.
/// Lockouts and administrators' actions also go to the practice's `notification_copy_address`, when set.
struct SecurityNotifier: Sendable {
    /// What rendering and queueing need, read when an event comes (so a changed configuration counts at once).
    struct Services {
        var views: any ViewRenderer
        var sealer: SecretSealer
        var sender: TwofoldConfiguration.EmailSenderChoice
        var emailFrom: String
        /// `TWOFOLD_PUBLIC_URL` (required with the smtp sender), else the address the server listens on.
        var linkBase: String
        var logger: Logger
    }

    let services: @Sendable () -> Services?

    /// The notifier of `app`: its view renderer, sealer and email configuration; it holds no request.
    static func live(_ app: Application) -> SecurityNotifier {
        SecurityNotifier { [weak app] in
            guard let app else { return nil }
            let configuration = app.twofold.configuration
            let server = app.http.server.configuration
            return Services(
                views: app.view, sealer: app.twofold.sealer, sender: configuration.emailSender, emailFrom: configuration.emailFrom,
                linkBase: configuration.publicURL
                    ?? "http://\(server.hostname == "0.0.0.0" ? "localhost" : server.hostname):\(server.port)",
                logger: app.logger)
        }
    }

    /// The messages of one event, rendered, to write in the event's transaction.
    struct Prepared: Sendable {
        let mailer: Mailer
        let messages: [OutgoingMail]

        func enqueue(on db: any Database) async throws {
            for message in messages { try await mailer.enqueue(message, on: db) }
        }
    }

    // MARK: which events notify

    /// What kind of advice a message ends with.
    enum Advice: String, Sendable {
        /// A new way in, or 2FA off: the password may be known to someone else.
        case password
        /// A lockout: someone else may have been trying codes with the password.
        case lockout
        /// Anything else: tell the practice administrator.
        case administrator
    }

    /// The wording of one notification.
    struct Notice: Sendable, Equatable {
        var headline: String
        var what: String
        var advice: Advice
        /// Also sent to the practice's copy address (lockouts and administrators' actions).
        var copy: Bool
    }

    /// Whether `type` can notify at all: a switch, no query, so the other events cost nothing.
    static func mayNotify(_ type: AuditEventType) -> Bool {
        switch type {
        case .factorAdded, .factorRemoved, .passkeyRemoved, .twoFactorDisabled, .adminTwoFactorDisabled, .adminTwoFactorRequired,
            .recoveryCodesRegenerated, .recoveryCodeUsed, .passwordChanged, .passwordReset, .rememberedBrowserCreated,
            .secondFactorLocked, .secondFactorLockedPermanently, .epcsGrantApproved, .epcsGrantRevoked, .epcsTokenReportedLost,
            .userUpdated, .emailChangeRequested:
            return true
        default:
            // `passkey.added` follows the `factor.added` of the same passkey, which already notified.
            return false
        }
    }

    /// The wording for `entry` (nil: this occurrence does not notify). `administrator` is the full name of the actor
    /// when someone other than the user acted; `practice` the practice's name.
    static func notice(for entry: AuditEntry, administrator: String?, practice: String) -> Notice? {
        let details = entry.details
        let by = administrator.map { "\($0), an administrator of \(practice)," }
        func method(_ details: [String: String]) -> String {
            let kind = details["kind"].flatMap(Factor.Kind.init(rawValue:))
            let name = kind?.displayName ?? "A sign-in method"
            guard let nickname = details["nickname"], !nickname.isEmpty else { return name }
            return "\(name) \u{201C}\(nickname)\u{201D}"
        }
        switch entry.type {
        case .factorAdded:
            return Notice(
                headline: "A sign-in method was added to your account",
                what:
                    "\(method(details)) was added to your account\(by.map { " by \($0)" } ?? ""). It can now confirm your sign-ins to \(practice).",
                advice: .password, copy: administrator != nil)
        case .factorRemoved, .passkeyRemoved:
            // A device reported lost removes its method too: the lost-device message already says so.
            if details["reason"] == "reported_lost" { return nil }
            var removed = details
            if entry.type == .passkeyRemoved, removed["kind"] == nil { removed["kind"] = Factor.Kind.webauthn.rawValue }
            return Notice(
                headline: "A sign-in method was removed from your account",
                what:
                    "\(method(removed)) was removed from your account\(by.map { " by \($0)" } ?? ""). It no longer works for signing in to \(practice).",
                advice: .administrator, copy: administrator != nil)
        case .twoFactorDisabled:
            return Notice(
                headline: "Two-factor authentication was turned off for your account",
                what:
                    "Two-factor authentication was turned off from your security settings: your sign-in methods and recovery codes were removed, and signing in to \(practice) now needs only your password.",
                advice: .password, copy: administrator != nil)
        case .adminTwoFactorDisabled:
            let count = details["factors_removed"].flatMap(Int.init)
            let removed = count.map { $0 == 1 ? "its 1 sign-in method" : "its \($0) sign-in methods" } ?? "its sign-in methods"
            return Notice(
                headline: "An administrator turned off two-factor authentication for your account",
                what:
                    "\(by ?? "An administrator of \(practice)") turned off two-factor authentication for your account and removed \(removed), its recovery codes and remembered browsers. You were signed out everywhere.",
                advice: .password, copy: true)
        case .adminTwoFactorRequired:
            return Notice(
                headline: "An administrator now requires two-factor authentication for your account",
                what:
                    "\(by ?? "An administrator of \(practice)") now requires two-factor authentication for your account: at your next sign-in you will set up a sign-in method before anything else.",
                advice: .administrator, copy: true)
        case .recoveryCodesRegenerated:
            return Notice(
                headline: "New recovery codes were created for your account",
                what: "A new set of recovery codes was created for your account. Your previous recovery codes no longer work.",
                advice: .password, copy: administrator != nil)
        case .recoveryCodeUsed:
            let remaining = details["remaining"].flatMap(Int.init)
            let left = remaining.map { $0 == 1 ? " 1 unused recovery code is left." : " \($0) unused recovery codes are left." } ?? ""
            let purpose = details["during"] == "password_reset" ? "to reset your password" : "to sign in to your account"
            return Notice(
                headline: "A recovery code was used",
                what: "One of your recovery codes was used \(purpose).\(left)",
                advice: .password, copy: false)
        case .passwordChanged:
            return Notice(
                headline: "Your password was changed",
                what: "The password of your account at \(practice) was changed\(by.map { " by \($0)" } ?? "").",
                advice: .administrator, copy: administrator != nil)
        case .passwordReset:
            return Notice(
                headline: "Your password was reset",
                what:
                    "The password of your account at \(practice) was reset with a link sent by email. Every session and remembered browser of your account was signed out.",
                advice: .administrator, copy: false)
        case .rememberedBrowserCreated:
            let browser = UserAgentSummary.describe(entry.userAgent.isEmpty ? details["browser"] ?? "" : entry.userAgent)
            let days = details["days"].flatMap(Int.init)
            return Notice(
                headline: "A browser was remembered for your account",
                what:
                    "A browser (\(browser)) was remembered after signing in: it will not be asked for a code\(days.map { " for \($0) \($0 == 1 ? "day" : "days")" } ?? ""). You can forget it in your security settings.",
                advice: .password, copy: false)
        case .secondFactorLocked, .secondFactorLockedPermanently:
            let failures = details["consecutive_failures"].map { "\($0) wrong codes in a row" } ?? "Too many wrong codes"
            let length =
                entry.type == .secondFactorLockedPermanently
                ? "until an administrator unlocks it"
                : details["minutes"].flatMap(Int.init).map { "for \($0) minutes" } ?? "for a while"
            return Notice(
                headline: entry.type == .secondFactorLockedPermanently
                    ? "Your account is locked until an administrator unlocks it" : "Your account is locked after wrong codes",
                what: "\(failures) were entered for your account, so confirming a sign-in with a code is locked \(length).",
                advice: .lockout, copy: true)
        case .epcsGrantApproved:
            return Notice(
                headline: "You may now sign prescriptions for controlled substances",
                what:
                    "\(by.map { "\($0) approved" } ?? "An administrator approved") your permission to sign prescriptions for controlled substances (EPCS) at \(practice). It is active now.",
                advice: .administrator, copy: true)
        case .epcsGrantRevoked:
            let reason = details["reason"].flatMap { $0.isEmpty ? nil : " Reason given: \($0)." } ?? ""
            return Notice(
                headline: "Your permission to sign prescriptions for controlled substances was revoked",
                what:
                    "Your permission to sign prescriptions for controlled substances (EPCS) at \(practice) was revoked\(by.map { " by \($0)" } ?? "").\(reason)",
                advice: .administrator, copy: administrator != nil)
        case .epcsTokenReportedLost:
            return Notice(
                headline: "A device of yours was reported lost or stolen",
                what:
                    "\(method(details)) was reported lost or stolen\(by.map { " by \($0)" } ?? ""). It was removed from your account, and every browser it helped remember was forgotten.",
                advice: .administrator, copy: administrator != nil)
        case .userUpdated:
            // The user's own edits are their profile (audited as `profile.updated`); only an administrator's notify.
            guard administrator != nil else { return nil }
            var now: [String] = []
            if let role = details["role"] { now.append("role \(role == "staff" ? "staff" : "provider")") }
            if let manage = details["manage_accounts"] { now.append("Manage Accounts permission \(manage == "true" ? "on" : "off")") }
            return Notice(
                headline: "An administrator changed your account",
                what:
                    "\(by ?? "An administrator") changed the details of your account (name, email address, cell phone, role or permissions).\(now.isEmpty ? "" : " Your account now has: \(now.joined(separator: ", ")).")",
                advice: .administrator, copy: true)
        case .emailChangeRequested:
            // An administrator's edit already notified (`user.updated`); the user's own request tells the address in use.
            guard administrator == nil else { return nil }
            return Notice(
                headline: "A new email address was entered for your account",
                what:
                    "A new email address\(details["to"].map { " (\($0))" } ?? "") was entered for your account. Email keeps coming to this address until the new one is confirmed with the link sent to it.",
                advice: .password, copy: false)
        default:
            return nil
        }
    }

    static func adviceText(_ advice: Advice, practice: String) -> String {
        switch advice {
        case .password:
            "someone may have your password. Change your password now and tell \(practice)'s administrator right away."
        case .lockout:
            "someone may have your password and be trying codes. Tell \(practice)'s administrator right away, and change your password once you can sign in."
        case .administrator:
            "tell \(practice)'s administrator right away."
        }
    }

    // MARK: the messages

    /// What the templates `mail-notification-{text,html}` get.
    struct MailContext: Encodable, Sendable {
        var subject: String
        var practiceName: String
        var firstName: String
        var headline: String
        var what: String
        var when: String
        var whenISO: String
        var address: String
        var browser: String
        var browserDetail: String?
        var administrator: String?
        var advice: String
        var link: String
        /// For the practice's copy address: whose account it is about, and whether the user got it too.
        var copyFor: String?
        var copyNote: String?
    }

    static func displayDate(_ date: Date) -> String {
        date.formatted(Date.FormatStyle(date: .abbreviated, time: .shortened, timeZone: TimeZone(identifier: "UTC")!)) + " UTC"
    }

    static func category(_ type: AuditEventType, copy: Bool) -> String {
        (copy ? "notification_copy." : "notification.") + type.rawValue.replacingOccurrences(of: ".", with: "_")
    }

    /// The messages for `entry`, rendered and ready to queue; nil when it notifies nobody. Reads with `database`
    /// (the caller's transaction, so it sees the change being made).
    func prepare(_ entry: AuditEntry, on database: any Database, now: Date) async throws -> Prepared? {
        guard Self.mayNotify(entry.type), let userID = entry.subjectID ?? entry.actorID, let services = services() else { return nil }
        guard let user = try await User.find(userID, on: database),
            let practice = try await Practice.find(user.$practice.id, on: database)
        else { return nil }
        var administrator: String?
        if let actorID = entry.actorID, actorID != userID {
            administrator = try await User.find(actorID, on: database)?.fullName ?? "An administrator"
        }
        guard let notice = Self.notice(for: entry, administrator: administrator, practice: practice.name) else { return nil }

        let address = user.email.trimmingCharacters(in: .whitespaces)
        let hasAddress = ProfileService.validEmail(address) != nil
        let copyAddress = practice.notificationCopyAddress.flatMap { ProfileService.validEmail($0) }
        let sendsCopy = notice.copy && copyAddress != nil && copyAddress?.lowercased() != address.lowercased()
        guard hasAddress || sendsCopy || entry.type == .epcsTokenReportedLost else { return nil }

        let agent = String(entry.userAgent.prefix(200))
        let summary = UserAgentSummary.describe(agent)
        var context = MailContext(
            subject: notice.headline, practiceName: practice.name, firstName: user.firstName, headline: notice.headline, what: notice.what,
            when: Self.displayDate(now), whenISO: now.ISO8601Format(),
            address: entry.ip.isEmpty ? "not recorded (the Twofold command line)" : entry.ip,
            browser: summary, browserDetail: agent.isEmpty || agent == summary ? nil : agent, administrator: administrator,
            advice: Self.adviceText(notice.advice, practice: practice.name), link: services.linkBase + WebPath.security.string)
        let mailer = Mailer(
            database: database, sealer: services.sealer, now: now, sender: services.sender,
            messageIDDomain: Mailer.domain(of: services.emailFrom))
        // A lost or stolen device also reaches every EPCS access approver of the practice (21 CFR 1311.102, 1311.125(d)).
        var approvers: [User] = []
        if entry.type == .epcsTokenReportedLost {
            approvers = try await User.query(on: database).filter(\.$practice.$id == user.$practice.id).filter(\.$epcsApprover == true)
                .filter(\.$id != userID).all()
                .filter { ProfileService.validEmail($0.email) != nil && $0.email.lowercased() != copyAddress?.lowercased() }
        }
        var messages: [OutgoingMail] = []
        do {
            for approver in approvers {
                var alert = context
                alert.subject = "EPCS: \(user.fullName) reported a device lost or stolen"
                alert.firstName = approver.firstName
                alert.copyFor = "\(user.fullName) (\(user.username))"
                alert.copyNote =
                    "You receive this as an EPCS access approver of \(practice.name). \(user.fullName)'s permission to sign controlled-substance prescriptions was revoked at once (21 CFR 1311.125(d)); granting it again needs two approvers. The alert stays on your home page until an approver acknowledges it."
                let body = try await MailTemplates.render("notification", alert, with: services.views)
                messages.append(
                    OutgoingMail(
                        to: approver.email, subject: alert.subject, body: body,
                        category: "notification_epcs_approver.epcs_token_reported_lost",
                        practiceID: practice.id, userID: approver.id))
            }
            if hasAddress {
                let body = try await MailTemplates.render("notification", context, with: services.views)
                messages.append(
                    OutgoingMail(
                        to: address, subject: notice.headline, body: body, category: Self.category(entry.type, copy: false),
                        practiceID: practice.id, userID: userID))
            }
            if sendsCopy, let copyAddress {
                let name = "\(user.fullName) (\(user.username))"
                context.subject = "Copy: \(notice.headline) (\(user.fullName))"
                context.copyFor = name
                context.copyNote =
                    hasAddress
                    ? "This is a copy for \(practice.name)'s notification address. The message below went to \(name)."
                    : "This is a copy for \(practice.name)'s notification address. \(name) has no email address, so only this copy was sent."
                let body = try await MailTemplates.render("notification", context, with: services.views)
                messages.append(
                    OutgoingMail(
                        to: copyAddress, subject: context.subject, body: body, category: Self.category(entry.type, copy: true),
                        practiceID: practice.id, userID: userID))
            }
        } catch {
            // A template that cannot render must not stop the change (a lockout, a password reset) it reports.
            services.logger.error("Could not render the security notification for \(entry.type.rawValue): \(String(reflecting: error))")
            return nil
        }
        return Prepared(mailer: mailer, messages: messages)
    }
}

/// The practice's `notification_copy_address`: lockouts and administrators' actions on accounts are also sent there.
struct AddNotificationCopyAddressToPractice: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Practice.schema).field("notification_copy_address", .string).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Practice.schema).deleteField("notification_copy_address").update()
    }
}
