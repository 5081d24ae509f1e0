import Vapor

/// An OAuth 2.0 / OpenID Connect error (RFC 6749 §4.1.2.1 and §5.2, OpenID Connect Core §3.1.2.6, RFC 6750 §3.1).
struct OAuthError: Error, Equatable, Sendable {
    var code: String
    var description: String
    var status: HTTPResponseStatus = .badRequest
    /// A `WWW-Authenticate` challenge (invalid client over Basic, invalid bearer token).
    var challenge: String?

    static func invalidRequest(_ description: String) -> OAuthError { OAuthError(code: "invalid_request", description: description) }
    static func invalidScope(_ description: String) -> OAuthError { OAuthError(code: "invalid_scope", description: description) }
    static func invalidGrant(_ description: String) -> OAuthError { OAuthError(code: "invalid_grant", description: description) }
    static func unsupportedGrantType(_ type: String) -> OAuthError {
        OAuthError(
            code: "unsupported_grant_type",
            description: "grant_type \(type.prefix(40)) is not supported; use authorization_code or refresh_token.")
    }
    static func unsupportedResponseType() -> OAuthError {
        OAuthError(code: "unsupported_response_type", description: "Only the authorization code flow (response_type=code) is supported.")
    }
    static func invalidClient(_ description: String, basic: Bool) -> OAuthError {
        OAuthError(
            code: "invalid_client", description: description, status: .unauthorized, challenge: basic ? #"Basic realm="twofold""# : nil)
    }
    static func accessDenied(_ description: String) -> OAuthError { OAuthError(code: "access_denied", description: description) }
    static func loginRequired() -> OAuthError { OAuthError(code: "login_required", description: "The user must sign in.") }
    static func interactionRequired(_ description: String) -> OAuthError {
        OAuthError(code: "interaction_required", description: description)
    }
    static func unmetAuthenticationRequirements(_ description: String) -> OAuthError {
        OAuthError(code: "unmet_authentication_requirements", description: description)
    }
    static func invalidToken(_ description: String) -> OAuthError {
        OAuthError(
            code: "invalid_token", description: description, status: .unauthorized,
            challenge: #"Bearer error="invalid_token", error_description="\#(description)""#)
    }
    static func temporarilyUnavailable(_ description: String, retryAfter: Int) -> OAuthError {
        OAuthError(code: "temporarily_unavailable", description: description, status: .tooManyRequests, challenge: nil)
    }

    /// The JSON error body of the token, revocation, introspection and userinfo endpoints.
    func response(retryAfter: Int? = nil) -> Response {
        let body =
            (try? JSONSerialization.data(withJSONObject: ["error": code, "error_description": description], options: [.sortedKeys]))
            ?? Data()
        let response = Response(status: status, body: .init(data: body))
        response.headers.contentType = .json
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        response.headers.replaceOrAdd(name: .pragma, value: "no-cache")
        if let challenge { response.headers.replaceOrAdd(name: .wwwAuthenticate, value: challenge) }
        if let retryAfter { response.headers.replaceOrAdd(name: .retryAfter, value: String(retryAfter)) }
        return response
    }
}

/// A problem with the authorization request that must not be sent to the redirect URI (unknown client, unregistered
/// redirect URI): shown to the user on a page of Twofold's, never redirected (RFC 6749 §4.1.2.1).
struct OIDCPageError: Error, Sendable {
    var title: String
    var message: String
    var status: HTTPResponseStatus = .badRequest
}
