import Crypto
import Fluent
import QRCode
import SQLKit
import TwofoldCore
import Vapor

/// Push devices: enrollment, signed device requests, challenges and their answers.
struct PushService {
    let context: ServiceContext
    private var db: any Database { context.database }

    struct Enrollment {
        var factor: Factor
        var uri: String
        var qrSVG: String
    }

    // MARK: enrollment

    /// Starts enrolling a push device: a pending factor and a one-time URI (valid 10 minutes) for the device to scan.
    /// `publicBaseURL` is where the device reaches this server (``Vapor/Request/publicBaseURL``); the URI names it.
    func beginEnrollment(session: CurrentSession, nickname: String?, publicBaseURL: String) async throws -> Enrollment {
        guard session.practice.allowPush else { throw PushError.notAllowed }
        try await Factor.query(on: db).filter(\.$user.$id == session.userID).filter(\.$status == .pending).filter(\.$kind == .push)
            .delete()
        let fallback = try await FactorService(context: context).defaultNickname(kind: .push, userID: session.userID)
        let factor = Factor(
            userID: session.userID, kind: .push,
            nickname: try FactorService.cleanNickname(nickname, default: fallback, maximum: context.policy.fields.nickname))
        factor.enrollmentSessionID = session.record.id
        let token = context.random.token()
        factor.enrollmentTokenHash = Digest.sha256Hex(token)
        factor.enrollmentExpiresAt = context.now.addingTimeInterval(context.policy.push.enrollmentLifetime)
        try await factor.create(on: db)
        let uri = PushEnrollmentURI(server: publicBaseURL, token: token).uri
        let svg = try QRCode(text: uri).svg(moduleSize: 4, quietZone: 4, title: "QR code for your push device")
        return Enrollment(factor: factor, uri: uri, qrSVG: svg)
    }

    /// A device presents the enrollment token, its public key and a proof; the token works once.
    func enrollDevice(token: String, publicKey: String, deviceName: String?, proof: String) async throws -> Factor {
        guard let keyBytes = try? Base64URL.decode(publicKey), keyBytes.count == 65,
            let key = try? P256.Signing.PublicKey(x963Representation: keyBytes)
        else { throw PushError.malformedKey }
        guard let proofBytes = try? Base64URL.decode(proof),
            let signature = try? P256.Signing.ECDSASignature(rawRepresentation: proofBytes),
            key.isValidSignature(signature, for: PushEnrollmentURI.proofMessage(token: token))
        else { throw PushError.badProof }
        let now = context.now
        // Claiming the token and storing the key is one statement, so a token cannot enroll two devices.
        let claimed = try await db.sql.raw(
            """
            UPDATE \(ident: Factor.schema) SET public_key = \(bind: Data(keyBytes)), enrollment_token_hash = NULL
            WHERE enrollment_token_hash = \(bind: Digest.sha256Hex(token)) AND kind = 'push' AND status = 'pending'
              AND public_key IS NULL AND enrollment_expires_at > \(bind: now) RETURNING id
            """
        ).first(decoding: IDRow.self)
        guard let id = claimed?.id, let factor = try await Factor.find(id, on: db) else {
            throw PushError.enrollmentInvalid(minutes: context.policy.push.enrollmentLifetimeMinutes)
        }
        if let name = deviceName?.trimmingCharacters(in: .whitespacesAndNewlines), !name.isEmpty,
            name.count <= context.policy.fields.nickname
        {
            factor.nickname = name
            try await factor.save(on: db)
        }
        return factor
    }

    // MARK: signed device requests

    /// What a device sent, as its signature covers it: the headers that carry the signature, the method, the path
    /// with its query, and the body's bytes.
    struct SignedRequest {
        var headers: HTTPHeaders
        var method: String
        var pathAndQuery: String
        var body: [UInt8]
    }

