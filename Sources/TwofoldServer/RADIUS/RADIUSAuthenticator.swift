import Fluent
import Foundation
import NIOCore
import SQLKit
import TwofoldCore
import Vapor

/// A pending Access-Challenge: the `State` a device sends back with the user's answer. Stored as a hash, single use,
/// valid ``TwofoldPolicy/RADIUS/challengeLifetime``, bound to the client and the user; in the database, so any instance can take the answer.
enum RADIUSChallengeRecord {
    static let schema = "radius_challenges"

    struct Claimed: Decodable {
        var user_id: UUID
        var password_verified: Bool
    }

    static func issue(clientID: UUID, userID: UUID, passwordVerified: Bool, now: Date, lifetime: TimeInterval, on db: any Database)
        async throws -> [UInt8]
    {
        let state = SecureRandom.bytes(16)
        try await db.sql.raw(
            """
            INSERT INTO \(ident: schema) (state_hash, client_id, user_id, password_verified, created_at, expires_at)
            VALUES (\(bind: TwofoldCore.Digest.sha256Hex(Base64URL.encode(state))), \(bind: clientID), \(bind: userID), \(bind: passwordVerified),
                    \(bind: now), \(bind: now.addingTimeInterval(lifetime)))
            """
        ).run()
        return state
    }

    /// Spends a challenge: true for exactly one answer, before it expires.
    static func claim(state: [UInt8], clientID: UUID, now: Date, on db: any Database) async throws -> Claimed? {
        try await db.sql.raw(
            """
            UPDATE \(ident: schema) SET used_at = \(bind: now)
            WHERE state_hash = \(bind: TwofoldCore.Digest.sha256Hex(Base64URL.encode(state))) AND client_id = \(bind: clientID)
              AND used_at IS NULL AND expires_at > \(bind: now)
            RETURNING user_id, password_verified
            """
        ).first(decoding: Claimed.self)
    }
}

struct CreateRADIUSChallenge: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(RADIUSChallengeRecord.schema)
            .field("state_hash", .string, .required)
            .field("client_id", .uuid, .required, .references(RADIUSClient.schema, .id, onDelete: .cascade))
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("password_verified", .bool, .required)
            .field("created_at", .datetime, .required)
            .field("expires_at", .datetime, .required)
            .field("used_at", .datetime)
            .unique(on: "state_hash")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(RADIUSChallengeRecord.schema).delete()
    }
}

/// The answer to one Access-Request: the code and the reply attributes (Message-Authenticator and the Response
/// Authenticator are added when the packet is built).
struct RADIUSDecision: Sendable {
    var code: RADIUSCode
    var attributes: [RADIUSAttribute]
    /// For the audit log and metrics: `accept`, `reject`, `challenge`.
    var outcome: String { code == .accessAccept ? "accept" : code == .accessChallenge ? "challenge" : "reject" }
}

/// Decides an Access-Request under the same rules as every other channel: the password allowance shared with the web
/// sign-in, the second-factor check with its reservation and single-use time steps, mandatory 2FA, the audit log.
/// Unknown users, wrong passwords, wrong codes and locked users all get the same Access-Reject.
struct RADIUSAuthenticator {
    let app: Application
    let client: RADIUSClientRegistry.Entry
    let packet: RADIUSPacket
    let source: SocketAddress

    static let deniedMessage = "Access denied."

    /// The rules' context on this device's behalf: the audit log names its address and, as the browser, the client's
    /// name. Made afresh for each step that waits (a push answer), so that each takes the time again.
    private func deviceContext() -> ServiceContext {
        app.serviceContext(ip: ClientAddress.canonical(source.ipAddress ?? "unknown"), userAgent: "RADIUS \(client.name)")
    }

    private func pushService() -> PushService { PushService(context: deviceContext()) }

    private func signInService() -> SignInService { SignInService(context: deviceContext()) }

