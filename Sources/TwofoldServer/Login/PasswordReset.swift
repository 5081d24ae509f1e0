import Fluent
import FluentSQL
import Foundation
import NIOConcurrencyHelpers
import SQLKit
import TwofoldCore
import Vapor

/// A single-use link to set a new password ("Forgot password?", or sent by an administrator). The link holds 32 random
/// bytes (base64url); only their SHA-256 is stored. It works for ``TwofoldPolicy/PasswordReset/linkLifetime``, once, and is voided by a newer link and by
/// a sign-in with the right password.
final class PasswordReset: Model, @unchecked Sendable {
    static let schema = "password_resets"
    /// How long a link works.

    @ID(key: .id) var id: UUID?
    @Parent(key: "user_id") var user: User
    @Field(key: "token_hash") var tokenHash: String
    @Field(key: "created_at") var createdAt: Date
    @Field(key: "expires_at") var expiresAt: Date
    @OptionalField(key: "used_at") var usedAt: Date?
    @OptionalField(key: "voided_at") var voidedAt: Date?
    @Field(key: "requested_ip") var requestedIP: String
    /// The administrator who sent the link from the user's page; nil when the user asked for it.
    @OptionalField(key: "requested_by") var requestedBy: UUID?

    init() {}

    func isUsable(at now: Date) -> Bool { usedAt == nil && voidedAt == nil && expiresAt > now }
}

/// An email address a user (or an administrator) entered, waiting for its owner to open the confirmation link. Until
/// then the user's `email` stays the old, verified address, and password reset links go there.
final class EmailConfirmation: Model, @unchecked Sendable {
    static let schema = "email_confirmations"

    @ID(key: .id) var id: UUID?
    @Parent(key: "user_id") var user: User
    @Field(key: "email") var email: String
    @Field(key: "token_hash") var tokenHash: String
    @Field(key: "created_at") var createdAt: Date
    @Field(key: "expires_at") var expiresAt: Date
    @OptionalField(key: "used_at") var usedAt: Date?
    @OptionalField(key: "voided_at") var voidedAt: Date?
    @OptionalField(key: "requested_by") var requestedBy: UUID?

    init() {}

    func isUsable(at now: Date) -> Bool { usedAt == nil && voidedAt == nil && expiresAt > now }
}

/// Password reset links and email verification: the tables, the users' `email_verified_at` and `pending_email`, and
/// the practice setting that asks for the second factor before a reset is accepted (on by default).
///
/// Addresses already on file count as verified: administrators entered them (the migration stamps them with its own
/// time). From now on a changed address waits in `pending_email` until its confirmation link is opened.
struct CreatePasswordResetTables: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(PasswordReset.schema)
            .id()
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("token_hash", .string, .required)
            .field("created_at", .datetime, .required)
            .field("expires_at", .datetime, .required)
            .field("used_at", .datetime)
            .field("voided_at", .datetime)
            .field("requested_ip", .string, .required)
            .field("requested_by", .uuid)
            .unique(on: "token_hash")
            .create()
        try await database.sqlIndex(name: "password_resets_user_idx", on: PasswordReset.schema, columns: ["user_id"])
        try await database.schema(EmailConfirmation.schema)
            .id()
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("email", .string, .required)
            .field("token_hash", .string, .required)
            .field("created_at", .datetime, .required)
            .field("expires_at", .datetime, .required)
            .field("used_at", .datetime)
            .field("voided_at", .datetime)
            .field("requested_by", .uuid)
            .unique(on: "token_hash")
            .create()
        try await database.sqlIndex(name: "email_confirmations_user_idx", on: EmailConfirmation.schema, columns: ["user_id"])
        try await database.schema(User.schema).field("email_verified_at", .datetime).update()
        try await database.schema(User.schema).field("pending_email", .string).update()
        try await database.sql.update(User.schema).set("email_verified_at", to: SQLBind(Date())).where("email", .notEqual, "").run()
        try await database.schema(Practice.schema).field("reset_requires_second_factor", .bool, .required, .sql(.default(true))).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Practice.schema).deleteField("reset_requires_second_factor").update()
        try await database.schema(User.schema).deleteField("pending_email").update()
        try await database.schema(User.schema).deleteField("email_verified_at").update()
        try await database.schema(EmailConfirmation.schema).delete()
        try await database.schema(PasswordReset.schema).delete()
    }
}

