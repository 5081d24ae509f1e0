import Fluent
import SQLKit
import TwofoldCore
import Vapor

/// The sign-in state machine shared by the web pages and the JSON API:
/// password → (second factor | enrollment) → signed in.
struct SignInService {
    let request: Request

    struct Started {
        var session: SessionRecord
        var token: String
        var user: User
        var practice: Practice
        var factors: [Factor]
    }

    // MARK: password

    /// Checks the password (throttled per username and per address) and opens a session at the right stage.
    /// Any session the request already had is ended, so a token set before sign-in never survives it.
    func passwordStep(username: String, password: String, channel: SessionRecord.Channel, rememberToken: String?) async throws -> Started {
        let now = request.now
        let key = User.key(for: username)
        let throttle = ThrottleStore(database: request.db)
        let accountKey = "password:user:\(key)"
        let addressKey = "password:ip:\(request.clientIP)"
        for (bucket, limit) in [(accountKey, ThrottleLimits.passwordPerAccount), (addressKey, ThrottleLimits.passwordPerAddress)] {
            if let seconds = try await throttle.secondsBlocked(bucket, limit: limit, now: now) {
                try await request.audit(.signInThrottled, practiceID: nil, details: ["username": String(key.prefix(64))])
                throw SignInError.passwordThrottled(retryAfter: seconds)
            }
        }
        let user = key.isEmpty ? nil : try await User.query(on: request.db).filter(\.$usernameKey == key).first()
        let passwordMatches = await request.verifyPassword(password, against: user?.passwordHash)
        guard let user, passwordMatches, let practice = try await Practice.find(user.$practice.id, on: request.db) else {
            try await throttle.record(accountKey, limit: ThrottleLimits.passwordPerAccount, now: now)
            try await throttle.record(addressKey, limit: ThrottleLimits.passwordPerAddress, now: now)
            try await request.audit(.signInFailed, practiceID: user?.$practice.id, subjectID: user?.id,
                                    details: ["username": String(key.prefix(64)), "reason": user == nil ? "unknown_user" : "wrong_password"])
            throw SignInError.invalidCredentials
        }
        try await throttle.reset(accountKey)
        try await endCurrentSession()

        let factors = try await activeFactors(of: user)
        let stage: SessionRecord.Stage
        var method = "password"
        if !factors.isEmpty {
            if let rememberToken, try await consumeRememberedBrowser(token: rememberToken, user: user) {
                stage = .signedIn
                method = "remembered_browser"
            } else {
                stage = .secondFactor
            }
        } else {
            stage = (practice.mandatoryTwoFactor || user.twoFactorRequired) ? .enrollment : .signedIn
        }
        let (session, token) = try await openSession(user: user, stage: stage, channel: channel)
        if stage == .signedIn {
            try await request.audit(method == "password" ? .signInSucceeded : .signInRememberedBrowser, practiceID: practice.id, actorID: user.id, details: ["method": method])
        }
        return Started(session: session, token: token, user: user, practice: practice, factors: factors)
    }

    /// Opens a fully signed-in session for a passwordless passkey sign-in (the passkey's user verification is the
    /// second factor); any session the request already had is ended.
    func passwordlessSignIn(user: User, practice: Practice, factor: Factor, channel: SessionRecord.Channel) async throws -> Started {
        try await endCurrentSession()
        let (session, token) = try await openSession(user: user, stage: .signedIn, channel: channel)
        try await request.audit(.signInSucceeded, practiceID: practice.id, actorID: user.id, details: ["method": "passkey_passwordless", "factor": factor.shortID])
        return Started(session: session, token: token, user: user, practice: practice, factors: [factor])
    }

    func activeFactors(of user: User) async throws -> [Factor] {
        try await Factor.query(on: request.db).filter(\.$user.$id == user.id!).filter(\.$status == .active)
            .sort(\.$isPrimary, .descending).sort(\.$createdAt).all()
    }

    private func openSession(user: User, stage: SessionRecord.Stage, channel: SessionRecord.Channel) async throws -> (SessionRecord, String) {
        let token = SecureRandom.token()
        let session = SessionRecord(
            userID: user.id!, tokenHash: TwofoldCore.Digest.sha256Hex(token), stage: stage, channel: channel, csrfToken: SecureRandom.token(),
            ip: request.clientIP, userAgent: request.userAgent, now: request.now)
        try await session.create(on: request.db)
        return (session, token)
    }

    /// Ends the request's session, if any (sign-out, and before a new sign-in).
    func endCurrentSession() async throws {
        guard let (token, _) = SessionLoader.token(in: request) else { return }
        try await SessionRecord.query(on: request.db).filter(\.$tokenHash == TwofoldCore.Digest.sha256Hex(token)).delete()
    }

    // MARK: remembered browsers

    private func consumeRememberedBrowser(token: String, user: User) async throws -> Bool {
        guard token.utf8.count <= 128,
              let browser = try await RememberedBrowser.query(on: request.db).filter(\.$tokenHash == TwofoldCore.Digest.sha256Hex(token)).first(),
              browser.$user.id == user.id, browser.expiresAt > request.now
        else { return false }
        browser.lastUsedAt = request.now
        browser.lastIP = request.clientIP
        try await browser.save(on: request.db)
        return true
    }

    /// Creates a remembered browser for `days` days and returns its token (for the cookie or the API client).
    func rememberBrowser(user: User, days: Int) async throws -> String {
        let token = SecureRandom.token()
        let browser = RememberedBrowser(
            userID: user.id!, tokenHash: TwofoldCore.Digest.sha256Hex(token), userAgent: request.userAgentSummary,
            lastIP: request.clientIP, expiresAt: request.now.addingTimeInterval(TimeInterval(days) * 86_400))
        try await browser.create(on: request.db)
        try await request.audit(.rememberedBrowserCreated, practiceID: user.$practice.id, actorID: user.id, details: ["browser": browser.userAgent, "days": String(days)])
        return token
    }

