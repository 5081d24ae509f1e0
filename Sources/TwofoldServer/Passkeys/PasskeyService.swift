import Fluent
import Foundation
import TwofoldCore
import Vapor

/// The passkey ceremonies: adding a passkey, using it as the second factor, passwordless sign-in and step-up.
/// Verification itself lives in TwofoldCore (``RelyingParty``); this type binds challenges to users and sessions,
/// keeps signature counters and audits.
struct PasskeyService {
    let context: ServiceContext
    private var db: any Database { context.database }

    var party: RelyingParty { context.configuration.relyingParty }

    /// The WebAuthn user handle: the user's id as 16 opaque bytes (no name or e-mail in it).
    static func userHandle(_ id: UUID) -> [UInt8] {
        withUnsafeBytes(of: id.uuid) { Array($0) }
    }

    func passkeys(of userID: UUID) async throws -> [Factor] {
        try await Factor.query(on: db).filter(\.$user.$id == userID).filter(\.$kind == .webauthn).filter(\.$status == .active)
            .sort(\.$createdAt).all()
    }

    static func descriptor(_ factor: Factor) -> CredentialDescriptorJSON {
        CredentialDescriptorJSON(id: factor.credentialID ?? "", transports: factor.transports?.split(separator: ",").map(String.init))
    }

    private func issue(_ purpose: WebAuthnChallenge.Purpose, userID: UUID?, contextID: UUID?, userVerification: Bool) async throws
        -> [UInt8]
    {
        let challenge = context.random.bytes(RelyingParty.challengeLength)
        try await WebAuthnChallenge.prune(now: context.now, on: db)
        try await WebAuthnChallenge(
            challenge: challenge, purpose: purpose, userID: userID, contextID: contextID,
            userVerificationRequired: userVerification, now: context.now, lifetime: context.policy.passkeys.challengeLifetime
        ).create(on: db)
        return challenge
    }

    /// Finds and uses up the challenge a browser response answers; nil when it is unknown, expired or used.
    private func consume(answeredBy clientDataJSON: String, purpose: WebAuthnChallenge.Purpose) async throws -> (WebAuthnChallenge, [UInt8])
    {
        let bytes: [UInt8]
        do { bytes = try RelyingParty.challenge(inClientData: clientDataJSON) } catch let error as WebAuthnError {
            throw PasskeyError.rejected(error)
        }
        guard let challenge = try await WebAuthnChallenge.consume(bytes, purpose: purpose, now: context.now, on: db) else {
            throw PasskeyError.challengeUnknown
        }
        return (challenge, bytes)
    }

    // MARK: adding a passkey

    /// Creation options for the signed-in (or enrolling) user; existing passkeys are excluded so one authenticator
    /// is not registered twice. A discoverable credential is preferred so it can later sign in without a password.
    func registrationOptions(session: CurrentSession) async throws -> CreationOptionsJSON {
        guard session.practice.allowPasskeys else { throw PasskeyError.notAllowed }
        let existing = try await passkeys(of: session.userID)
        let challenge = try await issue(.registration, userID: session.userID, contextID: session.record.id, userVerification: false)
        var party = party
        party.name = session.practice.name
        let user = session.user
        let displayName = "\(user.firstName) \(user.lastName)".trimmingCharacters(in: .whitespaces)
        return party.creationOptions(
            challenge: challenge, userHandle: Self.userHandle(session.userID), userName: user.username,
            displayName: displayName.isEmpty ? user.username : displayName,
            excluding: existing.map(Self.descriptor), residentKey: .preferred, userVerification: "preferred")
    }

