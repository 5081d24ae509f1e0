import Fluent
import SQLKit
import TwofoldCore
import Vapor

/// The sign-in state machine shared by the web pages and the JSON API:
/// password → (second factor | enrollment) → signed in.
struct SignInService {
    let context: ServiceContext

    struct Started {
        var session: SessionRecord
        var token: String
        var user: User
        var practice: Practice
        var factors: [Factor]
    }

    // MARK: password

    /// Checks the password (throttled per username and per address) and opens a session at the right stage.
    /// The session the request came with (`replacing`) is ended, so a token set before sign-in never survives it.
    ///
    /// Both limits are reserved before bcrypt runs, so a parallel burst evaluates at most the limit. A browser that
    /// holds a valid remembered-browser token of the user, or an address the user signed in from before, has an
    /// allowance of its own once the account's is spent: strangers guessing a known username cannot lock its
    /// owner out (docs/security.md, "Lockout model").
    func passwordStep(
        username: String, password: String, channel: SessionRecord.Channel, rememberToken: String?, replacing presented: PresentedSession?
    ) async throws -> Started {
        let now = context.now
        let key = User.key(for: username)
        let throttle = ThrottleStore(database: context.database)
        let user = key.isEmpty ? nil : try await User.query(on: context.database).filter(\.$usernameKey == key).first()
        let accountKey = "password:user:\(key)"
        var reserved = try await throttle.reserve(
            "password:ip:\(context.caller.throttleKey)", limit: context.policy.signIn.passwordPerAddress, now: now)
        if reserved.retryAfter == nil {
            reserved = try await throttle.reserve(accountKey, limit: context.policy.signIn.passwordPerAccount, now: now)
            if reserved.retryAfter != nil, let user, let trusted = try await trustedAllowance(for: user, rememberToken: rememberToken) {
                reserved = try await throttle.reserve("\(accountKey):\(trusted)", limit: context.policy.signIn.passwordPerAccount, now: now)
            }
        }
        if let seconds = reserved.retryAfter {
            try await context.audit(
                .signInThrottled, practiceID: user?.$practice.id, subjectID: user?.id, details: ["username": String(key.prefix(64))])
            throw SignInError.passwordThrottled(retryAfter: seconds)
        }
        let passwordMatches = await context.passwords.verify(password, against: user?.passwordHash)
        guard let user, passwordMatches, let practice = try await Practice.find(user.$practice.id, on: context.database) else {
            try await context.audit(
                .signInFailed, practiceID: user?.$practice.id, subjectID: user?.id,
                details: ["username": String(key.prefix(64)), "reason": user == nil ? "unknown_user" : "wrong_password"])
            throw SignInError.invalidCredentials
        }
        try await throttle.reset(accountKey)
        try await context.upgradePasswordHashIfNeeded(user: user, password: password)
        try await endSession(presented)

        let factors = try await activeFactors(of: user)
        let stage: SessionRecord.Stage
        var method = "password"
        if !factors.isEmpty {
            if let rememberToken, try await consumeRememberedBrowser(token: rememberToken, user: user, practice: practice) {
                stage = .signedIn
                method = "remembered_browser"
            } else {
                stage = .secondFactor
            }
        } else {
            stage = (practice.mandatoryTwoFactor || user.twoFactorRequired) ? .enrollment : .signedIn
        }
        let (session, token) = try await openSession(
            user: user, stage: stage, channel: channel,
            authentication: stage == .signedIn ? AuthenticationContext(password: true, secondFactor: nil) : nil)
        if stage == .signedIn {
            try await KnownSignInAddress.record(
                userID: try user.requireID(), address: context.caller.throttleKey, now: now, on: context.database)
            try await context.audit(
                method == "password" ? .signInSucceeded : .signInRememberedBrowser, practiceID: practice.id, actorID: user.id,
                details: ["method": method])
        }
        return Started(session: session, token: token, user: user, practice: practice, factors: factors)
    }

    /// The allowance of the user's own browser or address, when the request comes from one: a valid remembered
    /// browser of this user, or an address this user completed a sign-in from before.
    private func trustedAllowance(for user: User, rememberToken: String?) async throws -> String? {
        let userID = try user.requireID()
        if let rememberToken, rememberToken.utf8.count <= 128,
            let browser = try await RememberedBrowser.query(on: context.database).filter(
                \.$tokenHash == TwofoldCore.Digest.sha256Hex(rememberToken)
            ).first(),
            browser.$user.id == userID, browser.expiresAt > context.now, let id = browser.id
        {
            return "browser:\(id.uuidString.lowercased())"
        }
        if try await KnownSignInAddress.contains(userID: userID, address: context.caller.throttleKey, on: context.database) {
            return "address:\(context.caller.throttleKey)"
        }
        return nil
    }