/// The "Forgot password?" page answers in at least this long whether or not an account matched, so neither its
/// words nor its timing tell a stranger which usernames exist. Tests read ``padded`` to see that every request,
/// matching or not, went through the same padding (they never measure time).
final class ForgotPasswordTiming: Sendable {
    private let minimumBox: NIOLockedValueBox<TimeInterval>
    private let paddedBox = NIOLockedValueBox<[TimeInterval]>([])

    init(minimum: TimeInterval = 0.5) { minimumBox = NIOLockedValueBox(minimum) }

    var minimum: TimeInterval {
        get { minimumBox.withLockedValue { $0 } }
        set { minimumBox.withLockedValue { $0 = newValue } }
    }

    /// The minimum applied to each request so far, in order.
    var padded: [TimeInterval] { paddedBox.withLockedValue { $0 } }

    /// Runs `work`, then waits until `minimum` has passed since the start (also when `work` threw).
    func padding<T>(_ work: () async throws -> T) async throws -> T {
        let minimum = self.minimum
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .milliseconds(Int64(minimum * 1000)))
        let result: Result<T, any Error>
        do { result = .success(try await work()) } catch { result = .failure(error) }
        paddedBox.withLockedValue { $0.append(minimum) }
        try? await Task.sleep(until: deadline, clock: clock)
        return try result.get()
    }

    struct Key: StorageKey { typealias Value = ForgotPasswordTiming }

    static func install(on app: Application) {
        app.storage[Key.self] = ForgotPasswordTiming()
    }
}

extension Application {
    /// Installed in `configure`.
    var forgotPasswordTiming: ForgotPasswordTiming {
        storage[ForgotPasswordTiming.Key.self] ?? ForgotPasswordTiming()
    }
}

/// Why a reset was refused (the page and the API show the reason).
enum PasswordResetError: AbortError, Equatable {
    /// Expired, used, voided or unknown: the same answer for all four.
    case linkInvalid(minutes: Int)
    case passwordsDiffer
    case weakPassword(String)
    case codeRequired
    case wrongCode
    case codeAlreadyUsed
    /// The practice asks for the second factor, and the user has no method that can give a code here.
    case noCodeMethod
    case emptyLogin
    case noVerifiedEmail(name: String)

    var status: HTTPResponseStatus {
        switch self {
        case .linkInvalid: .gone
        case .noCodeMethod, .noVerifiedEmail: .conflict
        default: .badRequest
        }
    }

    var reason: String {
        switch self {
        case .linkInvalid(let minutes):
            "This link to set a new password has expired or was already used. Links work once, for \(minutes) minutes; a newer link or a sign-in voids older ones. Ask for a new one."
        case .passwordsDiffer: "The two new passwords do not match."
        case .weakPassword(let problem): problem
        case .codeRequired: "Enter a current code from your authenticator app or text message, or one of your recovery codes."
        case .wrongCode:
            "That code is not correct. Enter a current code from your authenticator app or text message, or an unused recovery code."
        case .codeAlreadyUsed: "That code was already used. Wait for your authenticator app to show the next one."
        case .noCodeMethod:
            "Your practice asks for a code from your second factor before a password reset, and your sign-in methods (push or passkey) cannot give one here. Ask your practice administrator to reset your password."
        case .emptyLogin: "Enter your username or your email address."
        case .noVerifiedEmail(let name): "\(name) has no confirmed email address, so a reset link cannot be sent."
        }
    }
}