    func decide() async throws -> RADIUSDecision {
        let context = deviceContext()
        guard let username = packet.userName?.trimmingCharacters(in: .whitespaces), !username.isEmpty, username.utf8.count <= 128 else {
            return try await reject(context, user: nil, reason: "no_user_name")
        }
        if packet.hasEAPMessage || packet.hasCHAPPassword || packet.hiddenUserPassword == nil {
            return try await reject(context, user: nil, reason: "not_pap", message: "Twofold accepts PAP (User-Password) only.")
        }
        guard let bytes = try? packet.userPassword(secret: RADIUSSharedSecret(client.secret)),
            let input = String(bytes: bytes, encoding: .utf8)
        else { return try await reject(context, user: nil, reason: "unreadable_password") }
        let user = try await User.query(on: context.database).filter(\.$usernameKey == User.key(for: username))
            .filter(\.$practice.$id == client.practiceID).first()
        if let state = packet.state {
            return try await answerChallenge(context, state: state, input: input, user: user)
        }
        switch client.mode {
        case .codeOnly:
            guard let user else { return try await reject(context, user: nil, reason: "unknown_user", username: username) }
            if let refusal = try await enrollmentRefusal(
                context, user: user, factors: try await signInService().activeFactors(of: user))
            {
                return refusal
            }
            return try await checkCode(context, input, user: user, channel: .radius(clientID: client.id))
        case .passwordAndCode:
            return try await passwordStep(context, input: input, user: user, username: username)
        }
    }

    // MARK: password

    private func passwordStep(_ context: ServiceContext, input: String, user: User?, username: String) async throws -> RADIUSDecision {
        let throttle = ThrottleStore(database: context.database)
        let accountKey = "password:user:\(User.key(for: username))"
        // One request is one guess, however its User-Password is read.
        if case .blocked = try await throttle.reserve(accountKey, limit: app.policy.signIn.passwordPerAccount, now: context.now) {
            try await context.audit(
                .signInThrottled, practiceID: client.practiceID, subjectID: user?.id,
                details: ["username": String(User.key(for: username).prefix(64)), "channel": "radius", "radius_client": client.name])
            return try await reject(context, user: user, reason: "password_throttled", username: username)
        }
        // The whole input as the password, then — for devices that cannot do challenges — the password followed by a
        // code of the length the user's methods produce (at most two more bcrypt checks).
        var candidates: [(password: String, code: String?)] = [(input, nil)]
        var factors: [Factor] = []
        if let user {
            factors = try await signInService().activeFactors(of: user)
            let lengths = Set(factors.filter { $0.kind == .totp || $0.kind == .sms }.map(\.digits))
            for digits in lengths.sorted(by: >) where input.count > digits {
                let suffix = String(input.suffix(digits))
                if suffix.allSatisfy({ $0.isASCII && $0.isNumber }) { candidates.append((String(input.dropLast(digits)), suffix)) }
            }
        }
        for candidate in candidates {
            guard await context.passwords.verify(candidate.password, against: user?.passwordHash), let user else { continue }
            try await throttle.reset(accountKey)
            if let refusal = try await enrollmentRefusal(context, user: user, factors: factors) { return refusal }
            if factors.isEmpty {
                return try await accept(context, user: user, method: "password")
            }
            if let code = candidate.code {
                return try await checkCode(context, code, user: user, channel: .signIn)
            }
            guard factors.contains(where: { $0.kind == .totp || $0.kind == .sms || $0.kind == .push }) else {
                return try await reject(
                    context, user: user, reason: "no_code_method",
                    message: "Your sign-in methods show no code. Add an authenticator app in Twofold (Account › Security) to sign in here.")
            }
            return try await challenge(context, user: user, factors: factors)
        }
        try await context.audit(
            .signInFailed, practiceID: client.practiceID, subjectID: user?.id,
            details: [
                "username": String(User.key(for: username).prefix(64)), "reason": user == nil ? "unknown_user" : "wrong_password",
                "channel": "radius", "radius_client": client.name,
            ])
        return try await reject(context, user: user, reason: user == nil ? "unknown_user" : "wrong_password", username: username)
    }

    /// A user who must set up 2FA and has no method yet is told to sign in on the web first.
    private func enrollmentRefusal(_ context: ServiceContext, user: User, factors: [Factor]) async throws -> RADIUSDecision? {
        guard factors.isEmpty, let practice = try await Practice.find(user.$practice.id, on: context.database),
            practice.mandatoryTwoFactor || user.twoFactorRequired
        else { return nil }
        return try await reject(
            context, user: user, reason: "enrollment_required",
            message: "Your practice requires two-factor authentication. Sign in to Twofold in a web browser first to set it up.")
    }

