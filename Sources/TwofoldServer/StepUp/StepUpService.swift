import Fluent
import JWTKit
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

    var status: HTTPResponseStatus {
        switch self {
        case .invalid: .badRequest
        case .userNotFound, .notFound: .notFound
        case .noHardFactor, .closed: .conflict
        case .expired: .gone
        case .noPublicURL: .serviceUnavailable
        }
    }

    var reason: String {
        switch self {
        case .invalid(let why): why
        case .userNotFound: "There is no such user in this API key's practice."
        case .noHardFactor: "This user has no authenticator app, push device or passkey. Step-up accepts only those (never a text message, a recovery code or a remembered browser); ask the user to add one under Account › Security."
        case .notFound: "There is no such step-up request for this practice."
        case .expired: "This step-up request has expired (they last 5 minutes). Start a new one."
        case .closed(let status): "This step-up request is already \(status)."
        case .noPublicURL: "Step-up is unavailable: the server has no public address, so its assertions would have no trustworthy issuer. The operator must set TWOFOLD_PUBLIC_URL (e.g. https://2fa.example-clinic.org) and restart Twofold."
        }
    }
}

/// Step-up verification: a fresh second factor bound to one sensitive action, proven to the integrating software
/// with a signed assertion (compact JWS, ES256, signed by ``TokenSigner``) that can be collected once.
struct StepUpService {
    let request: Request

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
    }

    static let assertionLifetime: TimeInterval = 300

    // MARK: starting

    func create(key: APIKey, userID: UUID?, username: String?, action: Action) async throws -> (StepUpChallenge, [String]) {
        _ = try issuer()
        try Self.validate(action)
        let practiceID = key.$practice.id
        var query = User.query(on: request.db).filter(\.$practice.$id == practiceID)
        switch (userID, username) {
        case (let id?, nil): query = query.filter(\.$id == id)
        case (nil, let name?): query = query.filter(\.$usernameKey == User.key(for: name))
        default: throw StepUpError.invalid("Name the user with exactly one of userId or username.")
        }
        guard let user = try await query.first(), let practice = try await Practice.find(practiceID, on: request.db) else { throw StepUpError.userNotFound }
        let methods = try await methods(for: user, practice: practice)
        guard !methods.isEmpty else { throw StepUpError.noHardFactor }
        let challenge = StepUpChallenge(practiceID: practiceID, userID: user.id!, apiKeyID: key.id!, actionType: action.type.lowercased(),
                                        summary: action.summary, actionHash: action.hash, now: request.now)
        try await challenge.create(on: request.db)
        try await request.audit(.stepUpRequested, practiceID: practiceID, subjectID: user.id,
                                details: ["api_key": key.name, "step_up": challenge.shortID, "action_type": challenge.actionType, "summary": String(action.summary.prefix(200))])
        return (challenge, methods)
    }

    static func validate(_ action: Action) throws {
        guard (1...64).contains(action.type.count), action.type.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) })
        else { throw StepUpError.invalid("action.type must be 1 to 64 letters, digits, '.', '_' or '-', e.g. \"epcs\".") }
        let summary = action.summary.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...200).contains(summary.count), !summary.contains(where: \.isNewline)
        else { throw StepUpError.invalid("action.summary must be one line of 1 to 200 characters; the user sees it before approving.") }
        guard (16...128).contains(action.hash.count), action.hash.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_=+/".contains($0)) })
        else { throw StepUpError.invalid("action.hash must be 16 to 128 characters of hex or base64, e.g. the SHA-256 of the prescription.") }
    }

    /// The fresh factors step-up accepts for this user: authenticator apps, push devices and passkeys (with user verification).
    func methods(for user: User, practice: Practice) async throws -> [String] {
        let kinds = Set(try await Factor.query(on: request.db).filter(\.$user.$id == user.id!).filter(\.$status == .active).all().map(\.kind))
        var methods: [String] = []
        if kinds.contains(.totp) { methods.append("totp") }
        if kinds.contains(.push), practice.allowPush { methods.append("push") }
        if kinds.contains(.webauthn), practice.allowPasskeys { methods.append("webauthn") }
        return methods
    }

    /// A step-up of the practice; with `apiKeyID`, only one that key started (any other key gets the same 404 as for
    /// a step-up that does not exist).
    func load(_ id: UUID, practiceID: UUID, apiKeyID: UUID? = nil) async throws -> StepUpChallenge {
        var query = StepUpChallenge.query(on: request.db).filter(\.$id == id).filter(\.$practiceID == practiceID)
        if let apiKeyID { query = query.filter(\.$apiKeyID == apiKeyID) }
        guard let challenge = try await query.first() else { throw StepUpError.notFound }
        return challenge
    }

    /// Loads a step-up for the API key of this request: the practice's, and started by this very key.
    func load(_ id: UUID, for key: APIKey) async throws -> StepUpChallenge {
        try await load(id, practiceID: key.$practice.id, apiKeyID: try key.requireID())
    }

    /// The `iss` of assertions: `TWOFOLD_PUBLIC_URL`. Without it only a server under test or one reached on its own
    /// loopback address (development on one machine) uses the request's address; anywhere else the Host header is the
    /// caller's to choose, so step-up is refused until the operator sets the public address.
    func issuer() throws -> String {
        guard let issuer = Self.issuer(publicURL: request.twofold.configuration.publicURL, isTesting: request.application.environment == .testing,
                                       host: request.headers.first(name: .host), peerIsLoopback: Self.isLoopback(request.remoteAddress),
                                       requestBaseURL: request.publicBaseURL)
        else { throw StepUpError.noPublicURL }
        return issuer
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
        switch challenge.visibleStatus(now: request.now) {
        case "pending": return
        case "expired": throw StepUpError.expired
        case let other: throw StepUpError.closed(other)
        }
    }

    // MARK: proving a factor

    /// Checks a fresh authenticator code (a time step already used is refused) and marks the step-up verified.
    func verifyCode(_ challenge: StepUpChallenge, code rawCode: String) async throws {
        try ensureOpen(challenge)
        guard let code = CodeCheck.normalize(rawCode) else { throw StepUpError.invalid("code must be 6 to 8 digits.") }
        let user = try await challenge.$user.get(on: request.db)
        // The step-up's own attempts and the user's step-up counter are both reserved before the code is checked.
        let reserved = try await request.db.sql.raw("""
            UPDATE \(ident: StepUpChallenge.schema) SET failed_attempts = failed_attempts + 1
            WHERE id = \(bind: try challenge.requireID()) AND failed_attempts < \(bind: StepUpChallenge.attemptLimit) RETURNING failed_attempts
            """).first(decoding: AttemptsRow.self)
        // Every attempt is taken by checks still running: the last of them cancels the step-up if all were wrong.
        guard let attempts = reserved?.failed_attempts else { throw SignInError.wait(seconds: 1) }
        // A step-up takes only an authenticator code: never a text message or a recovery code.
        let factors = try await Factor.query(on: request.db).filter(\.$user.$id == user.id!).filter(\.$status == .active).filter(\.$kind == .totp).all()
        switch try await CodeCheck(request: request).check(code, user: user, factors: factors, smsFactor: nil, channel: .stepUp) {
        case .accepted(let factor):
            try await markVerified(challenge, amr: "otp", factor: factor)
            return
        case .replayed:
            try await request.audit(.stepUpFailed, practiceID: challenge.practiceID, subjectID: user.id, details: ["step_up": challenge.shortID, "reason": "replayed"])
            throw SignInError.codeAlreadyUsed
        case .wrong:
            break
        }
        try await request.audit(.stepUpFailed, practiceID: challenge.practiceID, subjectID: user.id,
                                details: ["step_up": challenge.shortID, "reason": "wrong_code", "attempts": String(attempts)])
        if attempts >= StepUpChallenge.attemptLimit {
            try await cancel(challenge)
            throw StepUpError.closed("cancelled after \(attempts) wrong codes")
        }
        throw SignInError.wrongCode
    }

    private struct AttemptsRow: Decodable { var failed_attempts: Int }

    /// Sends the action to the user's push device; the device shows the summary, the user matches the number.
    func startPush(_ challenge: StepUpChallenge, factorID: UUID?) async throws -> PushChallenge {
        try ensureOpen(challenge)
        let user = try await challenge.$user.get(on: request.db)
        guard let practice = try await Practice.find(challenge.practiceID, on: request.db) else { throw StepUpError.notFound }
        return try await PushService(request: request).startChallenge(user: user, practice: practice, factorID: factorID, purpose: .stepUp,
                                                                     stepUpID: challenge.id, action: challenge.summary)
    }

    /// Takes in the answer of a push request for this step-up, if one came.
    func collectPush(_ challenge: StepUpChallenge) async throws {
        guard challenge.visibleStatus(now: request.now) == "pending" else { return }
        let pushes = try await PushChallenge.query(on: request.db).filter(\.$stepUpID == challenge.id!).filter(\.$status != .pending).all()
        let push = PushService(request: request)
        if let approved = pushes.first(where: { $0.status == .approved && $0.consumedAt == nil }), try await push.consume(approved) {
            try await markVerified(challenge, amr: "push", factor: try await approved.$factor.get(on: request.db))
        } else if pushes.contains(where: { $0.status == .denied }) {
            try await cancel(challenge)
        }
    }

    /// Request options for proving the step-up with a passkey (user verification required).
    func passkeyOptions(_ challenge: StepUpChallenge) async throws -> RequestOptionsJSON {
        try ensureOpen(challenge)
        return try await PasskeyService(request: request).stepUpOptions(for: challenge)
    }

    /// Checks a passkey assertion for this step-up: the key plus the user's PIN or biometric (amr `hwk`/`swk` and `user`).
    func verifyPasskey(_ challenge: StepUpChallenge, assertion: AuthenticationResponseJSON) async throws {
        try ensureOpen(challenge)
        do {
            let factor = try await PasskeyService(request: request).verifyStepUp(assertion, for: challenge)
            try await markVerified(challenge, amr: Self.passkeyAMR(for: factor).joined(separator: " "), factor: factor)
        } catch let error as PasskeyError {
            try await request.audit(.stepUpFailed, practiceID: challenge.practiceID, subjectID: challenge.$user.id,
                                    details: ["step_up": challenge.shortID, "reason": "passkey", "detail": error.reason])
            throw error
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
        let now = request.now
        let rows = try await request.db.sql.raw("""
            UPDATE \(ident: StepUpChallenge.schema) SET status = 'verified', amr = \(bind: amr), auth_time = \(bind: now)
            WHERE id = \(bind: challenge.id!) AND status = 'pending' AND expires_at > \(bind: now) RETURNING id
            """).all()
        guard !rows.isEmpty else { throw StepUpError.closed("verified or closed") }
        challenge.status = .verified
        challenge.amr = amr
        challenge.authTime = now
        try await request.audit(.stepUpVerified, practiceID: challenge.practiceID, subjectID: challenge.$user.id,
                                details: ["step_up": challenge.shortID, "amr": amr, "factor": factor.shortID, "action_type": challenge.actionType])
    }

    private func cancel(_ challenge: StepUpChallenge) async throws {
        try await request.db.sql.raw("UPDATE \(ident: StepUpChallenge.schema) SET status = 'cancelled' WHERE id = \(bind: challenge.id!) AND status = 'pending'").run()
        challenge.status = .cancelled
    }

    // MARK: the assertion

    /// Signs the assertion of a verified step-up; only the first caller gets one.
    func issueAssertion(_ challenge: StepUpChallenge) async throws -> String? {
        let issuerURL = try issuer()
        let now = request.now
        let rows = try await request.db.sql.raw("""
            UPDATE \(ident: StepUpChallenge.schema) SET status = 'completed'
            WHERE id = \(bind: challenge.id!) AND status = 'verified' AND expires_at > \(bind: now) RETURNING id
            """).all()
        guard !rows.isEmpty else { return nil }
        challenge.status = .completed
        let claims = Claims(
            iss: issuerURL, aud: challenge.apiKeyID.uuidString, sub: challenge.$user.id.uuidString, practice: challenge.practiceID.uuidString,
            amr: (challenge.amr ?? "otp").split(separator: " ").map(String.init), auth_time: Int64((challenge.authTime ?? now).timeIntervalSince1970),
            action_type: challenge.actionType, action_hash: challenge.actionHash, jti: challenge.id!.uuidString,
            iat: Int64(now.timeIntervalSince1970), exp: Int64(now.addingTimeInterval(Self.assertionLifetime).timeIntervalSince1970))
        return try await request.tokenSigner.sign(claims, algorithm: .es256)
    }
}

/// The integrator checks `exp`, `iss` and `aud` against its own clock and key id; Twofold only signs.
extension StepUpService.Claims: JWTPayload {
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

extension StepUpChallenge {
    var shortID: String { String((id?.uuidString ?? "").prefix(8)) }
}