    // MARK: second factor

    /// Checks a code from an authenticator app or a text message for a half-signed-in session.
    /// - Parameter factorID: the method the user picked; nil tries every active method.
    /// - Returns: the factor that matched.
    func verifyCode(_ rawCode: String, factorID: UUID?, session: CurrentSession) async throws -> Factor {
        let code = rawCode.filter { !$0.isWhitespace && $0 != "-" }
        guard !code.isEmpty, code.count <= 10, code.allSatisfy(\.isASCII), code.allSatisfy(\.isNumber) else { throw SignInError.malformedCode }
        let guardRail = SecondFactorGuard(request: request)
        try await guardRail.ensureAllowed(user: session.user)

        var factors = try await activeFactors(of: session.user)
        if let factorID {
            factors = factors.filter { $0.id == factorID }
            guard !factors.isEmpty else { throw SignInError.unknownFactor }
        }
        let match = try await TOTPVerifier(database: request.db, sealer: request.twofold.sealer, now: request.now)
            .firstMatch(code, among: factors.filter { $0.kind == .totp })
        if case .accepted(let factor) = match {
            try await guardRail.recordSuccess(user: session.user, kind: "totp")
            return factor
        }
        let smsFactor = factors.first { $0.kind == .sms }
        if factorID == nil || smsFactor != nil,
           try await SMSCodeService(request: request).redeem(code, userID: session.userID, purpose: .signIn) != nil {
            try await guardRail.recordSuccess(user: session.user, kind: "sms")
            let factor = smsFactor ?? factors.first { $0.kind == .sms }
            if let factor {
                factor.lastUsedAt = request.now
                try await factor.save(on: request.db)
            }
            return factor ?? Factor(userID: session.userID, kind: .sms, nickname: "Text message")
        }
        if case .replayed = match {
            try await request.audit(.secondFactorReplayRejected, practiceID: session.practiceID, actorID: session.userID)
            throw SignInError.codeAlreadyUsed
        }
        try await recordPendingFailure(session: session, method: factors.count == 1 ? factors[0].kind.rawValue : "code")
        throw SignInError.wrongCode
    }

    /// Signs in with a single-use recovery code (never accepted for step-up).
    /// - Returns: how many unused codes remain.
    func verifyRecoveryCode(_ input: String, session: CurrentSession) async throws -> Int {
        let guardRail = SecondFactorGuard(request: request)
        try await guardRail.ensureAllowed(user: session.user)
        guard RecoveryCode.normalize(input) != nil,
              let remaining = try await RecoveryCodeService(request: request).redeem(input, userID: session.userID)
        else {
            try await recordPendingFailure(session: session, method: "recovery_code")
            throw SignInError.wrongRecoveryCode
        }
        try await guardRail.recordSuccess(user: session.user, kind: "recovery_code")
        try await request.audit(.recoveryCodeUsed, practiceID: session.practiceID, actorID: session.userID, details: ["remaining": String(remaining)])
        return remaining
    }

    private struct AttemptRow: Decodable { var failed_attempts: Int }

    func recordPendingFailure(session: CurrentSession, method: String) async throws {
        try await SecondFactorGuard(request: request).recordFailure(user: session.user, method: method)
        let row = try await request.db.sql.raw("""
            UPDATE \(ident: SessionRecord.schema) SET failed_attempts = failed_attempts + 1 WHERE id = \(bind: session.record.id!) RETURNING failed_attempts
            """).first(decoding: AttemptRow.self)
        if (row?.failed_attempts ?? 0) >= SecondFactorLockoutPolicy.standard.pendingSignInLimit {
            try await session.record.delete(on: request.db)
            try await request.audit(.pendingSignInCancelled, practiceID: session.practiceID, actorID: session.userID)
            throw SignInError.pendingSignInCancelled
        }
    }

    /// Moves a half-signed-in session to signed in, with a fresh token for browsers.
    /// - Returns: the new token when it was rotated.
    func complete(session: CurrentSession, method: String, factor: Factor?) async throws -> String? {
        let record = session.record
        record.stage = .signedIn
        record.failedAttempts = 0
        record.reauthenticatedAt = request.now
        var newToken: String?
        if record.channel == .web {
            let token = SecureRandom.token()
            record.tokenHash = TwofoldCore.Digest.sha256Hex(token)
            newToken = token
        }
        try await record.save(on: request.db)
        var details = ["method": method]
        if let factor, factor.id != nil { details["factor"] = factor.shortID }
        try await request.audit(.secondFactorPassed, practiceID: session.practiceID, actorID: session.userID, details: details)
        try await request.audit(.signInSucceeded, practiceID: session.practiceID, actorID: session.userID, details: details)
        return newToken
    }

    /// Requests a text-message code for a half-signed-in user: to their SMS factor's phone, else the profile's cell phone.
    func sendSignInSMS(session: CurrentSession) async throws -> String {
        guard session.practice.allowSMS else { throw SMSError.notAllowed }
        let factors = try await activeFactors(of: session.user)
        guard let phone = factors.first(where: { $0.kind == .sms })?.phone ?? session.user.cellPhone, !phone.isEmpty else { throw SMSError.noPhone }
        try await SMSCodeService(request: request).send(to: phone, user: session.user, practice: session.practice, purpose: .signIn, factorID: nil)
        return SMSCodeService.maskedPhone(phone)
    }
}