    /// Checks a device's signed request (key, clock, nonce) and returns its factor; the first such request activates it.
    func authenticateDevice(_ signed: SignedRequest) async throws -> Factor {
        let envelope: DeviceRequestSignature.Envelope
        do {
            envelope = try DeviceRequestSignature.Envelope { signed.headers.first(name: $0) }
        } catch let failure as DeviceRequestSignature.Failure {
            throw PushError.deviceRejected(failure.description)
        }
        guard let id = UUID(uuidString: envelope.deviceID),
            let factor = try await Factor.find(id, on: db), factor.kind == .push,
            let keyData = factor.publicKey, let key = try? P256.Signing.PublicKey(x963Representation: keyData)
        else { throw PushError.deviceUnknown }
        do {
            try envelope.verify(
                method: signed.method, pathAndQuery: signed.pathAndQuery, body: signed.body, publicKey: key, now: context.now)
        } catch let failure as DeviceRequestSignature.Failure {
            try await context.audit(
                .pushDeviceRejected, practiceID: nil, subjectID: factor.$user.id,
                details: ["factor": factor.shortID, "reason": failure.description])
            throw PushError.deviceRejected(failure.description)
        }
        try await spendNonce(envelope.nonce, factorID: id)
        if factor.status == .pending { try await activate(factor) }
        return factor
    }

    private func spendNonce(_ nonce: String, factorID: UUID) async throws {
        let now = context.now
        let window = now.addingTimeInterval(-2 * DeviceRequestSignature.allowedSkew)
        try await db.sql.raw(
            "DELETE FROM \(ident: CreateDeviceNonce.schema) WHERE factor_id = \(bind: factorID) AND seen_at < \(bind: window)"
        ).run()
        let inserted = try await db.sql.raw(
            """
            INSERT INTO \(ident: CreateDeviceNonce.schema) (factor_id, nonce, seen_at) VALUES (\(bind: factorID), \(bind: nonce), \(bind: now))
            ON CONFLICT DO NOTHING RETURNING nonce
            """
        ).all()
        guard !inserted.isEmpty else { throw PushError.replayedRequest }
    }

    private func activate(_ factor: Factor) async throws {
        let now = context.now
        let user = try await factor.$user.get(on: db)
        try await context.database.transaction { db in
            let hadActive = try await Factor.query(on: db).filter(\.$user.$id == user.requireID()).filter(\.$status == .active).count() > 0
            factor.status = .active
            factor.activatedAt = now
            factor.isPrimary = !hadActive
            try await factor.save(on: db)
            try await EnrollmentSessions.factorActivated(factor, on: db)
            try await context.on(db).audit(
                .factorAdded, practiceID: user.$practice.id, actorID: user.id,
                details: ["factor": factor.shortID, "kind": "push", "nickname": factor.nickname])
        }
    }

    // MARK: challenges

    /// Sends a challenge to one of the user's active push devices (the one named, else the primary or most recent).
    func startChallenge(
        user: User, practice: Practice, factorID: UUID?, purpose: PushChallenge.Purpose,
        sessionID: UUID? = nil, stepUpID: UUID? = nil, action: String? = nil,
        terminalSummary: String? = nil
    ) async throws -> PushChallenge {
        guard practice.allowPush else { throw PushError.notAllowed }
        let userID = try user.requireID()
        var query = Factor.query(on: db).filter(\.$user.$id == userID).filter(\.$kind == .push).filter(\.$status == .active)
        if let factorID { query = query.filter(\.$id == factorID) }
        guard let device = try await query.sort(\.$isPrimary, .descending).sort(\.$lastUsedAt, .descending).first() else {
            throw PushError.noDevice
        }
        let throttle = ThrottleStore(database: db)
        let key = "push:user:\(userID.uuidString)"
        // Reserved before the challenge exists: a burst of requests sends at most the limit to the device.
        if case .blocked = try await throttle.reserve(key, limit: context.policy.push.challengesPerUser, now: context.now) {
            throw PushError.tooManyChallenges
        }
        let summary = terminalSummary ?? action.map { "\(practice.name): \($0)" } ?? "Sign in to \(practice.name)"
        let challenge = try PushChallenge(
            user: user, factor: device, practiceID: practice.requireID(), purpose: purpose, summary: summary,
            ip: context.caller.ip, userAgent: context.caller.userAgent, now: context.now,
            lifetime: context.policy.push.challengeLifetime)
        challenge.sessionID = sessionID
        challenge.stepUpID = stepUpID
        challenge.numberRequired = terminalSummary == nil
        try await challenge.create(on: db)
        try await context.audit(
            .pushSent, practiceID: practice.id, actorID: user.id, details: ["factor": device.shortID, "purpose": purpose.rawValue])
        return challenge
    }