    /// Opens a fully signed-in session for a passwordless passkey sign-in (the passkey's user verification is the
    /// second factor); the session the request came with (`replacing`) is ended.
    func passwordlessSignIn(
        user: User, practice: Practice, factor: Factor, channel: SessionRecord.Channel, replacing presented: PresentedSession?
    ) async throws -> Started {
        try await endSession(presented)
        let (session, token) = try await openSession(
            user: user, stage: .signedIn, channel: channel,
            authentication: AuthenticationContext(password: false, secondFactor: .webauthn, deviceBoundKey: factor.backupEligible == false))
        try await KnownSignInAddress.record(
            userID: try user.requireID(), address: context.caller.throttleKey, now: context.now, on: context.database)
        try await context.audit(
            .signInSucceeded, practiceID: practice.id, actorID: user.id,
            details: ["method": "passkey_passwordless", "factor": factor.shortID])
        return Started(session: session, token: token, user: user, practice: practice, factors: [factor])
    }

    /// The first step for a user who has just chosen their password (an accepted invitation): the session opens at the
    /// stage a password sign-in would reach, so the rest is the normal flow: the second factor when they have one,
    /// enrollment when 2FA is required, else signed in. The session the request came with (`replacing`) is ended.
    func passwordChosen(
        user: User, practice: Practice, channel: SessionRecord.Channel, method: String, replacing presented: PresentedSession?
    ) async throws -> Started {
        try await endSession(presented)
        let factors = try await activeFactors(of: user)
        let stage: SessionRecord.Stage =
            !factors.isEmpty
            ? .secondFactor
            : (practice.mandatoryTwoFactor || user.twoFactorRequired) ? .enrollment : .signedIn
        let (session, token) = try await openSession(
            user: user, stage: stage, channel: channel,
            authentication: stage == .signedIn ? AuthenticationContext(password: true, secondFactor: nil) : nil)
        if stage == .signedIn {
            try await KnownSignInAddress.record(
                userID: try user.requireID(), address: context.caller.throttleKey, now: context.now, on: context.database)
            try await context.audit(.signInSucceeded, practiceID: practice.id, actorID: user.id, details: ["method": method])
        }
        return Started(session: session, token: token, user: user, practice: practice, factors: factors)
    }

    func activeFactors(of user: User) async throws -> [Factor] {
        try await Factor.query(on: context.database).filter(\.$user.$id == user.requireID()).filter(\.$status == .active)
            .sort(\.$isPrimary, .descending).sort(\.$createdAt).all()
    }

    private func openSession(user: User, stage: SessionRecord.Stage, channel: SessionRecord.Channel, authentication: AuthenticationContext?)
        async throws -> (SessionRecord, String)
    {
        let token = context.random.token()
        let userID = try user.requireID()
        let session = SessionRecord(
            userID: userID, tokenHash: TwofoldCore.Digest.sha256Hex(token), stage: stage, channel: channel,
            csrfToken: context.random.token(),
            ip: context.caller.ip, userAgent: context.caller.userAgent, now: context.now)
        if let authentication { session.recordAuthentication(authentication, at: context.now) }
        try await session.create(on: context.database)
        // Every sign-in opens its session here (right password, passkey, accepted invitation): the user got in, so
        // any password reset link still waiting in their inbox stops working.
        try await PasswordResetService.voidOutstanding(userID: userID, now: context.now, on: context.database)
        return (session, token)
    }

    private struct EndedSessionRow: Decodable {
        var id: UUID
        var user_id: UUID
    }

    /// The session a request came with: the token of its cookie or bearer header, which a new sign-in ends, and the
    /// issuer named in the logout tokens sent to the applications signed in through that session
    /// (``Vapor/Request/presentedSession`` builds it).
    struct PresentedSession: Sendable {
        var token: String
        var issuer: String
    }

    /// Ends the session the request came with, if any (before a new sign-in).
    private func endSession(_ presented: PresentedSession?) async throws {
        guard let presented,
            let ended = try await context.database.sql.raw(
                """
                DELETE FROM \(ident: SessionRecord.schema) WHERE token_hash = \(bind: TwofoldCore.Digest.sha256Hex(presented.token))
                RETURNING id, user_id
                """
            ).first(decoding: EndedSessionRow.self)
        else { return }
        // The applications signed in through the old session are signed out too: on a shared workstation the next
        // person's sign-in must not inherit them.
        let oidc = OIDCContext(
            database: context.database, now: context.now, issuer: presented.issuer,
            signer: TokenSigner(database: context.database, sealer: context.sealer, now: context.now), audit: context.audit,
            client: context.client, logger: context.logger, policy: context.policy)
        try await OIDCService(context: oidc).sessionEnded(sessionID: ended.id, userID: ended.user_id)
    }

