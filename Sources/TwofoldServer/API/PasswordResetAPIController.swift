import Fluent
import TwofoldAPI
import Vapor

/// `/api/v1/login/forgot`, `/api/v1/login/reset` (for integrators' own sign-in screens) and
/// `/api/v1/practice/users/{id}/password-reset` (an administrator sends a staff member a link).
struct PasswordResetAPIController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.post(APIPath.forgotPassword, use: forgot)
        routes.post(APIPath.resetPassword, use: reset)
        routes.grouped(SessionGuard(requirement: .signedIn, style: .api)).grouped(AdminGuard())
            .post(APIPath.practiceUserPasswordReset(.placeholder), use: adminReset)
    }

    /// The same body for every request, whether or not an account matched.
    static func forgotAnswer(minutes: Int) -> API.ForgotPasswordAccepted {
        API.ForgotPasswordAccepted(
            status: .accepted,
            message:
                "If an account matches, a link to set a new password was sent to its email address. It works once, for \(minutes) minutes.")
    }

    @Sendable func forgot(req: Request) async throws -> Response {
        let login = try req.apiBody(API.ForgotPasswordRequest.self).login.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !login.isEmpty else { throw PasswordResetError.emptyLogin }
        try await req.passwordResets.requestLink(login: login)
        // Byte for byte the same body every time (sorted keys), so not even the key order can differ.
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let response = Response(
            status: .accepted,
            body: .init(data: try encoder.encode(Self.forgotAnswer(minutes: req.policy.passwordReset.linkLifetimeMinutes))))
        response.headers.contentType = .json
        return response
    }

    @Sendable func reset(req: Request) async throws -> HTTPStatus {
        let body = try req.apiBody(API.ResetPasswordRequest.self)
        try await req.passwordResets.reset(
            token: body.token, password: body.password, confirmation: nil, code: body.code)
        return .noContent
    }

    @Sendable func adminReset(req: Request) async throws -> Response {
        let id = try AdminWebController.userID(req)
        let service = try AdminService(context: req.serviceContext, admin: try req.requireSession())
        _ = try await service.sendPasswordReset(
            to: id, adminPassword: try req.apiBody(API.AdminPasswordConfirmation.self).adminPassword,
            resets: req.passwordResets)
        return try await API.PasswordResetSent(status: .sent, expiresInMinutes: req.policy.passwordReset.linkLifetimeMinutes)
            .encodeResponse(status: .accepted, for: req)
    }
}
