import Fluent
import JWTKit
import NIOConcurrencyHelpers
import NIOCore
import SQLKit
import TwofoldCore
import Vapor

enum StepUpError: AbortError, Equatable {
    case invalid(String)
    case userNotFound
    case noHardFactor
    case notFound
    case expired
    case closed(String)
    case noPublicURL
    case passwordRequired
    case wrongPassword
    case ineligibleDevice

    var status: HTTPResponseStatus {
        switch self {
        case .invalid: .badRequest
        case .userNotFound, .notFound: .notFound
        case .noHardFactor, .closed: .conflict
        case .expired: .gone
        case .noPublicURL: .serviceUnavailable
        case .passwordRequired: .badRequest
        case .wrongPassword: .unauthorized
        case .ineligibleDevice: .forbidden
        }
    }

    var reason: String {
        switch self {
        case .invalid(let why): why
        case .userNotFound: "There is no such user in this API key's practice."
        case .noHardFactor:
            "This user has no authenticator app, push device or passkey. Step-up accepts only those (never a text message, a recovery code or a remembered browser); ask the user to add one under Account › Security."
        case .notFound: "There is no such step-up request for this practice."
        case .expired: "This step-up request has expired (they last 5 minutes). Start a new one."
        case .closed(let status): "This step-up request is already \(status)."
        case .passwordRequired:
            "Signing a controlled-substance prescription needs two factors at this moment: your password and a hard token (21 CFR 1311.115). Enter your password too."
        case .wrongPassword: "The password is not correct."
        case .ineligibleDevice:
            "This device does not count for signing controlled-substance prescriptions in your practice (text messages, recovery codes and synced passkeys never do). Use a device listed as EPCS-eligible under Account › Security."
        case .noPublicURL:
            "Step-up is unavailable: the server has no public address, so its assertions would have no trustworthy issuer. The operator must set TWOFOLD_PUBLIC_URL (e.g. https://2fa.example-clinic.org) and restart Twofold."
        }
    }
}

/// Step-up verification: a fresh second factor bound to one sensitive action, proven to the integrating software
/// with a signed assertion (compact JWS, ES256, signed by ``TokenSigner``) that can be collected once.
struct StepUpService {
    let context: ServiceContext
    /// The `iss` of assertions as the caller worked it out (``Vapor/Request/stepUpIssuer``): nil when this server has
    /// no trustworthy public address, and step-up is then refused (``issuer()``).
    let publicIssuer: String?
    /// The EPCS grants this service has loaded, by id: each is read once however many steps need it.
    private let loadedGrants = NIOLockedValueBox<[UUID: EPCSGrant]>([:])

    init(context: ServiceContext, publicIssuer: String?) {
        self.context = context
        self.publicIssuer = publicIssuer
    }

    private var db: any Database { context.database }

    /// The practice's EPCS rules on this context's database and clock.
    private var epcsRules: EPCSRules {
        EPCSRules(
            database: context.database, now: context.now,
            trustAnchorsConfigured: !context.configuration.relyingParty.trustAnchors.isEmpty)
    }

    struct Action: Content {
        var type: String
        var summary: String
        var hash: String
    }

    struct Claims: Codable, Equatable {
        var iss: String
        /// The id of the API key that started the step-up: only that integrator should accept the assertion.
        var aud: String
        var sub: String
        var practice: String
        var amr: [String]
        var auth_time: Int64
        var action_type: String
        var action_hash: String
        var jti: String
        var iat: Int64
        var exp: Int64
        /// Present only for `action_type` "epcs": what the prescriber signed with and under which permission.
        var epcs: EPCSClaim? = nil
    }

    /// The EPCS part of an assertion (21 CFR 1311.140): the grant and DEA number the prescriber signed under, the
    /// SHA-256 of the attestation document they were shown, and the two factor categories they proved.
    struct EPCSClaim: Codable, Equatable {
        var dea_number: String
        var grant_id: String
        var attestation_sha256: String
        var factors: [String]
    }

    // MARK: starting

