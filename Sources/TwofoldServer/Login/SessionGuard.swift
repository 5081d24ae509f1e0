import TwofoldCore
import Vapor

/// Lets a request through only at the right stage of sign-in; the half-signed-in reach only the
/// second-factor and enrollment pages, and a user who must enroll reaches nothing else.
struct SessionGuard: AsyncMiddleware {
    enum Requirement: Sendable {
        case signedIn
        /// Signed in, even while a temporary password still has to be changed (the password page itself).
        case passwordChange
        case secondFactor
        case enrollmentOrSignedIn
    }

    enum Style: Sendable {
        case web, api
    }

    let requirement: Requirement
    let style: Style

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        if let refusal = refusal(for: request) { return refusal }
        return try await next.respond(to: request)
    }

    private func refusal(for request: Request) -> Response? {
        guard let session = request.currentSession else {
            return style == .web
                ? request.redirect(to: WebPath.login, query: request.sessionExpired ? ["expired": "1"] : [:])
                : APIError.response(
                    .unauthorized,
                    request.sessionExpired
                        ? "Your session has ended (after a period of inactivity, or at the practice's session lifetime). Sign in again."
                        : "Sign in first: send Authorization: Bearer <token> from POST /api/v1/login.")
        }
        let stage = session.record.stage
        switch requirement {
        case .signedIn where stage == .signedIn && !session.mustEnroll && !session.user.mustChangePassword,
            .passwordChange where stage == .signedIn && !session.mustEnroll,
            .secondFactor where stage == .secondFactor,
            .enrollmentOrSignedIn where stage == .enrollment || stage == .signedIn:
            return nil
        default:
            break
        }
        switch style {
        case .web:
            switch stage {
            case .secondFactor: return request.redirect(to: WebPath.twoFactor)
            case .enrollment: return request.redirect(to: WebPath.setup)
            case .signedIn:
                if session.mustEnroll { return request.redirect(to: WebPath.setup) }
                return request.redirect(to: session.user.mustChangePassword ? WebPath.password : WebPath.home)
            }
        case .api:
            switch stage {
            case .secondFactor:
                return APIError.response(
                    .unauthorized, "Complete the second factor first (POST /api/v1/login/verify).", state: "second_factor_required")
            case .enrollment:
                return APIError.response(
                    .forbidden, "enrollment_required: set up two-factor authentication first (POST /api/v1/me/factors/totp).",
                    state: "enrollment_required")
            case .signedIn:
                if session.mustEnroll {
                    return APIError.response(
                        .forbidden,
                        "enrollment_required: your practice requires two-factor authentication; set it up first (POST /api/v1/me/factors/totp).",
                        state: "enrollment_required")
                }
                if session.user.mustChangePassword {
                    return APIError.response(
                        .forbidden, "password_change_required: choose a new password first (Account › Change password).",
                        state: "password_change_required")
                }
                return APIError.response(.conflict, "You are already signed in.")
            }
        }
    }
}

/// Refuses state-changing requests that do not carry the session's CSRF token (form field `csrf` or header `X-CSRF-Token`).
/// Bearer-token API calls are exempt: a browser never attaches that header on its own.
struct CSRFGuard: AsyncMiddleware {
    static let fieldName = "csrf"
    static let headerName = "X-CSRF-Token"
    /// Web forms always need a token (the sign-in form uses a double-submit cookie); the JSON API needs one
    /// only when a browser calls it with the session cookie.
    let protectsAnonymousRequests: Bool

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        guard ![.GET, .HEAD, .OPTIONS].contains(request.method) else { return try await next.respond(to: request) }
        if request.currentSession?.viaBearer == true || (request.currentSession == nil && request.headers.bearerAuthorization != nil) {
            return try await next.respond(to: request)
        }
        if request.currentSession == nil && !protectsAnonymousRequests {
            return try await next.respond(to: request)
        }
        let expected = request.currentSession?.record.csrfToken ?? request.cookies[request.csrfCookieName]?.string
        var provided = request.headers.first(name: Self.headerName)
        if provided == nil, request.headers.contentType == .urlEncodedForm {
            _ = try await request.body.collect(max: request.application.routes.defaultMaxBodySize.value).get()
            provided = try? request.content.get(String.self, at: Self.fieldName)
        }
        guard let expected, let provided, ConstantTime.equals(expected, provided) else {
            throw Abort(.forbidden, reason: "This form has expired or did not come from Twofold. Go back, reload the page and try again.")
        }
        return try await next.respond(to: request)
    }
}
