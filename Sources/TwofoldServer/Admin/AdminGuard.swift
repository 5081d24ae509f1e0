import Vapor

/// Only users with the Manage Accounts permission reach the administration pages and API (403 otherwise, audited).
struct AdminGuard: AsyncMiddleware {
    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        guard let session = request.currentSession, session.user.has(.manageAccounts) else {
            if let session = request.currentSession {
                try await request.audit(
                    .adminAccessDenied, practiceID: session.practiceID, actorID: session.userID, details: ["path": request.url.path])
            }
            throw AdminError.notAllowed
        }
        return try await next.respond(to: request)
    }
}