    func create(key: APIKey, userID: UUID?, username: String?, action: Action) async throws -> (StepUpChallenge, [String]) {
        _ = try issuer()
        try Self.validate(action)
        let practiceID = key.$practice.id
        var query = User.query(on: db).filter(\.$practice.$id == practiceID)
        switch (userID, username) {
        case (let id?, nil): query = query.filter(\.$id == id)
        case (nil, let name?): query = query.filter(\.$usernameKey == User.key(for: name))
        default: throw StepUpError.invalid("Name the user with exactly one of userId or username.")
        }
        guard let user = try await query.first(), let practice = try await Practice.find(practiceID, on: db) else {
            throw StepUpError.userNotFound
        }
        let challenge = try StepUpChallenge(
            practiceID: practiceID, userID: user.requireID(), apiKeyID: key.requireID(), actionType: action.type.lowercased(),
            summary: action.summary, actionHash: action.hash, now: context.now,
            lifetime: context.policy.stepUp.challengeLifetime)
        if challenge.isEPCS {
            // §1311.125: only a prescriber two approvers gave permission may sign; anyone else is an attempted
            // unauthorized access, recorded for the daily report.
            guard let grant = try await epcsRules.activeGrant(userID: user.requireID()) else {
                try await context.audit(
                    .epcsUnauthorizedAttempt, practiceID: practiceID, subjectID: user.id,
                    details: [
                        "api_key": key.name, "action": "epcs_step_up", "summary": String(action.summary.prefix(200)),
                        "reason": "no active EPCS permission",
                    ])
                throw EPCSError.notPermitted
            }
            challenge.epcsGrantID = grant.id
            challenge.attestationHash = EPCS.attestationHash(
                EPCS.attestationDocument(summary: action.summary, practitioner: user.fullName, deaNumber: grant.deaNumber))
        }
        let methods = try await methods(for: user, practice: practice, epcs: challenge.isEPCS)
        guard !methods.isEmpty else { throw challenge.isEPCS ? EPCSError.noEligibleToken : StepUpError.noHardFactor }
        try await challenge.create(on: db)
        try await context.audit(
            .stepUpRequested, practiceID: practiceID, subjectID: user.id,
            details: [
                "api_key": key.name, "step_up": challenge.shortID, "action_type": challenge.actionType,
                "summary": String(action.summary.prefix(200)),
            ])
        return (challenge, methods)
    }