/// Forgot password, reset links and the reset itself; shared by the pages and the API.
struct PasswordResetService {
    let context: ServiceContext
    /// Writes the reset emails (the application's Leaf views), and the decoy written for requests that send none.
    let views: any ViewRenderer
    /// The start of the link in the email: `TWOFOLD_PUBLIC_URL`, else the address the request came to
    /// (``Vapor/Request/passwordResets`` fills it in).
    let linkBase: String
    /// Makes every "Forgot password?" request take the same time.
    let timing: ForgotPasswordTiming
    /// Tells the OpenID Connect applications signed in through a session (`sessionID`, of `userID`) that it ended.
    let sessionEnded: @Sendable (_ sessionID: UUID, _ userID: UUID) async throws -> Void

    private var now: Date { context.now }

    // MARK: requesting a link

    private struct MatchRow: Decodable { var id: UUID }

    /// Handles a "Forgot password?" request for `login` (a username, or a verified email address). Always returns
    /// normally and in the same time, whether or not an account matched or the request was throttled: the caller
    /// shows the same answer in every case. Everything that differs is in the audit log only.
    func requestLink(login rawLogin: String) async throws {
        let login = String(rawLogin.trimmingCharacters(in: .whitespacesAndNewlines).lowercased().prefix(254))
        try await timing.padding {
            try await handleRequest(login: login)
        }
    }

    private func handleRequest(login: String) async throws {
        let throttle = ThrottleStore(database: context.database)
        // The same reservations and the same rendering happen for unknown accounts: only their outcome differs.
        var throttled: String?
        if case .blocked = try await throttle.reserve(
            "reset:ip:\(context.caller.throttleKey)", limit: context.policy.passwordReset.perAddress, now: now)
        {
            throttled = "address"
        }
        if throttled == nil,
            case .blocked = try await throttle.reserve("reset:login:\(login)", limit: context.policy.passwordReset.perLogin, now: now)
        {
            throttled = "login"
        }
        let matches = try await context.database.sql.raw(
            """
            SELECT id FROM \(ident: User.schema)
            WHERE username_key = \(bind: login) OR (LOWER(email) = \(bind: login) AND email_verified_at IS NOT NULL)
            ORDER BY username_key LIMIT 5
            """
        ).all(decoding: MatchRow.self)
        let users = matches.isEmpty ? [] : try await User.query(on: context.database).filter(\.$id ~~ matches.map(\.id)).all()
        if users.isEmpty {
            // A decoy message is rendered (never queued), so an unknown account costs the same work.
            _ = try await MailTemplates.render("password-reset", ResetMail.decoy, with: views)
            try await context.audit(
                throttled == nil ? .passwordResetRequested : .passwordResetThrottled, practiceID: nil,
                details: ["login": String(login.prefix(64)), "matched": "false"].merging(throttled.map { ["limit": $0] } ?? [:]) { a, _ in a
                })
            return
        }
        for user in users {
            let userID = try user.requireID()
            var limit = throttled
            if limit == nil,
                case .blocked = try await throttle.reserve(
                    "reset:user:\(userID.uuidString.lowercased())", limit: context.policy.passwordReset.perAccount, now: now)
            {
                limit = "account"
            }
            if limit == nil,
                case .blocked = try await throttle.reserve(
                    "reset:practice:\(user.$practice.id.uuidString.lowercased())", limit: context.policy.passwordReset.perPractice, now: now
                )
            {
                limit = "practice"
            }
            let via = user.usernameKey == login ? "username" : "email"
            if let limit {
                _ = try await MailTemplates.render("password-reset", ResetMail.decoy, with: views)
                try await context.audit(
                    .passwordResetThrottled, practiceID: user.$practice.id, subjectID: userID,
                    details: ["login": String(login.prefix(64)), "matched": "true", "via": via, "limit": limit])
                continue
            }
            guard user.emailVerifiedAt != nil, !user.email.isEmpty else {
                _ = try await MailTemplates.render("password-reset", ResetMail.decoy, with: views)
                try await context.audit(
                    .passwordResetRequested, practiceID: user.$practice.id, subjectID: userID,
                    details: [
                        "login": String(login.prefix(64)), "matched": "true", "via": via, "sent": "false", "reason": "no_verified_email",
                    ])
                continue
            }
            try await context.audit(
                .passwordResetRequested, practiceID: user.$practice.id, subjectID: userID,
                details: ["login": String(login.prefix(64)), "matched": "true", "via": via, "sent": "true"])
            try await sendLink(to: user, by: nil)
        }
    }

