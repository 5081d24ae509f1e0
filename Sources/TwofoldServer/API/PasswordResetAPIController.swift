import Fluent
import Vapor

/// `/api/v1/login/forgot`, `/api/v1/login/reset` (for integrators' own sign-in screens) and
/// `/api/v1/practice/users/{id}/password-reset` (an administrator sends a staff member a link).
struct PasswordResetAPIController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.post("login", "forgot", use: forgot)
        routes.post("login", "reset", use: reset)
        routes.grouped(SessionGuard(requirement: .signedIn, style: .api)).grouped(AdminGuard())
            .post("practice", "users", ":id", "password-reset", use: adminReset)
    }

    struct ForgotRequest: Content {
        var login: String?
    }

    /// The same body for every request, whether or not an account matched.
    struct ForgotResponse: Content {
        var status = "accepted"
        var message = "If an account matches, a link to set a new password was sent to its email address. It works once, for 30 minutes."
    }

    struct ResetRequest: Content {
        var token: String?
        var password: String?
        var code: String?
    }

    @Sendable func forgot(req: Request) async throws -> Response {
        let login = (try req.content.decode(ForgotRequest.self).login ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard !login.isEmpty else { throw PasswordResetError.emptyLogin }
        try await PasswordResetService(request: req).requestLink(login: login)
        // Byte for byte the same body every time (sorted keys), so not even the key order can differ.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let response = Response(status: .accepted, body: .init(data: try encoder.encode(ForgotResponse())))
        response.headers.contentType = .json
        return response
    }

    @Sendable func reset(req: Request) async throws -> HTTPStatus {
        let body = try req.content.decode(ResetRequest.self)
        try await PasswordResetService(request: req).reset(token: body.token ?? "", password: body.password ?? "", confirmation: nil, code: body.code)
        return .noContent
    }

    struct ResetSentResponse: Content {
        var status = "sent"
        var expiresInMinutes = Int(PasswordReset.lifetime / 60)
    }

    @Sendable func adminReset(req: Request) async throws -> Response {
        let id = try AdminWebController.userID(req)
        let service = try AdminService(request: req, admin: try req.requireSession())
        _ = try await service.sendPasswordReset(to: id, adminPassword: try req.content.decode(PracticeAPIController.AdminPasswordRequest.self).adminPassword)
        return try await ResetSentResponse().encodeResponse(status: .accepted, for: req)
    }
}