    static func validate(_ action: Action) throws {
        guard (1...64).contains(action.type.count),
            action.type.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) })
        else { throw StepUpError.invalid("action.type must be 1 to 64 letters, digits, '.', '_' or '-', e.g. \"epcs\".") }
        if action.type.lowercased() == StepUpChallenge.epcsActionType {
            // One or more prescriptions, one per line, shown above the attestation (§1311.140(a)(1)).
            if let problem = EPCS.summaryProblem(action.summary) { throw StepUpError.invalid(problem) }
        } else {
            let summary = action.summary.trimmingCharacters(in: .whitespacesAndNewlines)
            guard (1...200).contains(summary.count), !summary.contains(where: \.isNewline)
            else { throw StepUpError.invalid("action.summary must be one line of 1 to 200 characters; the user sees it before approving.") }
        }
        guard (16...128).contains(action.hash.count),
            action.hash.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_=+/".contains($0)) })
        else {
            throw StepUpError.invalid("action.hash must be 16 to 128 characters of hex or base64, e.g. the SHA-256 of the prescription.")
        }
    }

    /// The fresh factors step-up accepts for this user: authenticator apps, push devices and passkeys (with user verification).
    /// For an EPCS signing only the practice's EPCS-eligible hard tokens count.
    func methods(for user: User, practice: Practice, epcs: Bool = false) async throws -> [String] {
        let kinds: Set<Factor.Kind>
        if epcs {
            let factors = try await Factor.query(on: db).filter(\.$user.$id == user.requireID()).filter(\.$status == .active).all()
            kinds = Set(factors.filter { epcsRules.isEligible($0, practice: practice) }.map(\.kind))
        } else {
            kinds = try await Factor.activeKinds(of: user.requireID(), on: db)
        }
        var methods: [String] = []
        if kinds.contains(.totp) { methods.append("totp") }
        if kinds.contains(.push), practice.allowPush { methods.append("push") }
        if kinds.contains(.webauthn), practice.allowPasskeys { methods.append("webauthn") }
        return methods
    }

    /// A step-up of the practice; with `apiKeyID`, only one that key started (any other key gets the same 404 as for
    /// a step-up that does not exist).
    func load(_ id: UUID, practiceID: UUID, apiKeyID: UUID? = nil) async throws -> StepUpChallenge {
        var query = StepUpChallenge.query(on: db).filter(\.$id == id).filter(\.$practiceID == practiceID)
        if let apiKeyID { query = query.filter(\.$apiKeyID == apiKeyID) }
        guard let challenge = try await query.first() else { throw StepUpError.notFound }
        return challenge
    }

    /// Loads a step-up for an API key: one of its practice, started by this very key.
    func load(_ id: UUID, for key: APIKey) async throws -> StepUpChallenge {
        try await load(id, practiceID: key.$practice.id, apiKeyID: try key.requireID())
    }

    /// The `iss` of assertions (``publicIssuer``); step-up is refused while the server has no trustworthy public address.
    func issuer() throws -> String {
        guard let publicIssuer else { throw StepUpError.noPublicURL }
        return publicIssuer
    }

    static func issuer(publicURL: String?, isTesting: Bool, host: String?, peerIsLoopback: Bool, requestBaseURL: String) -> String? {
        if let publicURL { return publicURL }
        if isTesting { return requestBaseURL }
        guard peerIsLoopback, let host, ClientAddress.isLoopbackHost(host) else { return nil }
        return requestBaseURL
    }

    static func isLoopback(_ address: SocketAddress?) -> Bool {
        guard let ip = address?.ipAddress?.lowercased() else { return false }
        return ip.hasPrefix("127.") || ip == "::1" || ip.hasPrefix("::ffff:127.")
    }

    private func ensureOpen(_ challenge: StepUpChallenge) throws {
        switch challenge.visibleStatus(now: context.now) {
        case "pending": return
        case "expired": throw StepUpError.expired
        case let other: throw StepUpError.closed(other)
        }
    }

    // MARK: proving a factor

    /// Checks a fresh authenticator code (a time step already used is refused) and marks the step-up verified.
    /// For an EPCS signing `password` is the knowledge factor and must be right as well (§1311.115).
    func verifyCode(_ challenge: StepUpChallenge, code rawCode: String, password: String? = nil) async throws {
        try ensureOpen(challenge)
        guard let code = SecondFactorCheck.normalize(rawCode) else { throw StepUpError.invalid("code must be 6 to 8 digits.") }
        if challenge.isEPCS, password?.isEmpty ?? true { throw StepUpError.passwordRequired }
        let user = try await challenge.$user.get(on: db)
        let attempts = try await reserveAttempt(challenge)
        var factors = try await Factor.query(on: db).filter(\.$user.$id == user.requireID()).filter(\.$status == .active).filter(
            \.$kind == .totp
        ).all()
        if challenge.isEPCS {
            let practice = try await practice(of: challenge)
            try await checkKnowledge(challenge, user: user, password: password, attempts: attempts)
            factors = factors.filter { epcsRules.isEligible($0, practice: practice) }
            guard !factors.isEmpty else { throw StepUpError.ineligibleDevice }
        }
        // A step-up takes only an authenticator code: never a text message or a recovery code.
        switch try await SecondFactorCheck(context: context).check(code, user: user, factors: factors, smsFactor: nil, channel: .stepUp) {
        case .accepted(let factor):
            // An EPCS signing proved the password too (checked above): the assertion names both factors.
            try await markVerified(challenge, amr: challenge.isEPCS ? "pwd otp" : "otp", factor: factor)
            return
        case .replayed:
            try await failed(challenge, reason: "replayed", attempts: attempts)
            throw SignInError.codeAlreadyUsed
        case .wrong:
            try await failed(challenge, reason: "wrong_code", attempts: attempts)
            throw SignInError.wrongCode
        }
    }

    /// Reserves one of the step-up's attempts before any factor is checked: a parallel burst evaluates at most the
    /// limit; every attempt taken by checks still running answers "wait".
    private func reserveAttempt(_ challenge: StepUpChallenge) async throws -> Int {
        let limit = context.policy.stepUp.guessesPerChallenge
        let reserved = try await db.sql.raw(
            """
            UPDATE \(ident: StepUpChallenge.schema) SET failed_attempts = failed_attempts + 1
            WHERE id = \(bind: try challenge.requireID()) AND failed_attempts < \(bind: limit) RETURNING failed_attempts
            """
        ).first(decoding: AttemptsRow.self)
        guard let attempts = reserved?.failed_attempts else { throw SignInError.wait(seconds: 1) }
        return attempts
    }

    /// Records a failed proof; the last allowed attempt cancels the step-up.
    private func failed(_ challenge: StepUpChallenge, reason: String, attempts: Int?, detail: String? = nil) async throws {
        var details = ["step_up": challenge.shortID, "reason": reason]
        if let attempts { details["attempts"] = String(attempts) }
        if let detail { details["detail"] = detail }
        try await context.audit(.stepUpFailed, practiceID: challenge.practiceID, subjectID: challenge.$user.id, details: details)
        if challenge.isEPCS {
            details["action_hash"] = challenge.actionHash
            try await context.audit(.epcsSigningFailed, practiceID: challenge.practiceID, subjectID: challenge.$user.id, details: details)
        }
        if let attempts, attempts >= context.policy.stepUp.guessesPerChallenge {
            try await cancel(challenge)
            throw StepUpError.closed("cancelled after \(attempts) failed attempts")
        }
    }

    private func practice(of challenge: StepUpChallenge) async throws -> Practice {
        guard let practice = try await Practice.find(challenge.practiceID, on: db) else { throw StepUpError.notFound }
        return practice
    }

    /// The knowledge factor of an EPCS signing: the prescriber's password, guessed at most the account's password
    /// allowance (reserved before bcrypt runs), and the grant must still permit signing at this moment.
    private func checkKnowledge(_ challenge: StepUpChallenge, user: User, password: String?, attempts: Int) async throws {
        guard let password, !password.isEmpty else { throw StepUpError.passwordRequired }
        guard try await epcsRules.activeGrant(userID: user.requireID())?.id == challenge.epcsGrantID else {
            try await context.audit(
                .epcsUnauthorizedAttempt, practiceID: challenge.practiceID, subjectID: user.id,
                details: ["action": "epcs_step_up", "step_up": challenge.shortID, "reason": "EPCS permission revoked or expired"])
            try await cancel(challenge)
            throw EPCSError.notPermitted
        }
        let throttle = ThrottleStore(database: db)
        let key = "step_up_password:user:\(try user.requireID().uuidString.lowercased())"
        if let seconds = try await throttle.reserve(key, limit: context.policy.signIn.passwordPerAccount, now: context.now).retryAfter {
            try await failed(challenge, reason: "password_throttled", attempts: nil)
            throw SignInError.passwordThrottled(retryAfter: seconds)
        }
        guard await context.passwords.verify(password, against: user.passwordHash) else {
            try await failed(challenge, reason: "wrong_password", attempts: attempts)
            throw StepUpError.wrongPassword
        }
        try await throttle.release(key, limit: context.policy.signIn.passwordPerAccount, now: context.now)
    }

    /// Checks the password of an EPCS signing before a push or passkey proof, and records that it was checked.
    private func verifyKnowledge(_ challenge: StepUpChallenge, password: String?) async throws {
        guard challenge.isEPCS else { return }
        guard let password, !password.isEmpty else { throw StepUpError.passwordRequired }
        let user = try await challenge.$user.get(on: db)
        let attempts = try await reserveAttempt(challenge)
        try await checkKnowledge(challenge, user: user, password: password, attempts: attempts)
        challenge.knowledgeVerifiedAt = context.now
        try await challenge.save(on: db)
    }

    /// The EPCS grant an EPCS step-up signs under; loaded once per service however many steps need it.
    func epcsGrant(of challenge: StepUpChallenge) async throws -> EPCSGrant? {
        guard challenge.isEPCS, let grantID = challenge.epcsGrantID else { return nil }
        if let loaded = loadedGrants.withLockedValue({ $0[grantID] }) { return loaded }
        guard let grant = try await EPCSGrant.find(grantID, on: db) else { return nil }
        loadedGrants.withLockedValue { $0[grantID] = grant }
        return grant
    }

    /// The exact text the prescriber is shown for an EPCS signing (nil for other actions).
    func attestationDocument(_ challenge: StepUpChallenge) async throws -> String? {
        guard let grant = try await epcsGrant(of: challenge) else { return nil }
        let user = try await challenge.$user.get(on: db)
        return EPCS.attestationDocument(summary: challenge.summary, practitioner: user.fullName, deaNumber: grant.deaNumber)
    }

    private struct AttemptsRow: Decodable { var failed_attempts: Int }

    /// Sends the action to the user's push device; the device shows the summary, the user matches the number.
    /// For an EPCS signing the password comes first, and the device shows the whole attestation document.
    func startPush(_ challenge: StepUpChallenge, factorID: UUID?, password: String? = nil) async throws -> PushChallenge {
        try ensureOpen(challenge)
        let user = try await challenge.$user.get(on: db)
        let practice = try await practice(of: challenge)
        if challenge.isEPCS, !EPCS.Token.list(practice.epcsTokens).contains(.push) { throw StepUpError.ineligibleDevice }
        try await verifyKnowledge(challenge, password: password)
        return try await PushService(context: context).startChallenge(
            user: user, practice: practice, factorID: factorID, purpose: .stepUp,
            stepUpID: challenge.id, action: try await attestationDocument(challenge) ?? challenge.summary)
    }

    /// Takes in the answer of a push request for this step-up, if one came.
    func collectPush(_ challenge: StepUpChallenge) async throws {
        guard challenge.visibleStatus(now: context.now) == "pending" else { return }
        let challengeID = try challenge.requireID()
        let pushes = try await PushChallenge.query(on: db).filter(\.$stepUpID == challengeID).filter(\.$status != .pending).all()
        let push = PushService(context: context)
        if let approved = pushes.first(where: { $0.status == .approved && $0.consumedAt == nil }), try await push.consume(approved) {
            // An EPCS push was sent only after the password was checked (``startPush``).
            let amr = challenge.isEPCS ? (challenge.knowledgeVerifiedAt == nil ? nil : "pwd push") : "push"
            guard let amr else { return }
            try await markVerified(challenge, amr: amr, factor: try await approved.$factor.get(on: db))
        } else if pushes.contains(where: { $0.status == .denied }) {
            try await cancel(challenge)
        }
    }

    /// Request options for proving the step-up with a passkey (user verification required).
    func passkeyOptions(_ challenge: StepUpChallenge) async throws -> RequestOptionsJSON {
        try ensureOpen(challenge)
        return try await PasskeyService(context: context).stepUpOptions(for: challenge)
    }

    /// Checks a passkey assertion for this step-up: the key plus the user's PIN or biometric (amr `hwk`/`swk` and `user`).
    /// For an EPCS signing the password must be right too and the key must be an EPCS-eligible security key; its
    /// PIN or biometric unlocks the key and is not counted as a factor of its own (§1311.116).
    func verifyPasskey(_ challenge: StepUpChallenge, assertion: AuthenticationResponseJSON, password: String? = nil) async throws {
        try ensureOpen(challenge)
        try await verifyKnowledge(challenge, password: password)
        let factor: Factor
        do {
            factor = try await PasskeyService(context: context).verifyStepUp(assertion, for: challenge)
        } catch let error as PasskeyError {
            try await failed(challenge, reason: "passkey", attempts: nil, detail: error.reason)
            throw error
        }
        if challenge.isEPCS {
            guard epcsRules.isEligible(factor, practice: try await practice(of: challenge)) else {
                try await failed(challenge, reason: "ineligible_device", attempts: nil, detail: factor.shortID)
                throw StepUpError.ineligibleDevice
            }
            try await markVerified(challenge, amr: (["pwd"] + Self.passkeyAMR(for: factor)).joined(separator: " "), factor: factor)
        } else {
            try await markVerified(challenge, amr: Self.passkeyAMR(for: factor).joined(separator: " "), factor: factor)
        }
    }

    /// RFC 8176 method references for a user-verified passkey: `hwk` (proof of possession of a hardware-secured key)
    /// only for a device-bound credential, whose authenticator said at registration it cannot be backed up (the
    /// backup-eligible flag clear); a synced passkey, or one registered before the flag was kept, is a software-secured
    /// key (`swk`) as far as Twofold can tell.
    static func passkeyAMR(for factor: Factor) -> [String] {
        [factor.backupEligible == false ? "hwk" : "swk", "user"]
    }

    private func markVerified(_ challenge: StepUpChallenge, amr: String, factor: Factor) async throws {
        let now = context.now
        let challengeID = try challenge.requireID()
        let rows = try await db.sql.raw(
            """
            UPDATE \(ident: StepUpChallenge.schema) SET status = 'verified', amr = \(bind: amr), auth_time = \(bind: now)
            WHERE id = \(bind: challengeID) AND status = 'pending' AND expires_at > \(bind: now) RETURNING id
            """
        ).all()
        guard !rows.isEmpty else { throw StepUpError.closed("verified or closed") }
        challenge.status = .verified
        challenge.amr = amr
        challenge.authTime = now
        try await context.audit(
            .stepUpVerified, practiceID: challenge.practiceID, subjectID: challenge.$user.id,
            details: ["step_up": challenge.shortID, "amr": amr, "factor": factor.shortID, "action_type": challenge.actionType])
        if challenge.isEPCS {
            let grant = try await epcsGrant(of: challenge)
            try await context.audit(
                .epcsSigningCompleted, practiceID: challenge.practiceID, subjectID: challenge.$user.id,
                details: [
                    "step_up": challenge.shortID, "amr": amr, "factor": factor.shortID, "kind": factor.kind.rawValue,
                    "action_hash": challenge.actionHash,
                    "attestation_sha256": challenge.attestationHash ?? "", "dea": grant.flatMap { DEANumber($0.deaNumber)?.masked } ?? "",
                    "summary": String(challenge.summary.prefix(200)),
                ])
        }
    }

    private func cancel(_ challenge: StepUpChallenge) async throws {
        let challengeID = try challenge.requireID()
        try await db.sql.raw(
            "UPDATE \(ident: StepUpChallenge.schema) SET status = 'cancelled' WHERE id = \(bind: challengeID) AND status = 'pending'"
        ).run()
        challenge.status = .cancelled
    }

    // MARK: the assertion

    private func epcsClaim(_ challenge: StepUpChallenge) async throws -> EPCSClaim? {
        guard let grant = try await epcsGrant(of: challenge) else { return nil }
        return EPCSClaim(
            dea_number: grant.deaNumber, grant_id: try grant.requireID().uuidString, attestation_sha256: challenge.attestationHash ?? "",
            factors: ["knowledge", "hard_token"])
    }

    /// Signs the assertion of a verified step-up; only the first caller gets one.
    func issueAssertion(_ challenge: StepUpChallenge) async throws -> String? {
        let issuerURL = try issuer()
        let now = context.now
        let challengeID = try challenge.requireID()
        let rows = try await db.sql.raw(
            """
            UPDATE \(ident: StepUpChallenge.schema) SET status = 'completed'
            WHERE id = \(bind: challengeID) AND status = 'verified' AND expires_at > \(bind: now) RETURNING id
            """
        ).all()
        guard !rows.isEmpty else { return nil }
        challenge.status = .completed
        let claims = Claims(
            iss: issuerURL, aud: challenge.apiKeyID.uuidString, sub: challenge.$user.id.uuidString,
            practice: challenge.practiceID.uuidString,
            amr: (challenge.amr ?? "otp").split(separator: " ").map(String.init),
            auth_time: Int64((challenge.authTime ?? now).timeIntervalSince1970),
            action_type: challenge.actionType, action_hash: challenge.actionHash, jti: challengeID.uuidString,
            iat: Int64(now.timeIntervalSince1970),
            exp: Int64(now.addingTimeInterval(context.policy.stepUp.assertionLifetime).timeIntervalSince1970),
            epcs: try await epcsClaim(challenge))
        return try await TokenSigner(database: db, sealer: context.sealer, now: now).sign(claims, algorithm: .es256)
    }
}

/// The integrator checks `exp`, `iss` and `aud` against its own clock and key id; Twofold only signs.
extension StepUpService.Claims: JWTPayload {
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

extension StepUpChallenge {
    var shortID: String { String((id?.uuidString ?? "").prefix(8)) }
}

extension Request {
    /// The `iss` of step-up assertions: `TWOFOLD_PUBLIC_URL`. Without it only a server under test or one reached on its
    /// own loopback address (development on one machine) uses this request's address; anywhere else the Host header is
    /// the caller's to choose, so there is none (and step-up is refused) until the operator sets the public address.
    var stepUpIssuer: String? {
        StepUpService.issuer(
            publicURL: twofold.configuration.publicURL, isTesting: application.environment == .testing,
            host: headers.first(name: .host), peerIsLoopback: StepUpService.isLoopback(remoteAddress), requestBaseURL: publicBaseURL)
    }
}