    /// Creates a new link for `user` (voiding any older one) and queues it to their verified address, in one
    /// transaction. `administrator` is the staff member who sent it from the user's page, if any.
    func sendLink(to user: User, by administrator: User?) async throws {
        let userID = try user.requireID()
        guard user.emailVerifiedAt != nil, !user.email.isEmpty else { throw PasswordResetError.noVerifiedEmail(name: user.fullName) }
        let practice = try await Practice.find(user.$practice.id, on: context.database)
        let token = context.random.token(byteCount: 32)
        let mail = ResetMail(
            subject: "Set a new password for \(practice?.name ?? "Twofold")", practiceName: practice?.name ?? "Twofold",
            firstName: user.firstName,
            username: user.username, link: linkBase + WebPath.passwordReset(token).string,
            minutes: context.policy.passwordReset.linkLifetimeMinutes,
            requestedAt: SecurityWebController.format(now), requestedFrom: context.caller.ip, browser: context.caller.userAgentSummary,
            administrator: administrator?.fullName)
        let body = try await MailTemplates.render("password-reset", mail, with: views)
        let context = self.context
        try await context.database.transaction { db in
            let now = context.now
            // One link at a time per user, also under parallel requests: PostgreSQL holds the user's row until the
            // commit (SQLite writes one transaction at a time anyway).
            if db.isPostgres {
                try await db.sql.raw("SELECT id FROM \(ident: User.schema) WHERE id = \(bind: userID) FOR UPDATE").run()
            }
            try await Self.voidOutstanding(userID: userID, now: now, on: db)
            let reset = PasswordReset()
            reset.$user.id = userID
            reset.tokenHash = TwofoldCore.Digest.sha256Hex(token)
            reset.createdAt = now
            reset.expiresAt = now.addingTimeInterval(context.policy.passwordReset.linkLifetime)
            reset.requestedIP = context.caller.ip
            reset.requestedBy = administrator?.id
            try await reset.create(on: db)
            try await context.mailer(on: db, now: now).enqueue(
                OutgoingMail(
                    to: user.email, subject: mail.subject, body: body, category: "password_reset",
                    practiceID: user.$practice.id, userID: userID), on: db)
            var details = ["to": Self.maskedEmail(user.email), "expires_minutes": String(mail.minutes)]
            if let administrator { details["sent_by"] = administrator.username }
            try await context.on(db).audit(
                .passwordResetSent, practiceID: user.$practice.id, actorID: administrator?.id, subjectID: userID, details: details)
        }
    }

    /// Voids every unused link of the user (a newer link, a sign-in, a reset).
    static func voidOutstanding(userID: UUID, now: Date, on db: any Database) async throws {
        try await db.sql.raw(
            """
            UPDATE \(ident: PasswordReset.schema) SET voided_at = \(bind: now)
            WHERE user_id = \(bind: userID) AND used_at IS NULL AND voided_at IS NULL
            """
        ).run()
    }

    /// `d…@example.org`: enough for the audit log to tell which address a message went to.
    static func maskedEmail(_ email: String) -> String {
        let parts = email.split(separator: "@", maxSplits: 1)
        guard parts.count == 2, let first = parts[0].first else { return email }
        return "\(first)…@\(parts[1])"
    }

    // MARK: the link's page

    /// What the reset page needs to know about the link's user.
    struct Target {
        var reset: PasswordReset
        var user: User
        var practice: Practice
        var factors: [Factor]
        var recoveryCodesLeft: Int

        /// The practice asks for the second factor, and the user has one.
        var requiresCode: Bool { practice.resetRequiresSecondFactor && !factors.isEmpty }
        /// Authenticator apps, and a confirmed phone while the practice allows text messages.
        var codeFactors: [Factor] { factors.filter { $0.kind == .totp || ($0.kind == .sms && practice.allowSMS) } }
        var smsFactor: Factor? { practice.allowSMS ? factors.first { $0.kind == .sms } : nil }
        /// A code is needed and the user has nothing that can give one: only an administrator can help.
        var needsAdministrator: Bool { requiresCode && codeFactors.isEmpty && recoveryCodesLeft == 0 }
        /// The rules for the new password: a user with a second factor (or who must have one) gets the shorter minimum.
        var rules: PasswordRules.Context
    }

