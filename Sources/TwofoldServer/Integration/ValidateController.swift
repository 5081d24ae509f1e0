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
        guard let code = CodeCheck.normalize(body.code) else { throw Abort(.badRequest, reason: "code must be 6 to 8 digits.") }
        let accepted = try await DirectVerification(request: req, key: key).check(username: body.username, code: code)
        return API.ValidationResult(result: accepted ? .accept : .reject)
    }
}

extension API.ValidateRequest: Content {}
extension API.ValidationResult: Content {}

/// The decision behind `/api/v1/validate`.
struct DirectVerification {
    let request: Request
    let key: APIKey

    func check(username: String, code: String) async throws -> Bool {
        let practiceID = key.$practice.id
        guard let user = try await HotPath.user(usernameKey: User.key(for: username), practiceID: practiceID, on: request.db) else {
            try await audit(
                .validateRejected, userID: nil, details: ["reason": "unknown_user", "username": String(User.key(for: username).prefix(64))])
            return false
        }
        // Failures through this API key count on a channel of their own: a VPN user typing a colleague's name
        // cannot lock that colleague out of the web sign-in (docs/security.md, "Lockout model").
        let factors = try await HotPath.activeAuthenticators(userID: user.id!, on: request.db)
        let outcome: CodeCheck.Outcome
        do {
            outcome = try await CodeCheck(request: request).check(
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
        try await request.audit(type, practiceID: key.$practice.id, actorID: nil, subjectID: userID, details: details)
    }
}

/// The lookups `/api/v1/validate` makes on every call, as plain SQL decoded into small rows: building Fluent
/// models from query results costs reflection, which was most of a verification's CPU time.
enum HotPath {
    private struct UserRow: Decodable {
        var id: UUID
        var practice_id: UUID
        var second_factor_failures: Int
        var second_factor_last_failure_at: Date?
    }

    private struct FactorRow: Decodable {
        var id: UUID
        var nickname: String
        var sealed_secret: Data?
        var digits: Int
        var algorithm: String
        var period: Int
        var last_used_step: Int64?
    }

    static func user(usernameKey: String, practiceID: UUID, on database: any Database) async throws -> User? {
        guard
            let row = try await database.sql.raw(
                """
                SELECT id, practice_id, second_factor_failures, second_factor_last_failure_at FROM \(ident: User.schema)
                WHERE username_key = \(bind: usernameKey) AND practice_id = \(bind: practiceID)
                """
            ).first(decoding: UserRow.self)
        else { return nil }
        let user = User()
        user.id = row.id
        user.$practice.id = row.practice_id
        user.secondFactorFailures = row.second_factor_failures
        user.secondFactorLastFailureAt = row.second_factor_last_failure_at
        return user
    }

    static func activeAuthenticators(userID: UUID, on database: any Database) async throws -> [Factor] {
        try await database.sql.raw(
            """
            SELECT id, nickname, sealed_secret, digits, algorithm, period, last_used_step FROM \(ident: Factor.schema)
            WHERE user_id = \(bind: userID) AND status = 'active' AND kind = 'totp'
            """
        ).all(decoding: FactorRow.self).map { row in
            let factor = Factor(
                id: row.id, userID: userID, kind: .totp, nickname: row.nickname, digits: row.digits, algorithm: row.algorithm,
                period: row.period)
            factor.status = .active
            factor.sealedSecret = row.sealed_secret
            factor.lastUsedStep = row.last_used_step
            return factor
        }
    }
}
