import Fluent
import QRCode
import SQLKit
import TwofoldCore
import Vapor

enum FactorError: AbortError, Equatable {
    case notFound
    case notPending
    case wrongCode
    case tooManyAttempts
    case required(String)
    case methodNotAllowed(String)
    case noCellPhone
    case invalidNickname(maximum: Int)
    case proofRequired
    case passwordTooShortForOneFactor

    var status: HTTPResponseStatus {
        switch self {
        case .notFound: .notFound
        case .notPending: .conflict
        case .wrongCode: .unprocessableEntity
        case .tooManyAttempts: .tooManyRequests
        case .required, .methodNotAllowed, .noCellPhone, .passwordTooShortForOneFactor: .forbidden
        case .invalidNickname, .proofRequired: .badRequest
        }
    }

    var reason: String {
        switch self {
        case .notFound: "That sign-in method does not exist on your account."
        case .notPending: "That sign-in method is already active."
        case .wrongCode: "That code is not correct. Check the time on your phone and enter the code your app shows now."
        case .tooManyAttempts: "Too many wrong codes for this set-up. Start the set-up again."
        case .required(let why): why
        case .methodNotAllowed(let method): "Your practice does not allow \(method). Choose another method."
        case .noCellPhone:
            "There is no cell phone number on your profile. Add one in your profile first (Account › Profile), then set up text messages."
        case .invalidNickname(let maximum): "Give the method a name of 1 to \(maximum) characters."
        case .passwordTooShortForOneFactor:
            "Your password is too short to protect your account on its own. Choose a password of at least \(PasswordRules.singleFactorMinimumLength) characters first (Account › Change password), then turn two-factor authentication off."
        case .proofRequired:
            "Turning off two-factor authentication (or removing your last sign-in method) needs a current code from your app or phone, or one of your recovery codes."
        }
    }
}

/// Adding, activating, renaming, promoting and removing a user's second factors.
struct FactorService {
    let context: ServiceContext

    struct TOTPEnrollment {
        var factor: Factor
        var secret: OTPSecret
        var uri: OTPAuthURI
        var qrSVG: String
    }

    static func cleanNickname(_ input: String?, default fallback: String, maximum: Int) throws -> String {
        guard let input else { return fallback }
        let trimmed = input.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { return fallback }
        guard trimmed.count <= maximum, !trimmed.contains(where: { $0.isNewline }) else {
            throw FactorError.invalidNickname(maximum: maximum)
        }
        return trimmed
    }

    /// "Authenticator app", then "Authenticator app 2" and so on, counting the user's active factors of that kind.
    func defaultNickname(kind: Factor.Kind, userID: UUID) async throws -> String {
        let count = try await Factor.query(on: context.database).filter(\.$user.$id == userID).filter(\.$kind == kind).filter(
            \.$status == .active
        ).count()
        return count == 0 ? kind.displayName : "\(kind.displayName) \(count + 1)"
    }

    /// Starts an authenticator-app enrollment: a new key, sealed, in a pending factor.
    func beginTOTP(session: CurrentSession, nickname: String?) async throws -> TOTPEnrollment {
        guard session.practice.allowTOTP else { throw FactorError.methodNotAllowed("authenticator apps") }
        try await Factor.query(on: context.database).filter(\.$user.$id == session.userID).filter(\.$status == .pending).filter(
            \.$kind == .totp
        )
        .delete()
        let name = try Self.cleanNickname(
            nickname, default: try await defaultNickname(kind: .totp, userID: session.userID), maximum: context.policy.fields.nickname)
        let parameters = try OTPParameters(algorithm: .sha1, digits: session.practice.otpDigits, period: 30)
        let secret = OTPSecret(bytes: context.random.bytes(parameters.algorithm.recommendedSecretLength))
        let factor = Factor(
            userID: session.userID, kind: .totp, nickname: name, digits: parameters.digits, algorithm: parameters.algorithm.rawValue,
            period: parameters.period)
        factor.enrollmentSessionID = session.record.id
        let sealingContext = TOTPVerifier.sealingContext(for: try factor.requireID())
        factor.sealedSecret = Data(try context.sealer.seal(secret.bytes, context: sealingContext))
        try await factor.create(on: context.database)
        return try enrollment(for: factor, session: session, secret: secret)
    }

    /// Rebuilds the QR code and key text of a pending enrollment (for a page reload).
    func pendingTOTP(id: UUID, session: CurrentSession) async throws -> TOTPEnrollment {
        let factor = try await ownFactor(id, session: session)
        guard factor.status == .pending, factor.kind == .totp else { throw FactorError.notPending }
        let secret = try TOTPVerifier(database: context.database, sealer: context.sealer, now: context.now).secret(of: factor)
        return try enrollment(for: factor, session: session, secret: secret)
    }

