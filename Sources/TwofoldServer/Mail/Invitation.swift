import Fluent
import FluentSQL
import Foundation
import SQLKit
import TwofoldCore
import Vapor

/// An invitation to a staff member an administrator added with an email address: a single-use link, valid 7 days,
/// to choose their password (and, where 2FA is required, enroll right away). One per user: resending replaces the
/// token (the old link stops working) and starts the 7 days again. The invited user has no usable password until
/// they accept, so they cannot sign in before.
final class Invitation: Model, @unchecked Sendable {
    static let schema = "invitations"

    @ID(key: .id) var id: UUID?
    @Field(key: "practice_id") var practiceID: UUID
    @Field(key: "user_id") var userID: UUID
    /// SHA-256 (hex) of the link's token: 32 random bytes, base64url in the link, never stored.
    @Field(key: "token_hash") var tokenHash: String
    /// The administrator who sent it (nil from the command line).
    @OptionalField(key: "created_by") var createdBy: UUID?
    @Field(key: "created_at") var createdAt: Date
    @Field(key: "expires_at") var expiresAt: Date
    @OptionalField(key: "accepted_at") var acceptedAt: Date?
    @OptionalField(key: "revoked_at") var revokedAt: Date?
    @Field(key: "sent_count") var sentCount: Int
    @Field(key: "last_sent_at") var lastSentAt: Date

    init() {}

    enum State: Equatable {
        case open
        case expired
        case revoked
        case accepted
    }

    func state(at now: Date) -> State {
        if acceptedAt != nil { return .accepted }
        if revokedAt != nil { return .revoked }
        return expiresAt > now ? .open : .expired
    }
}

struct CreateInvitation: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Invitation.schema)
            .id()
            .field("practice_id", .uuid, .required, .references(Practice.schema, .id, onDelete: .cascade))
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("token_hash", .string, .required)
            .field("created_by", .uuid)
            .field("created_at", .datetime, .required)
            .field("expires_at", .datetime, .required)
            .field("accepted_at", .datetime)
            .field("revoked_at", .datetime)
            .field("sent_count", .int, .required)
            .field("last_sent_at", .datetime, .required)
            .unique(on: "user_id")
            .unique(on: "token_hash")
            .create()
        try await database.sqlIndex(name: "invitations_practice_idx", on: Invitation.schema, columns: ["practice_id", "accepted_at"])
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Invitation.schema).delete()
    }
}

enum InvitationError: AbortError, Equatable {
    /// The link is unknown, expired, revoked or was used already.
    case gone
    case alreadyAccepted
    case notOpen
    case passwordsDiffer
    case password(String)

    var status: HTTPResponseStatus {
        switch self {
        case .gone: .gone
        case .alreadyAccepted, .notOpen: .conflict
        case .passwordsDiffer, .password: .badRequest
        }
    }

    var reason: String {
        switch self {
        case .gone:
            "This invitation link no longer works: it was used already, it expired (invitations are valid for 7 days), or your administrator replaced or withdrew it. Ask your practice administrator to send you a new invitation."
        case .alreadyAccepted: "This staff member accepted their invitation already; they sign in with their own password."
        case .notOpen: "There is no open invitation for this staff member."
        case .passwordsDiffer: "The two passwords do not match."
        case .password(let reason): reason
        }
    }
}

/// Sends, resends, revokes and accepts invitations. Takes its dependencies explicitly so the pages, the API and the
/// commands share it. Unchecked: `any ViewRenderer` is not marked Sendable, but the service is used by one task at a
/// time (it is captured only by the database transactions it runs in).
struct InvitationService: @unchecked Sendable {
    /// Stored as the password hash of an invited user: not a bcrypt hash, so no password ever verifies against it
    /// (sign-in checks the decoy hash instead and takes as long as for an unknown username).
    static let unusablePasswordHash = "!invited-not-yet-accepted"

    let database: any Database
    let mailer: Mailer
    let views: any ViewRenderer
    let passwords: AsyncPasswordHasher
    let now: Date
    /// The start of every link: `TWOFOLD_PUBLIC_URL`, or the request's own address.
    let linkBase: String
    let ip: String
    let userAgent: String
    /// How long an invitation link works (``TwofoldPolicy/Invitation``).
    let validity: TwofoldPolicy.Invitation