    // MARK: remembered browsers

    /// A remembered browser counts only while the practice allows remembering, and only for the practice's
    /// *current* number of days since it was remembered: shortening the setting (or setting it to 0) takes effect
    /// for browsers remembered before the change too.
    private func consumeRememberedBrowser(token: String, user: User, practice: Practice) async throws -> Bool {
        guard practice.rememberBrowserDays > 0, token.utf8.count <= 128,
            let browser = try await RememberedBrowser.query(on: context.database).filter(
                \.$tokenHash == TwofoldCore.Digest.sha256Hex(token)
            )
            .first(),
            browser.$user.id == user.id, browser.expiresAt > context.now,
            let remembered = browser.createdAt,
            context.now < remembered.addingTimeInterval(TimeInterval(practice.rememberBrowserDays) * 86_400)
        else { return false }
        browser.lastUsedAt = context.now
        browser.lastIP = context.caller.ip
        try await browser.save(on: context.database)
        return true
    }

    /// Creates a remembered browser for `days` days and returns its token (for the cookie or the API client).
    func rememberBrowser(user: User, days: Int) async throws -> String {
        let token = context.random.token()
        let browser = RememberedBrowser(
            userID: try user.requireID(), tokenHash: TwofoldCore.Digest.sha256Hex(token), userAgent: context.caller.userAgentSummary,
            lastIP: context.caller.ip, createdAt: context.now, expiresAt: context.now.addingTimeInterval(TimeInterval(days) * 86_400))
        try await browser.create(on: context.database)
        try await context.audit(
            .rememberedBrowserCreated, practiceID: user.$practice.id, actorID: user.id,
            details: ["browser": browser.userAgent, "days": String(days)])
        return token
    }

    // MARK: second factor

    /// Checks a code from an authenticator app or a confirmed phone (text message).
    /// Used for the second step of sign-in and, with `countsTowardPendingSignIn: false`, to confirm turning 2FA off.
    /// - Parameter factorID: the method the user picked; nil tries every active method.
    /// - Returns: the factor that matched.
    func verifyCode(_ rawCode: String, factorID: UUID?, session: CurrentSession, countsTowardPendingSignIn: Bool = true) async throws
        -> Factor
    {
        guard let code = SecondFactorCheck.normalize(rawCode) else { throw SignInError.malformedCode }
        var factors = try await activeFactors(of: session.user)
        if let factorID {
            factors = factors.filter { $0.id == factorID }
            guard !factors.isEmpty else { throw SignInError.unknownFactor }
        }
        // A text-message code counts only for a phone the user confirmed (an active SMS method), and only while
        // the practice allows text messages.
        let smsFactor = session.practice.allowSMS ? factors.first(where: { $0.kind == .sms }) : nil
        var pendingAttempts: Int?
        // The account's attempt first: a request told to wait does not use up one of the pending sign-in's attempts.
        let outcome = try await SecondFactorCheck(context: context).check(
            code, user: session.user, factors: factors, smsFactor: smsFactor, channel: .signIn,
            auditFailure: true
        ) {
            if countsTowardPendingSignIn { pendingAttempts = try await reservePendingAttempt(session: session) }
        }
        switch outcome {
        case .accepted(let factor):
            return factor
        case .replayed:
            try await context.audit(.secondFactorReplayRejected, practiceID: session.practiceID, actorID: session.userID)
            throw SignInError.codeAlreadyUsed
        case .wrong:
            if let pendingAttempts { try await cancelIfPendingLimitReached(attempts: pendingAttempts, session: session) }
            throw SignInError.wrongCode
        }
    }

    /// Signs in with a single-use recovery code (never accepted for step-up).
    /// - Returns: how many unused codes remain.
    func verifyRecoveryCode(_ input: String, session: CurrentSession, countsTowardPendingSignIn: Bool = true) async throws -> Int {
        guard RecoveryCode.normalize(input) != nil else { throw SignInError.wrongRecoveryCode }
        let guardRail = SecondFactorGuard(context: context)
        // The account's attempt first: a request told to wait does not use up one of the pending sign-in's attempts.
        let attempt = try await guardRail.reserve(user: session.user, channel: .signIn)
        let pendingAttempts = countsTowardPendingSignIn ? try await reservePendingAttempt(session: session) : nil
        guard let remaining = try await RecoveryCodeService(context: context).redeem(input, userID: session.userID) else {
            try await guardRail.recordFailure(attempt, user: session.user, method: "recovery_code")
            if let pendingAttempts { try await cancelIfPendingLimitReached(attempts: pendingAttempts, session: session) }
            throw SignInError.wrongRecoveryCode
        }
        try await guardRail.recordSuccess(attempt, user: session.user, kind: "recovery_code")
        try await context.audit(
            .recoveryCodeUsed, practiceID: session.practiceID, actorID: session.userID, details: ["remaining": String(remaining)])
        return remaining
    }

