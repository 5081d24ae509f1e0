import Fluent
import SQLKit
import TwofoldCore
import Vapor

/// Finds the request's session (cookie or bearer token), ends it when idle too long or past its absolute
/// lifetime, keeps it fresh, and applies policy changes to sessions already open: a signed-in user whom the practice
/// or an administrator now requires to use 2FA is moved back to enrollment, and an enrollment-stage session ends
/// once the user has a factor it did not enroll.
struct SessionLoader: AsyncMiddleware {
    /// `last_seen_at` is written at most this often, so busy pages do not write on every request.
    static let touchInterval: TimeInterval = 60

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        if let (token, viaBearer) = Self.token(in: request) {
            try await load(token: token, viaBearer: viaBearer, into: request)
        }
        return try await next.respond(to: request)
    }

    static func token(in request: Request) -> (String, Bool)? {
        if let bearer = request.headers.bearerAuthorization?.token, !bearer.hasPrefix("tfk_") {
            return (bearer, true)
        }
        if let cookie = request.cookies[request.sessionCookieName]?.string, !cookie.isEmpty {
            return (cookie, false)
        }
        return nil
    }

    private func load(token: String, viaBearer: Bool, into request: Request) async throws {
        // The session, its user and the user's practice in one query (every signed-in request runs it).
        guard token.utf8.count <= 128,
            let record = try await SessionRecord.query(on: request.db)
                .filter(\.$tokenHash == TwofoldCore.Digest.sha256Hex(token))
                .join(User.self, on: \SessionRecord.$user.$id == \User.$id)
                .join(Practice.self, on: \User.$practice.$id == \Practice.$id)
                .first()
        else { return }
        let user = try record.joined(User.self)
        let practice = try record.joined(Practice.self)
        record.$user.value = user
        let now = request.now
        let idleLimit = TimeInterval(max(practice.inactivityMinutes, 1) * 60)
        let lifetime = TimeInterval(min(max(practice.sessionLifetimeHours, 1), 24) * 3600)
        if now.timeIntervalSince(record.lastSeenAt) > idleLimit {
            try await record.delete(on: request.db)
            request.sessionExpired = true
            try await request.audit(
                .sessionExpired, practiceID: practice.id, actorID: user.id, details: ["idle_minutes": String(practice.inactivityMinutes)])
            return
        }
        if now.timeIntervalSince(record.createdAt) > lifetime {
            try await record.delete(on: request.db)
            request.sessionExpired = true
            try await request.audit(
                .sessionExpired, practiceID: practice.id, actorID: user.id,
                details: ["reason": "lifetime", "lifetime_hours": String(practice.sessionLifetimeHours)])
            return
        }
        if now.timeIntervalSince(record.lastSeenAt) > Self.touchInterval {
            record.lastSeenAt = now
            try await record.save(on: request.db)
        }
        // Only whether the user has an active factor, and which session enrolled each, is needed here.
        struct ActiveFactor: Decodable {
            var enrollmentSessionID: UUID?
            enum CodingKeys: String, CodingKey { case enrollmentSessionID = "enrollment_session_id" }
        }
        let activeFactors = try await request.db.sql.select().column("enrollment_session_id").from(Factor.schema)
            .where("user_id", .equal, user.requireID()).where("status", .equal, Factor.Status.active.rawValue)
            .all(decoding: ActiveFactor.self)
        let hasActiveFactor = !activeFactors.isEmpty
        if record.stage == .enrollment, hasActiveFactor, !activeFactors.contains(where: { $0.enrollmentSessionID == record.id }) {
            // The user set up a method elsewhere: this half-signed-in session has nothing left to enroll.
            try await record.delete(on: request.db)
            try await request.audit(.sessionEnded, practiceID: practice.id, actorID: user.id, details: ["reason": "enrolled_elsewhere"])
            return
        }
        if record.stage == .signedIn, !hasActiveFactor, practice.mandatoryTwoFactor || user.twoFactorRequired {
            // 2FA became required while this session was open: it goes back to enrollment, like a new sign-in.
            record.stage = .enrollment
            try await record.save(on: request.db)
            try await request.audit(.sessionEnrollmentRequired, practiceID: practice.id, actorID: user.id)
        }
        request.currentSession = try CurrentSession(
            record: record, user: user, practice: practice, hasActiveFactor: hasActiveFactor, viaBearer: viaBearer)
    }
}