    init(request: Request) {
        database = request.db
        mailer = request.mailer
        views = request.view
        passwords = request.passwordHasher
        now = request.now
        linkBase = request.twofold.configuration.publicURL ?? request.publicBaseURL
        ip = request.clientIP
        userAgent = request.headers.first(name: .userAgent) ?? ""
        validity = request.policy.invitation
    }

    /// For the commands: links start with `TWOFOLD_PUBLIC_URL`, else `http://localhost:8080`.
    init(application app: Application) {
        database = app.db
        mailer = app.mailer
        views = app.view
        passwords = app.password.async
        now = app.twofold.clock.now()
        linkBase = app.twofold.configuration.publicURL ?? "http://localhost:8080"
        ip = ""
        userAgent = "twofold command line"
        validity = app.policy.invitation
    }

    static func tokenHash(_ token: String) -> String { Digest.sha256Hex(token) }

    static func path(for token: String) -> String { WebPath.invitation(token).string }

    private func audit(
        _ type: AuditEventType, practiceID: UUID, actorID: UUID?, subjectID: UUID, details: [String: String], on db: any Database
    ) async throws {
        try await AuditLog.append(
            AuditEntry(
                type: type, practiceID: practiceID, actorID: actorID, subjectID: subjectID, ip: ip, userAgent: userAgent, details: details),
            on: db, now: now)
    }

    // MARK: sending

    struct MailContext: Encodable, Sendable {
        var subject: String
        var practiceName: String
        var name: String
        var firstName: String
        var username: String
        var inviter: String
        var link: String
        var expires: String
        var days: Int
        var twoFactorRequired: Bool
    }

    static func displayDate(_ date: Date) -> String {
        date.formatted(Date.FormatStyle(date: .abbreviated, time: .shortened, timeZone: TimeZone(identifier: "UTC")!)) + " UTC"
    }

    /// Sends an invitation to `user` (a new one, or a new link replacing the previous one: the old link stops working
    /// and the 7 days start again), queues the message and audits it, all in `db` (the caller's transaction).
    @discardableResult
    func send(to user: User, practice: Practice, invitedBy inviter: User?, on db: (any Database)? = nil) async throws -> Invitation {
        let db = db ?? database
        let userID = try user.requireID()
        let practiceID = try practice.requireID()
        let token = SecureRandom.token(byteCount: 32)
        let existing = try await Invitation.query(on: db).filter(\.$userID == userID).first()
        if existing?.acceptedAt != nil { throw InvitationError.alreadyAccepted }
        let invitation = existing ?? Invitation()
        if existing == nil {
            invitation.id = UUID()
            invitation.practiceID = practiceID
            invitation.userID = userID
            invitation.createdAt = now
            invitation.sentCount = 0
        }
        invitation.tokenHash = Self.tokenHash(token)
        invitation.createdBy = inviter?.id
        invitation.expiresAt = now.addingTimeInterval(validity.validity)
        invitation.revokedAt = nil
        invitation.sentCount += 1
        invitation.lastSentAt = now
        try await invitation.save(on: db)

        let subject = "Your invitation to \(practice.name)'s sign-in"
        let context = MailContext(
            subject: subject, practiceName: practice.name, name: user.fullName, firstName: user.firstName, username: user.username,
            inviter: inviter.map { "\($0.fullName) (\(practice.name))" } ?? "an administrator of \(practice.name)",
            link: linkBase + Self.path(for: token), expires: Self.displayDate(invitation.expiresAt), days: validity.validityDays,
            twoFactorRequired: practice.mandatoryTwoFactor || user.twoFactorRequired)
        let body = try await MailTemplates.render("invitation", context, with: views)
        try await mailer.enqueue(
            OutgoingMail(to: user.email, subject: subject, body: body, category: "invitation", practiceID: practiceID, userID: userID),
            on: db)
        try await audit(
            existing == nil ? .invitationSent : .invitationResent, practiceID: practiceID, actorID: inviter?.id, subjectID: userID,
            details: [
                "username": user.username, "email": user.email, "expires_at": invitation.expiresAt.ISO8601Format(),
                "sent_count": String(invitation.sentCount),
            ], on: db)
        return invitation
    }