    private struct AttemptRow: Decodable { var failed_attempts: Int }

    /// Reserves one of the pending sign-in's attempts before a proof is checked; a sign-in that has used them all ends.
    /// - Returns: the attempts used so far, this one included.
    @discardableResult
    func reservePendingAttempt(session: CurrentSession) async throws -> Int {
        let limit = context.policy.lockout.pendingSignInLimit
        let row = try await context.database.sql.raw(
            """
            UPDATE \(ident: SessionRecord.schema) SET failed_attempts = failed_attempts + 1
            WHERE id = \(bind: try session.record.requireID()) AND failed_attempts < \(bind: limit) RETURNING failed_attempts
            """
        ).first(decoding: AttemptRow.self)
        guard let row else { try await cancelPendingSignIn(session: session) }
        return row.failed_attempts
    }

    /// After a refused proof: the sign-in ends once its reservation was the last attempt.
    func cancelIfPendingLimitReached(attempts: Int, session: CurrentSession) async throws {
        if attempts >= context.policy.lockout.pendingSignInLimit {
            try await cancelPendingSignIn(session: session)
        }
    }

    private func cancelPendingSignIn(session: CurrentSession) async throws -> Never {
        try await session.record.delete(on: context.database)
        try await context.audit(.pendingSignInCancelled, practiceID: session.practiceID, actorID: session.userID)
        throw SignInError.pendingSignInCancelled
    }

    /// Moves a half-signed-in session to signed in, with a fresh token (cookie or bearer): a token seen before
    /// the second factor is never a signed-in one.
    /// - Returns: the new token.
    @discardableResult
    func complete(session: CurrentSession, method: String, factor: Factor?) async throws -> String {
        let record = session.record
        record.stage = .signedIn
        record.failedAttempts = 0
        record.reauthenticatedAt = context.now
        record.recordAuthentication(
            AuthenticationContext(
                password: true, secondFactor: AuthenticationContext.SecondFactor(rawValue: method),
                deviceBoundKey: factor?.backupEligible == false), at: context.now)
        let newToken = context.random.token()
        record.tokenHash = TwofoldCore.Digest.sha256Hex(newToken)
        try await record.save(on: context.database)
        try await KnownSignInAddress.record(
            userID: session.userID, address: context.caller.throttleKey, now: context.now, on: context.database)
        var details = ["method": method]
        if let factor, factor.id != nil { details["factor"] = factor.shortID }
        try await context.audit(.secondFactorPassed, practiceID: session.practiceID, actorID: session.userID, details: details)
        try await context.audit(.signInSucceeded, practiceID: session.practiceID, actorID: session.userID, details: details)
        return newToken
    }

    /// What a finished sign-in hands the client: the session's new token and, when asked for, a remembered browser.
    struct Finished {
        var token: String
        var rememberToken: String?
        var rememberDays: Int
    }

    /// The one end of every sign-in after a second factor (web page, JSON API, push, passkey): the session is signed
    /// in with a fresh token and, when the user asked and the practice allows it, the browser is remembered
    /// (never after a recovery code).
    func finish(session: CurrentSession, method: String, factor: Factor?, remember: Bool) async throws -> Finished {
        let token = try await complete(session: session, method: method, factor: factor)
        let days = session.practice.rememberBrowserDays
        var rememberToken: String?
        if remember, days > 0, method != "recovery_code" {
            rememberToken = try await rememberBrowser(user: session.user, days: days)
        }
        return Finished(token: token, rememberToken: rememberToken, rememberDays: days)
    }

    /// Requests a text-message code for a half-signed-in user, to the phone of their text-message method: a number
    /// the user confirmed with a code. The profile's cell phone (typed by an administrator or imported) is never used.
    func sendSignInSMS(session: CurrentSession) async throws -> String {
        guard session.practice.allowSMS else { throw SMSError.notAllowed }
        let factors = try await activeFactors(of: session.user)
        guard let phone = factors.first(where: { $0.kind == .sms })?.phone, !phone.isEmpty else { throw SMSError.noConfirmedPhone }
        try await SMSCodeService(context: context).send(
            to: phone, user: session.user, practice: session.practice, purpose: .signIn, factorID: nil)
        return SMSCodeService.maskedPhone(phone)
    }
}

extension Request {
    /// The session this request came with (cookie or bearer token), for ``SignInService`` to end when the request
    /// signs someone in; nil when it carries none.
    var presentedSession: SignInService.PresentedSession? {
        guard let (token, _) = SessionLoader.token(in: self) else { return nil }
        return .init(token: token, issuer: (try? oidcIssuer()) ?? twofold.configuration.publicURL ?? publicBaseURL)
    }
}