    /// Verifies a new credential and adds it as an active method (the first method becomes primary and brings recovery codes).
    func register(_ credential: RegistrationResponseJSON, nickname: String?, session: CurrentSession) async throws
        -> FactorService.Activation
    {
        guard session.practice.allowPasskeys else { throw PasskeyError.notAllowed }
        let name = try FactorService.cleanNickname(
            nickname, default: try await FactorService(context: context).defaultNickname(kind: .webauthn, userID: session.userID),
            maximum: context.policy.fields.nickname)
        let (challenge, bytes) = try await consume(answeredBy: credential.response.clientDataJSON, purpose: .registration)
        guard challenge.userID == session.userID, challenge.contextID == session.record.id else { throw PasskeyError.challengeUnknown }
        let registered: RelyingParty.RegisteredCredential
        do {
            registered = try await party.verifyRegistration(credential, challenge: bytes, requireUserVerification: false, now: context.now)
        } catch let error as WebAuthnError {
            try await context.audit(
                .passkeyRejected, practiceID: session.practiceID, actorID: session.userID,
                details: ["ceremony": "registration", "reason": error.description])
            throw PasskeyError.rejected(error)
        }
        let credentialID = Base64URL.encode(registered.credentialID)
        guard try await Factor.query(on: db).filter(\.$credentialID == credentialID).first() == nil else {
            throw PasskeyError.alreadyRegistered
        }
        let factor = Factor(userID: session.userID, kind: .webauthn, nickname: name)
        factor.credentialID = credentialID
        factor.publicKey = Data(registered.publicKey)
        factor.signCount = Int64(registered.signCount)
        factor.transports = registered.transports.joined(separator: ",")
        factor.aaguid = registered.aaguid
        factor.backupEligible = registered.backupEligible
        factor.backedUp = registered.backedUp
        factor.attestation = "\(registered.attestationFormat)/\(registered.attestationType.rawValue)"
        factor.enrollmentSessionID = session.record.id
        try await factor.create(on: db)
        let activation = try await FactorService(context: context).turnOn(factor, session: session)
        try await context.audit(
            .passkeyAdded, practiceID: session.practiceID, actorID: session.userID,
            details: [
                "factor": factor.shortID, "nickname": name, "aaguid": registered.aaguid, "attestation": factor.attestation ?? "",
                "synced": String(registered.backupEligible), "user_verified": String(registered.userVerified),
            ])
        return activation
    }

    // MARK: signing in

    /// Request options: for a half-signed-in user, their passkeys; with no session, a passwordless ceremony
    /// (discoverable credentials, user verification required) when some practice allows it.
    func signInOptions(session: CurrentSession?) async throws -> RequestOptionsJSON {
        if let session {
            guard session.record.stage == .secondFactor else { throw PasskeyError.alreadySignedIn }
            let passkeys = try await passkeys(of: session.userID)
            guard !passkeys.isEmpty else { throw PasskeyError.noPasskeys }
            let challenge = try await issue(.secondFactor, userID: session.userID, contextID: session.record.id, userVerification: false)
            return party.requestOptions(challenge: challenge, allowing: passkeys.map(Self.descriptor), userVerification: "preferred")
        }
        guard try await Practice.query(on: db).filter(\.$allowPasswordless == true).first() != nil else {
            throw PasskeyError.passwordlessOff
        }
        let throttle = ThrottleStore(database: db)
        let key = "passkey:options:ip:\(context.caller.throttleKey)"
        if let seconds = try await throttle.reserve(key, limit: context.policy.passkeys.optionsPerAddress, now: context.now).retryAfter {
            throw SignInError.passwordThrottled(retryAfter: seconds)
        }
        let challenge = try await issue(.passwordless, userID: nil, contextID: nil, userVerification: true)
        return party.requestOptions(challenge: challenge, allowing: [], userVerification: "required")
    }

    /// Checks a passkey assertion as the second step of sign-in. Failures count against the account like wrong codes.
    func verifySecondFactor(_ assertion: AuthenticationResponseJSON, session: CurrentSession) async throws -> Factor {
        try await verifyOwnPasskey(
            assertion, purpose: .secondFactor, contextID: session.record.id, user: session.user, practice: session.practice,
            requireUserVerification: false, ceremony: "sign_in", channel: .signIn, pendingSession: session)
    }