    /// Withdraws the open invitation of `user`: its link stops working at once. 409 when none is open.
    func revoke(user: User, actorID: UUID?) async throws {
        let userID = try user.requireID()
        try await database.transaction { db in
            let revoked = try await db.sql.raw(
                """
                UPDATE \(ident: Invitation.schema) SET revoked_at = \(bind: now)
                WHERE user_id = \(bind: userID) AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > \(bind: now)
                RETURNING id, practice_id
                """
            ).first(decoding: InvitationRow.self)
            guard let revoked else { throw InvitationError.notOpen }
            try await audit(
                .invitationRevoked, practiceID: revoked.practice_id, actorID: actorID, subjectID: userID,
                details: ["username": user.username, "email": user.email], on: db)
        }
    }

    private struct InvitationRow: Decodable {
        var id: UUID
        var practice_id: UUID
    }

    /// The invitation of each of `userIDs` that is not accepted yet (for the staff list and the user page).
    static func pending(userIDs: [UUID], on db: any Database) async throws -> [UUID: Invitation] {
        guard !userIDs.isEmpty else { return [:] }
        var result: [UUID: Invitation] = [:]
        for start in stride(from: 0, to: userIDs.count, by: 1000) {
            let chunk = Array(userIDs[start..<min(start + 1000, userIDs.count)])
            for invitation in try await Invitation.query(on: db).filter(\.$userID ~~ chunk).filter(\.$acceptedAt == nil).all() {
                result[invitation.userID] = invitation
            }
        }
        return result
    }

    // MARK: accepting

    struct Opened {
        var invitation: Invitation
        var user: User
        var practice: Practice
        var rules: PasswordRules.Context
    }

    /// The open invitation of a link's token; ``InvitationError/gone`` when it is unknown, expired, revoked or used.
    func open(token: String) async throws -> Opened {
        guard (20...128).contains(token.utf8.count),
            let invitation = try await Invitation.query(on: database).filter(\.$tokenHash == Self.tokenHash(token)).first(),
            invitation.state(at: now) == .open,
            let user = try await User.find(invitation.userID, on: database),
            let practice = try await Practice.find(invitation.practiceID, on: database)
        else { throw InvitationError.gone }
        return Opened(
            invitation: invitation, user: user, practice: practice, rules: try await PasswordRules.context(for: user, on: database))
    }

    /// Sets the password the invited user chose and uses the invitation up (once: a conditional update, so two
    /// submissions of one link cannot both succeed). Returns the user and their practice, to sign them in.
    func accept(token: String, password: String, confirmation: String) async throws -> (User, Practice) {
        let opened = try await open(token: token)
        guard password == confirmation else { throw InvitationError.passwordsDiffer }
        if let problem = PasswordRules.problem(with: password, context: opened.rules) { throw InvitationError.password(problem) }
        let hash = try await passwords.hash(password)
        let meetsMinimum = PasswordRules.meetsSingleFactorMinimum(
            password, username: opened.user.username, practiceName: opened.practice.name)
        let user = opened.user
        let userID = try user.requireID()
        try await database.transaction { db in
            let used = try await db.sql.raw(
                """
                UPDATE \(ident: Invitation.schema) SET accepted_at = \(bind: now)
                WHERE token_hash = \(bind: Self.tokenHash(token)) AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > \(bind: now)
                RETURNING id, practice_id
                """
            ).first(decoding: InvitationRow.self)
            guard used != nil else { throw InvitationError.gone }
            // Written with SQL directly: the model layer logs its inputs at debug level.
            try await db.sql.update(User.schema)
                .set("password_hash", to: hash).set("password_single_factor_ok", to: meetsMinimum).set("must_change_password", to: false)
                .set("updated_at", to: now)
                .where("id", .equal, userID).run()
            try await audit(
                .invitationAccepted, practiceID: opened.practice.requireID(), actorID: userID, subjectID: userID,
                details: ["username": user.username, "sent_count": String(opened.invitation.sentCount)], on: db)
        }
        user.passwordHash = hash
        user.passwordMeetsSingleFactorMinimum = meetsMinimum
        user.mustChangePassword = false
        return (user, opened.practice)
    }
}
