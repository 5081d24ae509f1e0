import Fluent
import TwofoldCore
import Vapor

/// Finds the request's session (cookie or bearer token), ends it when idle too long, and keeps it fresh.
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
        if let cookie = request.cookies[SessionCookie.name]?.string, !cookie.isEmpty {
            return (cookie, false)
        }
        return nil
    }

    private func load(token: String, viaBearer: Bool, into request: Request) async throws {
        guard token.utf8.count <= 128,
              let record = try await SessionRecord.query(on: request.db)
                .filter(\.$tokenHash == TwofoldCore.Digest.sha256Hex(token)).with(\.$user).first()
        else { return }
        let user = record.user
        guard let practice = try await Practice.find(user.$practice.id, on: request.db) else { return }
        let now = request.now
        let idleLimit = TimeInterval(max(practice.inactivityMinutes, 1) * 60)
        if now.timeIntervalSince(record.lastSeenAt) > idleLimit {
            try await record.delete(on: request.db)
            request.sessionExpired = true
            try await request.audit(.sessionExpired, practiceID: practice.id, actorID: user.id, details: ["idle_minutes": String(practice.inactivityMinutes)])
            return
        }
        if now.timeIntervalSince(record.lastSeenAt) > Self.touchInterval {
            record.lastSeenAt = now
            try await record.save(on: request.db)
        }
        let hasActiveFactor = try await Factor.query(on: request.db)
            .filter(\.$user.$id == user.id!).filter(\.$status == .active).first() != nil
        request.currentSession = CurrentSession(record: record, user: user, practice: practice, hasActiveFactor: hasActiveFactor, viaBearer: viaBearer)
    }
}
