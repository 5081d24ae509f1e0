import Fluent
import SQLKit
import TwofoldCore
import Vapor

/// Errors a user can meet when asking for a text-message code.
enum SMSError: AbortError {
    case notAllowed
    case noPhone
    case noConfirmedPhone
    case rateLimited(retryAfter: Int)
    case deliveryFailed

    var status: HTTPResponseStatus {
        switch self {
        case .notAllowed, .noPhone, .noConfirmedPhone: .badRequest
        case .rateLimited: .tooManyRequests
        case .deliveryFailed: .serviceUnavailable
        }
    }

    var reason: String {
        switch self {
        case .notAllowed: "Your practice does not allow codes by text message. Use your authenticator app or a recovery code."
        case .noPhone: "There is no cell phone number on your profile. Add one in your profile, or ask your practice administrator."
        case .noConfirmedPhone:
            "You have not set up text messages as a sign-in method. Use your authenticator app, another method or a recovery code."
        case .rateLimited(let seconds):
            "A code was sent recently. Wait \(seconds) seconds before asking for another one, or use the code you already received."
        case .deliveryFailed: "We could not send the text message. Try again in a few minutes, or use another method."
        }
    }

    var headers: HTTPHeaders {
        if case .rateLimited(let seconds) = self { return ["Retry-After": String(seconds)] }
        return [:]
    }
}

/// Issues and checks one-time codes sent by text message.
struct SMSCodeService {
    let context: ServiceContext
    private var db: any Database { context.database }

    static func maskedPhone(_ phone: String) -> String {
        let digits = phone.filter(\.isNumber)
        return digits.count <= 4 ? "•••" : "•••" + String(digits.suffix(4))
    }

    static func normalizedPhone(_ input: String) -> String? {
        let trimmed = input.trimmingCharacters(in: .whitespacesAndNewlines)
        let digits = trimmed.filter(\.isNumber)
        guard (7...15).contains(digits.count),
            trimmed.allSatisfy({ $0.isNumber || " +-().".contains($0) })
        else { return nil }
        return (trimmed.hasPrefix("+") ? "+" : "") + digits
    }

    /// Generates a code, stores its hash and sends it. Nothing is left behind when the sender fails.
    func send(to phone: String, user: User, practice: Practice, purpose: SMSCode.Purpose, factorID: UUID?) async throws {
        let now = context.now
        let userID = try user.requireID()
        try await enforceLimits(userID: userID, phone: phone, practiceID: try practice.requireID(), now: now)
        // One live code per user and purpose: a new code voids every earlier one.
        var earlier = SMSCode.query(on: db).filter(\.$user.$id == userID).filter(\.$purpose == purpose).filter(\.$usedAt == nil)
        if let factorID { earlier = earlier.filter(\.$factor.$id == factorID) }
        try await earlier.delete()
        let digits = max(6, practice.otpDigits)
        let code = context.random.digits(digits)
        let record = SMSCode(
            userID: userID, factorID: factorID, phone: phone, purpose: purpose, codeHash: "", now: now,
            lifetime: context.policy.sms.codeLifetime)
        record.codeHash = Self.hash(code: code, id: try record.requireID())
        try await record.create(on: db)
        let body =
            "\(code) is your \(practice.name) sign-in code. It expires in \(context.policy.sms.codeLifetimeMinutes) minutes. Never share it; \(practice.name) staff will never ask for it."
        do {
            try await context.smsSender.send(to: phone, body: body, database: db, client: context.client, now: now)
        } catch {
            try await record.delete(on: db)
            context.metrics.sms(sent: false)
            context.logger.warning(
                "SMS delivery failed",
                metadata: ["sender": .string(context.smsSender.name), "problem": .string(String(describing: error))])
            try await context.audit(
                .smsFailed, practiceID: practice.id, actorID: user.id,
                details: ["to": Self.maskedPhone(phone), "purpose": purpose.rawValue, "sender": context.smsSender.name])
            throw SMSError.deliveryFailed
        }
        context.metrics.sms(sent: true)
        record.delivered = true
        try await record.save(on: db)
        try await context.audit(
            .smsSent, practiceID: practice.id, actorID: user.id, details: ["to": Self.maskedPhone(phone), "purpose": purpose.rawValue])
    }

    private func enforceLimits(userID: UUID, phone: String, practiceID: UUID, now: Date) async throws {
        let store = ThrottleStore(database: db)
        let keys: [(String, FixedWindowLimit)] = [
            ("sms:burst:user:\(userID)", context.policy.sms.burst), ("sms:hour:user:\(userID)", context.policy.sms.hourly),
            ("sms:burst:phone:\(phone)", context.policy.sms.burst), ("sms:hour:phone:\(phone)", context.policy.sms.hourly),
        ]
        // Each send is reserved in every window before anything is sent, so parallel requests cannot exceed them;
        // when one window is full the reservations already made are given back.
        var reserved: [(String, FixedWindowLimit)] = []
        for (key, limit) in keys {
            if let seconds = try await store.reserve(key, limit: limit, now: now).retryAfter {
                for (done, doneLimit) in reserved { try await store.release(done, limit: doneLimit, now: now) }
                try await context.audit(.smsRateLimited, practiceID: practiceID, actorID: userID, details: ["retry_after": String(seconds)])
                throw SMSError.rateLimited(retryAfter: seconds)
            }
            reserved.append((key, limit))
        }
    }

    /// Finds an unexpired, unused code matching `input` and marks it used in the same statement,
    /// so two requests can never both spend one code.
    func redeem(_ input: String, userID: UUID, purpose: SMSCode.Purpose, factorID: UUID? = nil) async throws -> SMSCode? {
        let now = context.now
        var query = SMSCode.query(on: db)
            .filter(\.$user.$id == userID).filter(\.$purpose == purpose)
            .filter(\.$usedAt == nil).filter(\.$expiresAt > now).filter(\.$delivered == true)
        if let factorID { query = query.filter(\.$factor.$id == factorID) }
        let candidates = try await query.all()
        var match: SMSCode?
        for candidate in candidates {
            // Each guess at a code is reserved first: after five, the code is spent whatever comes next.
            let reserved = try await db.sql.raw(
                """
                UPDATE \(ident: SMSCode.schema) SET attempts = attempts + 1
                WHERE id = \(bind: try candidate.requireID()) AND used_at IS NULL AND attempts < \(bind: context.policy.sms.guessesPerCode) RETURNING id
                """
            ).all()
            guard !reserved.isEmpty else { continue }
            if ConstantTime.equals(Self.hash(code: input, id: try candidate.requireID()), candidate.codeHash) { match = candidate }
        }
        guard let match else { return nil }
        let claimed = try await db.sql.raw(
            """
            UPDATE \(ident: SMSCode.schema) SET used_at = \(bind: now) WHERE id = \(bind: try match.requireID()) AND used_at IS NULL RETURNING id
            """
        ).all()
        return claimed.isEmpty ? nil : match
    }

    static func hash(code: String, id: UUID) -> String {
        TwofoldCore.Digest.sha256Hex("sms-code|\(id.uuidString)|\(code)")
    }
}