    /// Passwordless sign-in: the credential names its user (user handle); user verification stands in for the password.
    /// The session the request came with (`replacing`) is ended once the passkey signs in.
    func passwordless(
        _ assertion: AuthenticationResponseJSON, channel: SessionRecord.Channel, replacing presented: SignInService.PresentedSession?
    ) async throws -> SignInService.Started {
        // Passwordless assertions name no user until they are checked, so their failures count per address; the
        // attempt is reserved first and given back when the passkey signs in.
        let throttle = ThrottleStore(database: db)
        let key = "passkey:failures:ip:\(context.caller.throttleKey)"
        if let seconds = try await throttle.reserve(key, limit: context.policy.passkeys.failuresPerAddress, now: context.now).retryAfter {
            throw SignInError.passwordThrottled(retryAfter: seconds)
        }
        let (_, bytes) = try await consume(answeredBy: assertion.response.clientDataJSON, purpose: .passwordless)
        do {
            guard let factor = try await storedPasskey(for: assertion, userID: nil),
                let user = try await User.find(factor.$user.id, on: db),
                let practice = try await Practice.find(user.$practice.id, on: db)
            else { throw PasskeyError.unknownCredential }
            guard practice.allowPasswordless else { throw PasskeyError.passwordlessOff }
            let userID = try user.requireID()
            guard let handle = assertion.response.userHandle, (try? Base64URL.decode(handle)) == Self.userHandle(userID) else {
                throw PasskeyError.rejected(.malformed("a passwordless sign-in needs the passkey's user handle, and it must match"))
            }
            try await SecondFactorGuard(context: context).ensureNotLocked(user: user)
            try await verify(
                assertion, challenge: bytes, factor: factor, practice: practice, user: user, requireUserVerification: true,
                purpose: "passwordless")
            try await SecondFactorGuard(context: context).recordSuccess(user: user, kind: "webauthn")
            try await throttle.release(key, limit: context.policy.passkeys.failuresPerAddress, now: context.now)
            return try await SignInService(context: context).passwordlessSignIn(
                user: user, practice: practice, factor: factor, channel: channel, replacing: presented)
        } catch let error as PasskeyError {
            try await context.audit(.signInFailed, practiceID: nil, details: ["method": "passkey_passwordless", "reason": error.reason])
            throw error
        }
    }

    // MARK: step-up

    /// Request options for a step-up: the user's passkeys, user verification required (a hard factor for EPCS).
    func stepUpOptions(for challenge: StepUpChallenge) async throws -> RequestOptionsJSON {
        let passkeys = try await passkeys(of: challenge.$user.id)
        guard !passkeys.isEmpty else { throw PasskeyError.noPasskeys }
        let bytes = try await issue(.stepUp, userID: challenge.$user.id, contextID: challenge.id, userVerification: true)
        return party.requestOptions(challenge: bytes, allowing: passkeys.map(Self.descriptor), userVerification: "required")
    }

    /// Verifies a step-up assertion; the caller marks the step-up verified.
    func verifyStepUp(_ assertion: AuthenticationResponseJSON, for stepUp: StepUpChallenge) async throws -> Factor {
        guard let user = try await User.find(stepUp.$user.id, on: db),
            let practice = try await Practice.find(user.$practice.id, on: db)
        else { throw PasskeyError.unknownCredential }
        return try await verifyOwnPasskey(
            assertion, purpose: .stepUp, contextID: stepUp.id, user: user, practice: practice,
            requireUserVerification: true, ceremony: "step_up", channel: .stepUp, pendingSession: nil)
    }

    // MARK: shared