    private func enrollment(for factor: Factor, session: CurrentSession, secret: OTPSecret) throws -> TOTPEnrollment {
        let parameters = try OTPParameters(
            algorithm: OTPAlgorithm(rawValue: factor.algorithm) ?? .sha1, digits: factor.digits, period: factor.period)
        let uri = OTPAuthURI(issuer: session.practice.name, account: session.user.username, secret: secret, parameters: parameters)
        let svg = try QRCode(text: uri.uri).svg(moduleSize: 5, quietZone: 4, title: "QR code for your authenticator app")
        return TOTPEnrollment(factor: factor, secret: secret, uri: uri, qrSVG: svg)
    }

    /// Starts a text-message enrollment to the profile's cell phone and sends the first code.
    func beginSMS(session: CurrentSession, nickname: String?) async throws -> Factor {
        guard session.practice.allowSMS else { throw FactorError.methodNotAllowed("text-message codes") }
        guard let phone = session.user.cellPhone, !phone.isEmpty else { throw FactorError.noCellPhone }
        try await Factor.query(on: context.database).filter(\.$user.$id == session.userID).filter(\.$status == .pending).filter(
            \.$kind == .sms
        )
        .delete()
        let name = try Self.cleanNickname(
            nickname, default: try await defaultNickname(kind: .sms, userID: session.userID), maximum: context.policy.fields.nickname)
        let factor = Factor(userID: session.userID, kind: .sms, nickname: name, digits: max(6, session.practice.otpDigits))
        factor.phone = phone
        factor.enrollmentSessionID = session.record.id
        try await factor.create(on: context.database)
        do {
            try await SMSCodeService(context: context).send(
                to: phone, user: session.user, practice: session.practice, purpose: .enrollment, factorID: factor.id)
        } catch {
            try await factor.delete(on: context.database)
            throw error
        }
        return factor
    }

    func resendSMS(id: UUID, session: CurrentSession) async throws -> Factor {
        let factor = try await ownFactor(id, session: session)
        guard factor.status == .pending, factor.kind == .sms, let phone = factor.phone else { throw FactorError.notPending }
        try await SMSCodeService(context: context).send(
            to: phone, user: session.user, practice: session.practice, purpose: .enrollment, factorID: factor.id)
        return factor
    }

    struct Activation {
        var factor: Factor
        /// New recovery codes when this was the user's first factor; shown once.
        var recoveryCodes: [RecoveryCode]?
        /// The session's new token when this enrollment signed it in (the enrollment-stage token stops working).
        var sessionToken: String? = nil
    }

    /// Proves a pending factor works with a code from it and turns it on. The first factor becomes primary and brings recovery codes.
    func activate(id: UUID, code rawCode: String, session: CurrentSession) async throws -> Activation {
        let factor = try await ownFactor(id, session: session)
        guard factor.status == .pending else { throw FactorError.notPending }
        let code = rawCode.filter { !$0.isWhitespace && $0 != "-" }
        let throttle = ThrottleStore(database: context.database)
        let attemptsKey = "enroll:\(id.uuidString)"
        // Reserved before the check: parallel guesses at a pending set-up get ten evaluations in all.
        if case .blocked = try await throttle.reserve(attemptsKey, limit: context.policy.enrollment.attemptsPerFactor, now: context.now) {
            try await factor.delete(on: context.database)
            throw FactorError.tooManyAttempts
        }
        let accepted: Bool
        switch factor.kind {
        case .totp:
            accepted =
                try await TOTPVerifier(database: context.database, sealer: context.sealer, now: context.now).verify(code, factor: factor)
                == .accepted
        case .sms:
            guard session.practice.allowSMS else { throw FactorError.methodNotAllowed("text-message codes") }
            accepted =
                try await SMSCodeService(context: context).redeem(code, userID: session.userID, purpose: .enrollment, factorID: factor.id)
                != nil
        case .push, .webauthn:
            // A push device activates itself with its first signed request (PushService); a passkey is verified when created.
            throw FactorError.notPending
        }
        guard accepted else { throw FactorError.wrongCode }
        return try await turnOn(factor, session: session)
    }