    /// The link's reset and user, or ``PasswordResetError/linkInvalid(minutes:)`` when it expired, was used or voided, or never existed.
    func target(token: String) async throws -> Target {
        guard !token.isEmpty, token.utf8.count <= 128,
            let reset = try await PasswordReset.query(on: context.database).filter(\.$tokenHash == TwofoldCore.Digest.sha256Hex(token))
                .first(),
            reset.isUsable(at: now),
            let user = try await User.find(reset.$user.id, on: context.database),
            let practice = try await Practice.find(user.$practice.id, on: context.database)
        else { throw PasswordResetError.linkInvalid(minutes: context.policy.passwordReset.linkLifetimeMinutes) }
        let factors = try await SignInService(context: context).activeFactors(of: user)
        let left = try await RecoveryCodeService(context: context).remaining(userID: try user.requireID())
        return Target(
            reset: reset, user: user, practice: practice, factors: factors, recoveryCodesLeft: left,
            rules: try await PasswordRules.context(for: user, on: context.database))
    }

    /// Sends a text-message code to the user's confirmed phone for the reset page.
    func sendSMS(token: String) async throws -> String {
        let target = try await target(token: token)
        guard let phone = target.smsFactor?.phone, !phone.isEmpty else { throw SMSError.noConfirmedPhone }
        try await SMSCodeService(context: context).send(
            to: phone, user: target.user, practice: target.practice, purpose: .signIn, factorID: nil)
        return SMSCodeService.maskedPhone(phone)
    }

    // MARK: resetting

    private struct IDRow: Decodable { var id: UUID }

    /// Sets the new password of the link's user. The password rules are checked first, then (when the practice asks
    /// for it) the second factor, then the link is consumed, in one transaction with the new password: every session
    /// and remembered browser of the user ends, and no session is opened, so the next sign-in needs the second factor.
    func reset(token: String, password: String, confirmation: String?, code: String?) async throws {
        let target = try await target(token: token)
        let user = target.user
        let userID = try user.requireID()
        if let confirmation, confirmation != password { throw PasswordResetError.passwordsDiffer }
        if let problem = PasswordRules.problem(with: password, context: target.rules) { throw PasswordResetError.weakPassword(problem) }
        var proof = target.factors.isEmpty ? "none" : "not_required"
        if target.requiresCode {
            guard !target.needsAdministrator else { throw PasswordResetError.noCodeMethod }
            proof = try await checkSecondFactor(code ?? "", target: target)
        }
        let hash = try await context.passwords.hasher.hash(password)
        let meetsSingleFactorMinimum = PasswordRules.meetsSingleFactorMinimum(
            password, username: target.rules.username, practiceName: target.rules.practiceName)
        let context = self.context
        let now = context.now
        let secondFactor = proof
        let resetID = try target.reset.requireID()
        let ended: [IDRow] = try await context.database.transaction { db in
            // Single use: the link counts only if this statement is the one that marks it used.
            let claimed = try await db.sql.raw(
                """
                UPDATE \(ident: PasswordReset.schema) SET used_at = \(bind: now)
                WHERE id = \(bind: resetID) AND used_at IS NULL AND voided_at IS NULL AND expires_at > \(bind: now) RETURNING id
                """
            ).all(decoding: IDRow.self)
            guard !claimed.isEmpty else { throw PasswordResetError.linkInvalid(minutes: context.policy.passwordReset.linkLifetimeMinutes) }
            try await db.sql.update(User.schema)
                .set("password_hash", to: hash).set("password_single_factor_ok", to: meetsSingleFactorMinimum).set(
                    "must_change_password", to: false
                )
                .where("id", .equal, userID).run()
            let sessions = try await db.sql.raw(
                """
                DELETE FROM \(ident: SessionRecord.schema) WHERE user_id = \(bind: userID) RETURNING id
                """
            ).all(decoding: IDRow.self)
            try await RememberedBrowser.query(on: db).filter(\.$user.$id == userID).delete()
            try await Self.voidOutstanding(userID: userID, now: now, on: db)
            var details = ["second_factor": secondFactor, "sessions_ended": String(sessions.count)]
            if let by = target.reset.requestedBy { details["link_sent_by"] = by.uuidString.lowercased() }
            // The audit event is also the security notification: SecurityNotifier queues "Your password was reset"
            // to the user's address in this transaction.
            try await context.on(db).audit(.passwordReset, practiceID: target.practice.id, actorID: userID, details: details)
            return sessions
        }
        try await ThrottleStore(database: context.database).reset("password:user:\(user.usernameKey)")
        for session in ended {
            try await sessionEnded(session.id, userID)
        }
    }