    private func challenge(_ context: ServiceContext, user: User, factors: [Factor]) async throws -> RADIUSDecision {
        let state = try await RADIUSChallengeRecord.issue(
            clientID: client.id, userID: try user.requireID(), passwordVerified: true, now: context.now,
            lifetime: app.policy.radius.challengeLifetime, on: context.database)
        let kinds = Set(factors.map(\.kind))
        var options: [String] = []
        if kinds.contains(.totp) { options.append("the code from your authenticator app") }
        if kinds.contains(.sms) { options.append("a text-message code (type sms to get one)") }
        if kinds.contains(.push) { options.append("type push to approve on your phone") }
        let prompt =
            options.isEmpty
            ? "This sign-in needs an authenticator-app or text-message code; none is set up for you."
            : "Enter " + options.joined(separator: ", or ") + "."
        try await context.audit(.radiusChallenged, practiceID: client.practiceID, subjectID: user.id, details: deviceDetails())
        app.metrics.radius(outcome: "challenge")
        return RADIUSDecision(code: .accessChallenge, attributes: RADIUSAttribute.replyMessages(prompt) + [.state(state)])
    }

    // MARK: challenge answers

    private func answerChallenge(_ context: ServiceContext, state: [UInt8], input: String, user: User?) async throws -> RADIUSDecision {
        guard
            let claimed = try await RADIUSChallengeRecord.claim(state: state, clientID: client.id, now: context.now, on: context.database),
            let user, user.id == claimed.user_id
        else { return try await reject(context, user: user, reason: "unknown_state") }
        let answer = input.trimmingCharacters(in: .whitespaces).lowercased()
        if answer == "sms" {
            return try await sendSMS(context, user: user)
        }
        if answer == "push" {
            return try await waitForPush(context, user: user)
        }
        return try await checkCode(context, input, user: user, channel: claimed.password_verified ? .signIn : .radius(clientID: client.id))
    }

    private func sendSMS(_ context: ServiceContext, user: User) async throws -> RADIUSDecision {
        guard let practice = try await Practice.find(user.$practice.id, on: context.database), practice.allowSMS,
            let phone = try await signInService().activeFactors(of: user).first(where: { $0.kind == .sms })?.phone
        else { return try await reject(context, user: user, reason: "no_confirmed_phone") }
        do {
            try await SMSCodeService(context: context).send(to: phone, user: user, practice: practice, purpose: .signIn, factorID: nil)
        } catch let error as SMSError {
            return try await reject(context, user: user, reason: "sms_refused", message: error.reason)
        }
        let state = try await RADIUSChallengeRecord.issue(
            clientID: client.id, userID: try user.requireID(), passwordVerified: true, now: context.now,
            lifetime: app.policy.radius.challengeLifetime, on: context.database)
        try await context.audit(
            .radiusChallenged, practiceID: client.practiceID, subjectID: user.id, details: deviceDetails().merging(["sms": "sent"]) { $1 })
        app.metrics.radius(outcome: "challenge")
        return RADIUSDecision(
            code: .accessChallenge,
            attributes: RADIUSAttribute.replyMessages("A code was sent to \(SMSCodeService.maskedPhone(phone)). Enter it.") + [
                .state(state)
            ])
    }