    /// The device's unanswered, unexpired challenges, oldest first.
    func pending(for factor: Factor) async throws -> [PushChallenge] {
        try await PushChallenge.query(on: db).filter(\.$factor.$id == factor.requireID()).filter(\.$status == .pending)
            .filter(\.$expiresAt > context.now).sort(\.$createdAt).all()
    }

    enum Decision: Equatable {
        /// `number` may be nil only for a challenge that needs none (``PushChallenge/numberRequired``).
        case approve(number: Int?)
        case deny(fraud: Bool)
    }

    /// Records the device's answer. Exactly one answer counts: the status changes only from pending, before expiry.
    func answer(challengeID: UUID, device: Factor, decision: Decision) async throws -> PushChallenge {
        let deviceID = try device.requireID()
        guard
            let challenge = try await PushChallenge.query(on: db).filter(\.$id == challengeID).filter(\.$factor.$id == deviceID)
                .first()
        else { throw PushError.challengeNotFound }
        var newStatus = PushChallenge.Status.denied
        var fraud = false
        var wrongNumber = false
        switch decision {
        case .approve(let number):
            if !challenge.numberRequired {
                newStatus = .approved
            } else if let number, ConstantTime.equals(Array(String(number).utf8), Array(String(challenge.number).utf8)) {
                newStatus = .approved
            } else {
                wrongNumber = true
            }
        case .deny(let reported):
            fraud = reported
        }
        let now = context.now
        let changed = try await db.sql.raw(
            """
            UPDATE \(ident: PushChallenge.schema) SET status = \(bind: newStatus.rawValue), answered_at = \(bind: now), fraud_reported = \(bind: fraud)
            WHERE id = \(bind: challengeID) AND status = 'pending' AND expires_at > \(bind: now) RETURNING id
            """
        ).all()
        guard !changed.isEmpty else { throw PushError.challengeClosed }
        challenge.status = newStatus
        challenge.answeredAt = now
        challenge.fraudReported = fraud
        let details = [
            "factor": device.shortID, "challenge": String(challengeID.uuidString.prefix(8)), "purpose": challenge.purpose.rawValue,
            "browser_ip": challenge.ip,
        ]
        let userID = challenge.$user.id
        if newStatus == .approved {
            device.lastUsedAt = now
            try await device.save(on: db)
            try await context.audit(.pushApproved, practiceID: challenge.practiceID, actorID: userID, details: details)
        } else if wrongNumber {
            try await context.audit(.pushWrongNumber, practiceID: challenge.practiceID, actorID: userID, details: details)
            throw PushError.wrongNumber
        } else {
            // A "this wasn't me" answer is the administrators' signal that someone else has the user's password.
            try await context.audit(
                fraud ? .pushFraudReported : .pushDenied, practiceID: challenge.practiceID, actorID: userID, details: details)
        }
        return challenge
    }

    /// Marks an approved challenge as used by its sign-in or step-up; true for exactly one caller.
    func consume(_ challenge: PushChallenge) async throws -> Bool {
        let challengeID = try challenge.requireID()
        let rows = try await db.sql.raw(
            """
            UPDATE \(ident: PushChallenge.schema) SET consumed_at = \(bind: context.now)
            WHERE id = \(bind: challengeID) AND status = 'approved' AND consumed_at IS NULL RETURNING id
            """
        ).all()
        return !rows.isEmpty
    }
}

struct IDRow: Decodable { var id: UUID }

extension Request {
    /// Where users and devices reach this server: `TWOFOLD_PUBLIC_URL`, else the scheme and host of this request.
    var publicBaseURL: String {
        if let configured = twofold.configuration.publicURL { return configured }
        let scheme = twofold.configuration.secureCookies ? "https" : "http"
        let host = headers.first(name: .host) ?? "127.0.0.1:8080"
        return "\(scheme)://\(host)"
    }
}