    /// Checks a code from an authenticator app or text message (the one ``SecondFactorCheck``, sign-in channel, so wrong
    /// codes count toward the same lockout), or an unused recovery code. Returns what matched.
    private func checkSecondFactor(_ raw: String, target: Target) async throws -> String {
        let input = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !input.isEmpty else { throw PasswordResetError.codeRequired }
        let user = target.user
        if let code = SecondFactorCheck.normalize(input) {
            guard !target.codeFactors.isEmpty else { throw PasswordResetError.wrongCode }
            let outcome = try await SecondFactorCheck(context: context).check(
                code, user: user, factors: target.factors, smsFactor: target.smsFactor,
                channel: .signIn, auditFailure: true)
            switch outcome {
            case .accepted(let factor): return factor.kind.rawValue
            case .replayed:
                try await context.audit(
                    .secondFactorReplayRejected, practiceID: user.$practice.id, actorID: user.id, details: ["during": "password_reset"])
                throw PasswordResetError.codeAlreadyUsed
            case .wrong: throw PasswordResetError.wrongCode
            }
        }
        guard RecoveryCode.normalize(input) != nil else { throw PasswordResetError.wrongCode }
        let guardRail = SecondFactorGuard(context: context)
        let attempt = try await guardRail.reserve(user: user, channel: .signIn)
        guard let remaining = try await RecoveryCodeService(context: context).redeem(input, userID: try user.requireID()) else {
            try await guardRail.recordFailure(attempt, user: user, method: "recovery_code")
            throw PasswordResetError.wrongCode
        }
        try await guardRail.recordSuccess(attempt, user: user, kind: "recovery_code")
        try await context.audit(
            .recoveryCodeUsed, practiceID: user.$practice.id, actorID: user.id,
            details: ["remaining": String(remaining), "during": "password_reset"])
        return "recovery_code"
    }
}

extension Request {
    /// Password resets for this request: its context, the application's views, links to `TWOFOLD_PUBLIC_URL` or, without
    /// it, to the address this request came to, the forgot page's padding, and OpenID Connect logout for the sessions a
    /// reset ends.
    var passwordResets: PasswordResetService {
        PasswordResetService(
            context: serviceContext, views: view, linkBase: twofold.configuration.publicURL ?? publicBaseURL,
            timing: application.forgotPasswordTiming,
            sessionEnded: { sessionID, userID in try await OIDCService.sessionEnded(self, sessionID: sessionID, userID: userID) })
    }
}

/// What the reset email says (mail-password-reset-text.leaf and -html.leaf).
struct ResetMail: Encodable, Sendable {
    var subject: String
    var practiceName: String
    var firstName: String
    var username: String
    var link: String
    var minutes: Int
    var requestedAt: String
    var requestedFrom: String
    var browser: String
    /// The administrator who sent it, when it was not the user's own request.
    var administrator: String?

    /// Rendered (and thrown away) for requests that match no account, so they cost the same work.
    static let decoy = ResetMail(
        subject: "Set a new password for Twofold", practiceName: "Twofold", firstName: "there", username: "user",
        link: "https://twofold.invalid/login/reset/" + String(repeating: "x", count: 43), minutes: 30,
        requestedAt: "", requestedFrom: "", browser: "", administrator: nil)
}