    /// Makes a verified pending factor active. The first factor becomes primary and brings recovery codes,
    /// and a user who had to enroll is signed in.
    func turnOn(_ factor: Factor, session: CurrentSession) async throws -> Activation {
        let userID = session.userID
        let now = context.now
        return try await context.database.transaction { db in
            let context = self.context.on(db)
            let hadActive = try await Factor.query(on: db).filter(\.$user.$id == userID).filter(\.$status == .active).count() > 0
            factor.status = .active
            factor.activatedAt = now
            factor.lastUsedAt = now
            factor.isPrimary = !hadActive
            try await factor.save(on: db)
            let codes = hadActive ? nil : try await RecoveryCodeService(context: context).regenerate(userID: userID)
            try await context.audit(
                .factorAdded, practiceID: session.practiceID, actorID: userID,
                details: ["factor": factor.shortID, "kind": factor.kind.rawValue, "nickname": factor.nickname])
            try await EnrollmentSessions.factorActivated(factor, on: db)
            let token = try await signInAfterEnrollment(session: session, factor: factor, on: db)
            return Activation(factor: factor, recoveryCodes: codes, sessionToken: token)
        }
    }

    /// A user who had to enroll before anything else is signed in once the method *this session* enrolled works.
    /// A session at the enrollment stage is never promoted by a factor that another session (or a device) enrolled:
    /// a phished password's session must not ride on the victim's own enrollment.
    /// - Returns: the session's new token when it was signed in.
    func signInAfterEnrollment(session: CurrentSession, factor: Factor, on db: any Database) async throws -> String? {
        guard session.record.stage == .enrollment else { return nil }
        guard let sessionID = session.record.id, factor.enrollmentSessionID == sessionID, factor.status == .active else {
            throw FactorError.notFound
        }
        let token = context.random.token()
        session.record.stage = .signedIn
        session.record.failedAttempts = 0
        session.record.tokenHash = TwofoldCore.Digest.sha256Hex(token)
        session.record.recordAuthentication(
            AuthenticationContext(
                password: true, secondFactor: AuthenticationContext.SecondFactor(rawValue: factor.kind.rawValue),
                deviceBoundKey: factor.backupEligible == false), at: context.now)
        try await session.record.save(on: db)
        try await KnownSignInAddress.record(userID: session.userID, address: context.caller.throttleKey, now: context.now, on: db)
        try await context.on(db).audit(
            .signInSucceeded, practiceID: session.practiceID, actorID: session.userID,
            details: ["method": "enrollment", "factor": factor.shortID])
        return token
    }

    func ownFactor(_ id: UUID, session: CurrentSession) async throws -> Factor {
        guard let factor = try await Factor.query(on: context.database).filter(\.$id == id).filter(\.$user.$id == session.userID).first()
        else {
            throw FactorError.notFound
        }
        return factor
    }

    func rename(id: UUID, nickname: String, session: CurrentSession) async throws -> Factor {
        let factor = try await ownFactor(id, session: session)
        let old = factor.nickname
        factor.nickname = try Self.cleanNickname(nickname, default: "", maximum: context.policy.fields.nickname)
        guard !factor.nickname.isEmpty else { throw FactorError.invalidNickname(maximum: context.policy.fields.nickname) }
        try await factor.save(on: context.database)
        try await context.audit(
            .factorRenamed, practiceID: session.practiceID, actorID: session.userID,
            details: ["factor": factor.shortID, "from": old, "to": factor.nickname])
        return factor
    }

    func makePrimary(id: UUID, session: CurrentSession) async throws -> Factor {
        let factor = try await ownFactor(id, session: session)
        guard factor.status == .active else { throw FactorError.notFound }
        try await context.database.transaction { db in
            try await Factor.query(on: db).filter(\.$user.$id == session.userID).set(\.$isPrimary, to: false).update()
            factor.isPrimary = true
            try await factor.save(on: db)
        }
        try await context.audit(
            .factorMadePrimary, practiceID: session.practiceID, actorID: session.userID, details: ["factor": factor.shortID])
        return factor
    }

    /// Removes one factor. The primary passes to the most recently used other factor; removing the last
    /// one turns 2FA off, which is refused while 2FA is required and otherwise asks the same proof as turning
    /// 2FA off (`code`: a current code or a recovery code).
    func remove(id: UUID, code: String?, session: CurrentSession) async throws {
        let factor = try await ownFactor(id, session: session)
        let others = try await TwoFactorReset.otherActiveFactors(of: session.userID, besides: id, on: context.database)
        if factor.status == .active, others.isEmpty {
            if session.twoFactorRequired {
                throw FactorError.required(
                    "This is your only sign-in method and \(session.practice.mandatoryTwoFactor ? "your practice" : "your administrator") requires two-factor authentication. Add another method first, then remove this one."
                )
            }
            try await confirmTurningOff(code: code, session: session)
        }
        try await context.database.transaction { db in
            try await TwoFactorReset.remove(factor, remaining: others, userID: session.userID, on: db)
            try await context.on(db).audit(
                factor.kind == .webauthn ? .passkeyRemoved : .factorRemoved, practiceID: session.practiceID, actorID: session.userID,
                details: ["factor": factor.shortID, "kind": factor.kind.rawValue, "nickname": factor.nickname])
        }
    }