    /// Sends a push request and holds the answer until the device approves or denies it, or the client's timeout
    /// passes. The terminal cannot show a number, so the device shows the client, the address and the device asking
    /// instead, and approving needs no number. Retransmissions meanwhile are in-flight duplicates and get no second push.
    private func waitForPush(_ context: ServiceContext, user: User) async throws -> RADIUSDecision {
        guard let practice = try await Practice.find(user.$practice.id, on: context.database) else {
            return try await reject(context, user: user, reason: "no_push_device")
        }
        let from = packet.callingStationID ?? packet.nasIPAddress ?? source.ipAddress ?? "an unknown address"
        let summary = "Sign in to \(practice.name) through \(client.name) from \(from)"
        let challenge: PushChallenge
        do {
            challenge = try await pushService().startChallenge(
                user: user, practice: practice, factorID: nil, purpose: .signIn, terminalSummary: summary)
        } catch let error as PushError {
            return try await reject(context, user: user, reason: "push_refused", message: error.reason)
        }
        let deadline = ContinuousClock.now + .seconds(min(client.pushTimeout, Int(app.policy.push.challengeLifetime)))
        // The answer is audited at the time it came, not when the request was sent.
        while ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(250))
            guard let current = try await PushChallenge.find(challenge.id, on: context.database) else { break }
            switch current.status {
            case .pending: continue
            case .approved:
                let push = pushService()
                guard
                    try await SecondFactorCheck(context: push.context).checkApproval(
                        method: "push", user: user, claim: { try await push.consume(current) })
                else {
                    return try await reject(deviceContext(), user: user, reason: "push_already_used")
                }
                return try await accept(deviceContext(), user: user, method: "push")
            case .denied:
                return try await reject(deviceContext(), user: user, reason: current.fraudReported ? "push_fraud_reported" : "push_denied")
            }
        }
        return try await reject(
            deviceContext(), user: user, reason: "push_timeout", message: "The request on your phone was not answered in time.")
    }

    // MARK: the second factor

    /// One code, through the same reservation, lockout and single-use time steps as every other channel.
    private func checkCode(_ context: ServiceContext, _ raw: String, user: User, channel: SecondFactorChannel) async throws
        -> RADIUSDecision
    {
        guard let code = SecondFactorCheck.normalize(raw) else { return try await reject(context, user: user, reason: "malformed_code") }
        let factors = try await signInService().activeFactors(of: user)
        let practice = try await Practice.find(user.$practice.id, on: context.database)
        let smsFactor = practice?.allowSMS == true ? factors.first(where: { $0.kind == .sms }) : nil
        let outcome: SecondFactorCheck.Outcome
        do {
            outcome = try await SecondFactorCheck(context: context).check(
                code, user: user, factors: factors, smsFactor: smsFactor, channel: channel)
        } catch is SignInError {
            return try await reject(context, user: user, reason: "locked")
        }
        switch outcome {
        case .accepted(let factor): return try await accept(context, user: user, method: factor.kind.rawValue)
        case .replayed: return try await reject(context, user: user, reason: "replayed")
        case .wrong(let failures): return try await reject(context, user: user, reason: "wrong_code", failures: failures)
        }
    }

    // MARK: answers

    private func accept(_ context: ServiceContext, user: User, method: String) async throws -> RADIUSDecision {
        var attributes = RADIUSAttribute.replyMessages("Welcome, \(user.firstName).")
        attributes.append(.text(.class, "twofold:\(try user.requireID().uuidString.lowercased())"))
        if let name = client.roleAttribute, name.lowercased() == "filter-id" {
            attributes.append(.text(.filterID, user.has(.manageAccounts) ? "administrator" : user.role.rawValue))
        }
        var details = deviceDetails()
        details["method"] = method
        try await context.audit(.radiusAccepted, practiceID: client.practiceID, actorID: user.id, details: details)
        app.metrics.radius(outcome: "accept")
        return RADIUSDecision(code: .accessAccept, attributes: attributes)
    }

    private func reject(
        _ context: ServiceContext, user: User?, reason: String, message: String = deniedMessage, username: String? = nil,
        failures: Int? = nil
    ) async throws -> RADIUSDecision {
        var details = deviceDetails()
        details["reason"] = reason
        if let username, user == nil { details["username"] = String(User.key(for: username).prefix(64)) }
        if let failures { details["consecutive_failures"] = String(failures) }
        try await context.audit(.radiusRejected, practiceID: client.practiceID, subjectID: user?.id, details: details)
        app.metrics.radius(outcome: "reject")
        return RADIUSDecision(code: .accessReject, attributes: RADIUSAttribute.replyMessages(message))
    }

    /// What the audit log records of the device and the connecting user's machine.
    private func deviceDetails() -> [String: String] {
        var details = ["radius_client": client.name]
        if let nas = packet.nasIPAddress { details["nas_ip"] = nas }
        if let nas = packet.nasIdentifier { details["nas_identifier"] = String(nas.prefix(64)) }
        if let calling = packet.callingStationID { details["calling_station"] = String(calling.prefix(64)) }
        return details
    }
}
