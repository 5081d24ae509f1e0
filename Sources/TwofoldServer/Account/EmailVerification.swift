import Fluent
import FluentSQL
import SQLKit
import TwofoldCore
import Vapor

/// A changed email address is confirmed by its owner before it is used: the new address waits in `pending_email`
/// and receives a single-use link (24 hours, stored hashed); until it is opened, email (and password reset links)
/// keep going to the old, verified address. Opening it swaps the new address in.
///
/// Unchecked: `any ViewRenderer` is not marked Sendable, but the service is used by one task at a time (it is captured
/// only by the database transaction of the change it records).
struct EmailVerification: @unchecked Sendable {
    let context: ServiceContext
    /// Writes the confirmation email (the application's Leaf views).
    let views: any ViewRenderer
    /// The start of the link in the email: `TWOFOLD_PUBLIC_URL`, else the address the request came to
    /// (``Vapor/Request/emailVerification`` fills both in).
    let linkBase: String

    /// Records `address` as the user's pending address and queues its confirmation link, in `db` (the transaction of
    /// the profile change). An older pending link stops working. `administrator` is set when an administrator made
    /// the change from the staff form.
    func requestChange(of user: User, to address: String, administrator: User?, on db: any Database) async throws {
        let context = self.context.on(db)
        let userID = try user.requireID()
        let now = context.now
        let practice = try await Practice.find(user.$practice.id, on: db)
        let token = context.random.token(byteCount: 32)
        let mail = ConfirmMail(
            subject: "Confirm your email address for \(practice?.name ?? "Twofold")", practiceName: practice?.name ?? "Twofold",
            firstName: user.firstName, newAddress: address, oldAddress: user.email,
            link: linkBase + WebPath.emailConfirm(token).string,
            hours: Int(context.policy.emailConfirmation.linkLifetimeHours), administrator: administrator?.fullName)
        let body = try await MailTemplates.render("email-confirm", mail, with: views)
        // One pending link per user, also under parallel changes (PostgreSQL holds the user's row until the commit).
        if db.isPostgres {
            try await db.sql.raw("SELECT id FROM \(ident: User.schema) WHERE id = \(bind: userID) FOR UPDATE").run()
        }
        try await db.sql.raw(
            """
            UPDATE \(ident: EmailConfirmation.schema) SET voided_at = \(bind: now)
            WHERE user_id = \(bind: userID) AND used_at IS NULL AND voided_at IS NULL
            """
        ).run()
        let confirmation = EmailConfirmation()
        confirmation.$user.id = userID
        confirmation.email = address
        confirmation.tokenHash = TwofoldCore.Digest.sha256Hex(token)
        confirmation.createdAt = now
        confirmation.expiresAt = now.addingTimeInterval(context.policy.emailConfirmation.linkLifetime)
        confirmation.requestedBy = administrator?.id
        try await confirmation.create(on: db)
        user.pendingEmail = address
        try await db.sql.update(User.schema).set("pending_email", to: address).where("id", .equal, userID).run()
        try await context.mailer(on: db, now: now).enqueue(
            OutgoingMail(
                to: address, subject: mail.subject, body: body, category: "email_confirmation",
                practiceID: user.$practice.id, userID: userID), on: db)
        var details = ["to": PasswordResetService.maskedEmail(address)]
        if let administrator { details["changed_by"] = administrator.username }
        try await context.audit(
            .emailChangeRequested, practiceID: user.$practice.id, actorID: administrator?.id ?? userID, subjectID: userID,
            details: details)
    }

    /// A usable confirmation for `token`, or nil (expired, used, voided, unknown, or no longer the pending address).
    func confirmation(token: String) async throws -> (EmailConfirmation, User)? {
        guard !token.isEmpty, token.utf8.count <= 128,
            let confirmation = try await EmailConfirmation.query(on: context.database).filter(
                \.$tokenHash == TwofoldCore.Digest.sha256Hex(token)
            )
            .first(),
            confirmation.isUsable(at: context.now),
            let user = try await User.find(confirmation.$user.id, on: context.database),
            user.pendingEmail?.lowercased() == confirmation.email.lowercased()
        else { return nil }
        return (confirmation, user)
    }

    private struct IDRow: Decodable { var id: UUID }

    /// Consumes the link and makes its address the user's verified one. Returns the user, or nil when the link
    /// cannot be used (also when a parallel request used it first).
    func confirm(token: String) async throws -> User? {
        guard let (confirmation, user) = try await confirmation(token: token) else { return nil }
        let now = context.now
        let id = try confirmation.requireID()
        let userID = try user.requireID()
        let old = user.email
        return try await context.database.transaction { db -> User? in
            let claimed = try await db.sql.raw(
                """
                UPDATE \(ident: EmailConfirmation.schema) SET used_at = \(bind: now)
                WHERE id = \(bind: id) AND used_at IS NULL AND voided_at IS NULL AND expires_at > \(bind: now) RETURNING id
                """
            ).all(decoding: IDRow.self)
            guard !claimed.isEmpty else { return nil }
            try await db.sql.update(User.schema)
                .set("email", to: confirmation.email).set("pending_email", to: SQLLiteral.null).set("email_verified_at", to: SQLBind(now))
                .where("id", .equal, userID).run()
            user.email = confirmation.email
            user.pendingEmail = nil
            user.emailVerifiedAt = now
            try await context.on(db).audit(
                .emailConfirmed, practiceID: user.$practice.id, actorID: userID,
                details: ["from": PasswordResetService.maskedEmail(old), "to": PasswordResetService.maskedEmail(confirmation.email)])
            return user
        }
    }
}

extension Request {
    /// Email confirmation for this request: its context, the application's views and links to `TWOFOLD_PUBLIC_URL` or,
    /// without it, to the address this request came to.
    var emailVerification: EmailVerification {
        EmailVerification(context: serviceContext, views: view, linkBase: twofold.configuration.publicURL ?? publicBaseURL)
    }
}

/// What the confirmation email says (mail-email-confirm-text.leaf and -html.leaf).
struct ConfirmMail: Encodable, Sendable {
    var subject: String
    var practiceName: String
    var firstName: String
    var newAddress: String
    var oldAddress: String
    var link: String
    var hours: Int
    var administrator: String?
}