    /// An assertion by a known user: the account's guessing limits, the challenge issued for this purpose and
    /// session or step-up, one of the user's own passkeys, the signature. The attempt is reserved on `channel`
    /// (and on the pending sign-in, if any) before the assertion is checked; a refused passkey stays counted.
    private func verifyOwnPasskey(
        _ assertion: AuthenticationResponseJSON, purpose: WebAuthnChallenge.Purpose, contextID: UUID?, user: User,
        practice: Practice, requireUserVerification: Bool, ceremony: String,
        channel: SecondFactorChannel, pendingSession: CurrentSession?
    ) async throws -> Factor {
        let (challenge, bytes) = try await consume(answeredBy: assertion.response.clientDataJSON, purpose: purpose)
        guard challenge.contextID == contextID else { throw PasskeyError.challengeUnknown }
        let signIn = SignInService(context: context)
        var pendingAttempts: Int?
        return try await SecondFactorCheck(context: context).check(
            proof: "webauthn", user: user, channel: channel, isRefusal: { $0 is PasskeyError },
            afterReserving: {
                if let pendingSession { pendingAttempts = try await signIn.reservePendingAttempt(session: pendingSession) }
            },
            afterRefusal: {
                if let pendingSession, let pendingAttempts {
                    try await signIn.cancelIfPendingLimitReached(attempts: pendingAttempts, session: pendingSession)
                }
            },
            evaluate: {
                guard let factor = try await storedPasskey(for: assertion, userID: user.id) else { throw PasskeyError.unknownCredential }
                try await verify(
                    assertion, challenge: bytes, factor: factor, practice: practice, user: user,
                    requireUserVerification: requireUserVerification || challenge.userVerificationRequired, purpose: ceremony)
                return factor
            })
    }

    private func storedPasskey(for assertion: AuthenticationResponseJSON, userID: UUID?) async throws -> Factor? {
        guard let rawID = try? RelyingParty.credentialID(of: assertion) else {
            throw PasskeyError.rejected(.malformed("rawId is not base64url"))
        }
        var query = Factor.query(on: db).filter(\.$credentialID == Base64URL.encode(rawID)).filter(\.$kind == .webauthn).filter(
            \.$status == .active)
        if let userID { query = query.filter(\.$user.$id == userID) }
        return try await query.first()
    }

    /// Verifies the signature and flags, then keeps the counter; a counter that went backwards is audited and,
    /// when the practice says so, refused.
    private func verify(
        _ assertion: AuthenticationResponseJSON, challenge: [UInt8], factor: Factor, practice: Practice, user: User,
        requireUserVerification: Bool, purpose: String
    ) async throws {
        let stored = UInt32(clamping: factor.signCount ?? 0)
        let verified: RelyingParty.VerifiedAssertion
        do {
            verified = try party.verifyAuthentication(
                assertion, challenge: challenge, credentialID: try Base64URL.decode(factor.credentialID ?? ""),
                publicKey: Array(factor.publicKey ?? Data()), storedSignCount: stored,
                requireUserVerification: requireUserVerification)
        } catch let error as WebAuthnError {
            try await context.audit(
                .passkeyRejected, practiceID: practice.id, actorID: user.id,
                details: ["factor": factor.shortID, "ceremony": purpose, "reason": error.description])
            throw PasskeyError.rejected(error)
        }
        if verified.signCountRegressed {
            try await context.audit(
                .passkeySignCountAnomaly, practiceID: practice.id, actorID: user.id,
                details: [
                    "factor": factor.shortID, "stored": String(stored), "received": String(verified.signCount),
                    "refused": String(practice.refuseClonedPasskeys),
                ])
            if practice.refuseClonedPasskeys { throw PasskeyError.cloned }
        }
        factor.signCount = Int64(max(verified.signCount, stored))
        factor.backedUp = verified.backedUp
        factor.lastUsedAt = context.now
        try await factor.save(on: db)
        try await context.audit(
            .passkeyUsed, practiceID: practice.id, actorID: user.id,
            details: [
                "factor": factor.shortID, "ceremony": purpose, "user_verified": String(verified.userVerified),
            ])
    }
}
