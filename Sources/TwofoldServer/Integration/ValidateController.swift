import Fluent
import TwofoldAPI
import TwofoldCore
import Vapor

/// `POST /api/v1/validate`: one call for a VPN, remote-desktop gateway or PAM module to check a user's code,
/// under the sign-in rules (single-use steps, guessing limits, audit) and without revealing whether a user exists.
struct ValidateController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.grouped(APIKeyGuard()).on(.POST, APIPath.validate, body: .collect(maxSize: "4kb"), use: validate)
    }

    @Sendable func validate(req: Request) async throws -> API.ValidationResult {
        guard let key = req.apiKey else { throw Abort(.unauthorized) }
        let body = try req.apiBody(API.ValidateRequest.self)
        guard !body.username.isEmpty, body.username.count <= 128 else {
            throw Abort(.badRequest, reason: "username must be 1 to 128 characters.")
        }
        guard let code = SecondFactorCheck.normalize(body.code) else { throw Abort(.badRequest, reason: "code must be 6 to 8 digits.") }
        let accepted = try await DirectVerification(context: req.serviceContext, key: key).check(username: body.username, code: code)
        return API.ValidationResult(result: accepted ? .accept : .reject)
    }
}

extension API.ValidateRequest: Content {}
extension API.ValidationResult: Content {}

/// The decision behind `/api/v1/validate`.
struct DirectVerification {
    let context: ServiceContext
    let key: APIKey

    func check(username: String, code: String) async throws -> Bool {
        let practiceID = key.$practice.id
        guard
            let (user, factors) = try await HotPath.userAndAuthenticators(
                usernameKey: User.key(for: username), practiceID: practiceID, on: context.database)
        else {
            try await audit(
                .validateRejected, userID: nil, details: ["reason": "unknown_user", "username": String(User.key(for: username).prefix(64))])
            return false
        }
        // Failures through this API key count on a channel of their own: a VPN user typing a colleague's name
        // cannot lock that colleague out of the web sign-in (docs/security.md, "Lockout model").
        let outcome: SecondFactorCheck.Outcome
        do {
            outcome = try await SecondFactorCheck(context: context).check(
                code, user: user, factors: factors, smsFactor: nil, channel: .validate(apiKeyID: try key.requireID()))
        } catch is SignInError {
            try await audit(.validateRejected, userID: user.id, details: ["reason": "locked"])
            return false
        }
        switch outcome {
        case .accepted(let factor):
            try await audit(.validateAccepted, userID: user.id, details: ["factor": factor.shortID])
            return true
        case .replayed:
            try await audit(.validateRejected, userID: user.id, details: ["reason": "replayed"])
        case .wrong(let failures):
            // One audit event per request: the rejection carries the failure count.
            try await audit(
                .validateRejected, userID: user.id,
                details: [
                    "reason": factors.isEmpty ? "no_authenticator" : "wrong_code",
                    "consecutive_failures": String(failures),
                ])
        }
        return false
    }

    private func audit(_ type: AuditEventType, userID: UUID?, details: [String: String]) async throws {
        var details = details
        details["api_key"] = key.name
        try await context.audit(type, practiceID: key.$practice.id, actorID: nil, subjectID: userID, details: details)
    }
}

/// The lookups `/api/v1/validate` makes on every call, as plain SQL decoded into small rows: building Fluent
/// models from query results costs reflection, which was most of a verification's CPU time.
enum HotPath {
    /// One row of the user joined with one of their active authenticator apps (the factor columns are null when the
    /// user has none).
    private struct Row: Decodable {
        var id: UUID
        var practice_id: UUID
        var second_factor_failures: Int
        var second_factor_last_failure_at: Date?
        var factor_id: UUID?
        var nickname: String?
        var sealed_secret: Data?
        var digits: Int?
        var algorithm: String?
        var period: Int?
        var last_used_step: Int64?
    }

    /// The user of `usernameKey` in the practice with their active authenticator apps, in one query; nil when there is
    /// no such user.
    static func userAndAuthenticators(usernameKey: String, practiceID: UUID, on database: any Database) async throws -> (User, [Factor])? {
        let rows = try await database.sql.raw(
            """
            SELECT u.id, u.practice_id, u.second_factor_failures, u.second_factor_last_failure_at, f.id AS factor_id, f.nickname,
            f.sealed_secret, f.digits, f.algorithm, f.period, f.last_used_step
            FROM \(ident: User.schema) u LEFT JOIN \(ident: Factor.schema) f ON f.user_id = u.id AND f.status = 'active' AND f.kind = 'totp'
            WHERE u.username_key = \(bind: usernameKey) AND u.practice_id = \(bind: practiceID)
            """
        ).all(decoding: Row.self)
        guard let first = rows.first else { return nil }
        let user = User()
        user.id = first.id
        user.$practice.id = first.practice_id
        user.secondFactorFailures = first.second_factor_failures
        user.secondFactorLastFailureAt = first.second_factor_last_failure_at
        let factors = rows.compactMap { row -> Factor? in
            guard let id = row.factor_id, let nickname = row.nickname, let digits = row.digits, let algorithm = row.algorithm,
                let period = row.period
            else { return nil }
            let factor = Factor(
                id: id, userID: row.id, kind: .totp, nickname: nickname, digits: digits, algorithm: algorithm, period: period)
            factor.status = .active
            factor.sealedSecret = row.sealed_secret
            factor.lastUsedStep = row.last_used_step
            return factor
        }
        return (user, factors)
    }
}