    /// Turns two-factor authentication off for the signed-in user, after a current code proves they hold a factor.
    func disableTwoFactor(code: String, session: CurrentSession) async throws {
        if session.twoFactorRequired {
            throw FactorError.required(
                "Your \(session.practice.mandatoryTwoFactor ? "practice requires" : "administrator requires") two-factor authentication, so it cannot be turned off. You can add or replace methods instead."
            )
        }
        let confirmedWith = try await confirmTurningOff(code: code, session: session)
        try await context.database.transaction { db in
            try await Factor.query(on: db).filter(\.$user.$id == session.userID).delete()
            try await TwoFactorReset.clearSecondaryState(userID: session.userID, on: db)
            try await context.on(db).audit(
                .twoFactorDisabled, practiceID: session.practiceID, actorID: session.userID, details: ["confirmed_with": confirmedWith])
        }
    }

    /// The proof that turning 2FA off (or removing the last method) asks for: a current code from an app or a
    /// confirmed phone, or one of the user's recovery codes (for methods that show no code). Wrong proofs count
    /// against the account like wrong codes at sign-in.
    /// - Returns: what confirmed it, for the audit log.
    @discardableResult
    func confirmTurningOff(code: String?, session: CurrentSession) async throws -> String {
        // Without a second factor the password stands alone, and must be long enough to (NIST SP 800-63B §3.1.1.2).
        guard session.user.passwordMeetsSingleFactorMinimum else { throw FactorError.passwordTooShortForOneFactor }
        let input = (code ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !input.isEmpty else { throw FactorError.proofRequired }
        let signIn = SignInService(context: context)
        if input.contains(where: \.isLetter) {
            _ = try await signIn.verifyRecoveryCode(input, session: session, countsTowardPendingSignIn: false)
            return "recovery_code"
        }
        return try await signIn.verifyCode(input, factorID: nil, session: session, countsTowardPendingSignIn: false).kind.rawValue
    }
}

/// What goes with a user's factors when 2FA is turned off or reset.
enum TwoFactorReset {
    /// The user's other active factors, which decide what removing one factor also takes with it.
    static func otherActiveFactors(of userID: UUID, besides factorID: UUID, on db: any Database) async throws -> [Factor] {
        try await Factor.query(on: db).filter(\.$user.$id == userID).filter(\.$status == .active).filter(\.$id != factorID).all()
    }

    /// Deletes one factor: "primary" passes to the most recently used remaining active factor, and when it was the
    /// user's last active factor, what goes with 2FA goes too. Used by the user, the administrator and a lost-device report.
    static func remove(_ factor: Factor, remaining others: [Factor], userID: UUID, on db: any Database) async throws {
        try await factor.delete(on: db)
        if factor.isPrimary, let successor = others.max(by: { ($0.lastUsedAt ?? .distantPast) < ($1.lastUsedAt ?? .distantPast) }) {
            successor.isPrimary = true
            try await successor.save(on: db)
        }
        if factor.status == .active, others.isEmpty {
            try await clearSecondaryState(userID: userID, on: db)
        }
    }

    static func clearSecondaryState(userID: UUID, on db: any Database) async throws {
        try await RecoveryCodeRecord.query(on: db).filter(\.$user.$id == userID).delete()
        try await RememberedBrowser.query(on: db).filter(\.$user.$id == userID).delete()
        try await SMSCode.query(on: db).filter(\.$user.$id == userID).delete()
    }
}

/// Enrollment-stage sessions are the half-signed-in state of users who must set up 2FA. Once the user has an
/// active factor, only the session that enrolled it may go on; every other one ends.
enum EnrollmentSessions {
    static func factorActivated(_ factor: Factor, on db: any Database) async throws {
        var query = SessionRecord.query(on: db).filter(\.$user.$id == factor.$user.id).filter(\.$stage == .enrollment)
        if let keep = factor.enrollmentSessionID { query = query.filter(\.$id != keep) }
        try await query.delete()
    }
}

extension FactorService.Activation {
    /// The page after a method is added on the web: the recovery codes of a first method, else Security; a sign-in
    /// that this enrollment finished gets its new session cookie.
    func page(_ req: Request) async throws -> Response {
        let response =
            if let recoveryCodes {
                try await RecoveryCodesPage.render(req, codes: recoveryCodes, firstTime: true)
            } else {
                req.redirect(to: WebPath.security, notice: .factorAdded)
            }
        if let sessionToken {
            response.cookies[req.sessionCookieName] = SessionCookie.value(sessionToken, secure: req.twofold.configuration.secureCookies)
        }
        return response
    }
}
