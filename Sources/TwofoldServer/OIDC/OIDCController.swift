import Fluent
import Foundation
import TwofoldCore
import Vapor

/// The OpenID Connect provider's endpoints: discovery, authorization, token, userinfo, revocation, introspection
/// and RP-initiated logout. Sign-in itself happens on Twofold's own pages; an authorization waiting for it is carried
/// through them by a short-lived cookie and resumed at ``OIDCPath/authorizeContinue``.
struct OIDCController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.get(OIDCPath.discovery, use: discovery)
        routes.get(OIDCPath.authorize, use: authorize)
        routes.on(.POST, OIDCPath.authorize, body: .collect(maxSize: "16kb"), use: authorize)
        routes.get(OIDCPath.authorizeContinue, use: resume)
        routes.on(.POST, OIDCPath.token, body: .collect(maxSize: "16kb"), use: token)
        routes.get(OIDCPath.userInfo, use: userInfo)
        routes.on(.POST, OIDCPath.userInfo, body: .collect(maxSize: "16kb"), use: userInfo)
        routes.on(.POST, OIDCPath.revoke, body: .collect(maxSize: "16kb"), use: revoke)
        routes.on(.POST, OIDCPath.introspect, body: .collect(maxSize: "16kb"), use: introspect)
        routes.get(OIDCPath.logout, use: logout)
        routes.on(.POST, OIDCPath.logout, body: .collect(maxSize: "16kb"), use: logout)
    }

    static let pendingCookie = "twofold_oidc"

    /// A production server that signs applications in must know its public address: the issuer of every token.
    static func checkIssuer(_ app: Application) async throws {
        guard app.twofold.configuration.publicURL == nil, app.environment == .production,
            (app.environment.arguments.dropFirst().first ?? "serve") == "serve",
            try await OIDCClient.query(on: app.db).filter(\.$enabled == true).first() != nil
        else { return }
        struct MissingPublicURL: Error, CustomStringConvertible {
            var description: String {
                "OpenID Connect applications are registered, but TWOFOLD_PUBLIC_URL is not set. Set it to the https:// address users reach Twofold at (it becomes the issuer of every id token), or disable the applications with `twofold oidc-client revoke CLIENT_ID`."
            }
        }
        throw MissingPublicURL()
    }

    // MARK: discovery

    @Sendable func discovery(req: Request) async throws -> Response {
        let issuer = try req.oidcIssuer()
        let document: [String: AnyEncodableClaim] = [
            "issuer": .string(issuer),
            "authorization_endpoint": .string(issuer + OIDCPath.authorize.string),
            "token_endpoint": .string(issuer + OIDCPath.token.string),
            "userinfo_endpoint": .string(issuer + OIDCPath.userInfo.string),
            "jwks_uri": .string(issuer + OIDCPath.jwks.string),
            "revocation_endpoint": .string(issuer + OIDCPath.revoke.string),
            "introspection_endpoint": .string(issuer + OIDCPath.introspect.string),
            "end_session_endpoint": .string(issuer + OIDCPath.logout.string),
            "response_types_supported": .strings(["code"]),
            "response_modes_supported": .strings(["query"]),
            "grant_types_supported": .strings(["authorization_code", "refresh_token"]),
            "subject_types_supported": .strings(["public"]),
            "id_token_signing_alg_values_supported": .strings(["RS256", "ES256"]),
            "scopes_supported": .strings(AuthorizationParameters.supportedScopes),
            "claims_supported": .strings([
                "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "sid", "amr", "acr", "azp", "at_hash",
                "name", "given_name", "family_name", "preferred_username", "email", "email_verified",
                "phone_number", "phone_number_verified", "practice", "roles",
            ]),
            "token_endpoint_auth_methods_supported": .strings(["client_secret_basic", "client_secret_post", "none"]),
            "revocation_endpoint_auth_methods_supported": .strings(["client_secret_basic", "client_secret_post", "none"]),
            "introspection_endpoint_auth_methods_supported": .strings(["client_secret_basic", "client_secret_post"]),
            "code_challenge_methods_supported": .strings(["S256"]),
            "acr_values_supported": .strings(AssuranceLevel.allCases.map(\.acr)),
            "prompt_values_supported": .strings(["none", "login", "consent", "select_account"]),
            "claims_parameter_supported": .bool(false),
            "request_parameter_supported": .bool(false),
            "request_uri_parameter_supported": .bool(false),
            "require_request_uri_registration": .bool(true),
            "authorization_response_iss_parameter_supported": .bool(true),
            "backchannel_logout_supported": .bool(true),
            "backchannel_logout_session_supported": .bool(true),
            "frontchannel_logout_supported": .bool(false),
        ]
        let response = try Self.json(document)
        response.headers.replaceOrAdd(name: .cacheControl, value: "public, max-age=300")
        return response
    }

    // MARK: authorization

    @Sendable func authorize(req: Request) async throws -> Response {
        let issuer: String
        do { issuer = try req.oidcIssuer() } catch let error as OIDCPageError { return try await errorPage(req, error) }
        let parameters = try Self.parameters(of: req)
        let service = try OIDCService(request: req, issuer: issuer)
        let client: OIDCClient
        do {
            var found: OIDCClient?
            if let id = parameters["client_id"], id.utf8.count <= 128 {
                found = try await OIDCClient.query(on: req.db).filter(\.$clientID == id).first()
            }
            client = try AuthorizationParameters.checkClient(found, redirectURI: parameters["redirect_uri"])
        } catch let error as OIDCPageError {
            return try await errorPage(req, error)
        }
        let redirectURI = parameters["redirect_uri"]!
        do {
            let validated = try AuthorizationParameters(parameters, client: client, redirectURI: redirectURI)
            let (pending, handle) = try await service.storePending(validated, client: client)
            return try await proceed(
                req, service: service, pending: pending, client: client, handle: handle, promptNone: validated.promptNone)
        } catch let error as OAuthError {
            return Self.redirect(req, to: redirectURI, issuer: issuer, state: parameters["state"], error: error)
        }
    }

    /// Where every sign-in path lands (the home page) when an authorization is waiting.
    @Sendable func resume(req: Request) async throws -> Response {
        let issuer: String
        do { issuer = try req.oidcIssuer() } catch let error as OIDCPageError { return try await errorPage(req, error) }
        let service = try OIDCService(request: req, issuer: issuer)
        guard let handle = req.cookies[Self.pendingCookie]?.string, let (pending, client) = try await service.pending(handle: handle) else {
            // The application's request expired (they wait 30 minutes) or was answered: carry on to Twofold's home page.
            let response = req.redirect(to: WebPath.home.string)
            response.cookies[Self.pendingCookie] = Self.expiredCookie(req)
            return response
        }
        return try await proceed(req, service: service, pending: pending, client: client, handle: handle, promptNone: false)
    }

    private func proceed(
        _ req: Request, service: OIDCService, pending: OIDCAuthorizationRequest, client: OIDCClient, handle: String, promptNone: Bool
    ) async throws -> Response {
        let session = req.currentSession
        let decision = try await service.decide(pending, client: client, session: session, promptNone: promptNone)
        let waiting: Response
        switch decision {
        case .issue:
            let code = try await service.issueCode(pending, client: client, session: session!)
            var response = Self.redirect(
                req, to: pending.redirectURI, issuer: service.context.issuer, state: pending.state, error: nil, code: code)
            response = Self.clearingPending(response, req)
            return response
        case .refuse(let error):
            try await pending.delete(on: req.db)
            return Self.clearingPending(
                Self.redirect(req, to: pending.redirectURI, issuer: service.context.issuer, state: pending.state, error: error), req)
        case .signIn, .freshSignIn:
            if let hint = pending.loginHint ?? (decision == .freshSignIn ? session?.user.username : nil) {
                waiting = req.redirect(to: WebPath.login, query: ["continue": "oidc", "username": hint])
            } else {
                waiting = req.redirect(to: WebPath.login, query: ["continue": "oidc"])
            }
        case .continueSignIn:
            waiting = req.redirect(to: WebPath.home.string)
        case .freshFactor(let passkeyOnly):
            try await service.demandFreshFactor(pending, session: session!)
            waiting = req.redirect(to: WebPath.twoFactor, query: passkeyOnly ? ["method": "passkey"] : [:])
        }
        waiting.cookies[Self.pendingCookie] = HTTPCookies.Value(
            string: handle, maxAge: Int(req.policy.oidc.pendingRequestLifetime), path: "/",
            isSecure: req.twofold.configuration.secureCookies,
            isHTTPOnly: true, sameSite: .lax)
        return waiting
    }

    /// The origin of the redirect URI of the authorization this browser is signing in for, if any.
    static func pendingRedirectOrigin(_ req: Request) async throws -> String? {
        guard let handle = req.cookies[pendingCookie]?.string, !handle.isEmpty, handle.utf8.count <= 128,
            let pending = try await OIDCAuthorizationRequest.query(on: req.db).filter(\.$handleHash == TwofoldCore.Digest.sha256Hex(handle))
                .first()
        else { return nil }
        return cspSource(of: pending.redirectURI)
    }

    /// A CSP source expression for a URI: `scheme://host[:port]`, or `scheme:` for a private-use scheme.
    static func cspSource(of uri: String) -> String? {
        guard let components = URLComponents(string: uri), let scheme = components.scheme?.lowercased() else { return nil }
        guard let host = components.host, !host.isEmpty else { return scheme + ":" }
        let hostPart = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return "\(scheme)://\(hostPart)" + (components.port.map { ":\($0)" } ?? "")
    }

    /// The home page's hook: a signed-in browser with a waiting authorization goes back to it.
    static func waitingAuthorization(_ req: Request) -> Response? {
        guard let handle = req.cookies[pendingCookie]?.string, !handle.isEmpty else { return nil }
        return req.redirect(to: OIDCPath.authorizeContinue)
    }

    static func expiredCookie(_ req: Request) -> HTTPCookies.Value {
        HTTPCookies.Value(
            string: "", expires: Date(timeIntervalSince1970: 0), maxAge: 0, path: "/",
            isSecure: req.twofold.configuration.secureCookies, isHTTPOnly: true, sameSite: .lax)
    }

    private static func clearingPending(_ response: Response, _ req: Request) -> Response {
        if req.cookies[pendingCookie] != nil { response.cookies[pendingCookie] = expiredCookie(req) }
        return response
    }

    /// The authorization response (RFC 6749 §4.1.2, with `iss` per RFC 9207), in the redirect URI's query.
    static func redirect(_ req: Request, to redirectURI: String, issuer: String, state: String?, error: OAuthError?, code: String? = nil)
        -> Response
    {
        var items: [URLQueryItem] = []
        if let code { items.append(URLQueryItem(name: "code", value: code)) }
        if let error {
            items.append(URLQueryItem(name: "error", value: error.code))
            items.append(URLQueryItem(name: "error_description", value: error.description))
        }
        if let state { items.append(URLQueryItem(name: "state", value: state)) }
        items.append(URLQueryItem(name: "iss", value: issuer))
        var components = URLComponents()
        components.queryItems = items
        let query = (components.percentEncodedQuery ?? "").replacingOccurrences(of: "+", with: "%2B")
        let separator = redirectURI.contains("?") ? "&" : "?"
        let response = req.redirect(to: redirectURI + separator + query)
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }

    // MARK: token

    @Sendable func token(req: Request) async throws -> Response {
        try await Self.endpoint(req, limited: true) { service in
            let form = try Self.form(of: req)
            let client = try await service.authenticate(try Self.credentials(req, form: form))
            switch form["grant_type"] {
            case "authorization_code"?:
                return try Self.json(
                    try await service.exchange(
                        code: form["code"], redirectURI: form["redirect_uri"], verifier: form["code_verifier"], client: client))
            case "refresh_token"?:
                return try Self.json(try await service.refresh(form["refresh_token"], scope: form["scope"], client: client))
            case let other?:
                throw OAuthError.unsupportedGrantType(other)
            case nil:
                throw OAuthError.invalidRequest("grant_type is missing.")
            }
        }
    }

    @Sendable func userInfo(req: Request) async throws -> Response {
        try await Self.endpoint(req, limited: false) { service in
            var token = req.headers.bearerAuthorization?.token
            if token == nil, req.method == .POST, req.headers.contentType == .urlEncodedForm {
                token = try Self.form(of: req)["access_token"]
            }
            return try Self.json(try await service.userInfo(accessToken: token))
        }
    }

    @Sendable func revoke(req: Request) async throws -> Response {
        try await Self.endpoint(req, limited: true) { service in
            let form = try Self.form(of: req)
            let client = try await service.authenticate(try Self.credentials(req, form: form))
            try await service.revoke(form["token"], hint: form["token_type_hint"], client: client)
            return Response(status: .ok)
        }
    }

    @Sendable func introspect(req: Request) async throws -> Response {
        try await Self.endpoint(req, limited: true) { service in
            let form = try Self.form(of: req)
            let client = try await service.authenticate(try Self.credentials(req, form: form))
            guard !client.isPublic else {
                throw OAuthError.invalidClient("Introspection is for confidential clients (with a secret).", basic: false)
            }
            return try Self.json(try await service.introspect(form["token"], client: client))
        }
    }

    /// Runs a back-channel endpoint: the service for this request, the address limit, OAuth errors as JSON, and
    /// never a cached answer.
    private static func endpoint(_ req: Request, limited: Bool, _ body: (OIDCService) async throws -> Response) async throws -> Response {
        do {
            let service = try OIDCService(request: req, issuer: try req.oidcIssuer())
            if limited { try await limitAddress(req) }
            return noStore(try await body(service))
        } catch let error as OAuthError {
            return error.response()
        } catch let error as OIDCPageError {
            return OAuthError(code: "temporarily_unavailable", description: error.message, status: error.status).response()
        }
    }

    static func json(_ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let response = Response(status: .ok, body: .init(data: try encoder.encode(value)))
        response.headers.contentType = .json
        return response
    }

    private static func noStore(_ response: Response) -> Response {
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        response.headers.replaceOrAdd(name: .pragma, value: "no-cache")
        return response
    }

    /// All requests of one client address to the token, revocation and introspection endpoints, reserved first.
    private static func limitAddress(_ req: Request) async throws {
        let reserved = try await ThrottleStore(database: req.db).reserve(
            "oidc:token:ip:\(req.clientThrottleKey)", limit: req.policy.oidc.tokenRequestsPerAddress, now: req.now)
        if let retryAfter = reserved.retryAfter {
            throw OAuthError(
                code: "temporarily_unavailable", description: "Too many requests from this address; try again in \(retryAfter) seconds.",
                status: .tooManyRequests)
        }
    }

    /// The client's credentials: HTTP Basic (RFC 6749 §2.3.1, form-encoded id and secret), or in the form body.
    static func credentials(_ req: Request, form: [String: String]) throws -> OIDCService.ClientCredentials? {
        if let header = req.headers.first(name: .authorization), header.lowercased().hasPrefix("basic ") {
            if form["client_secret"] != nil {
                throw OAuthError.invalidRequest("Use one client authentication method, not both Basic and client_secret.")
            }
            guard let basic = req.headers.basicAuthorization else {
                throw OAuthError.invalidClient("The Basic authorization header is malformed.", basic: true)
            }
            let id = basic.username.removingPercentEncoding ?? basic.username
            let secret = basic.password.removingPercentEncoding ?? basic.password
            if let formID = form["client_id"], formID != id {
                throw OAuthError.invalidRequest("client_id in the body differs from the Basic credentials.")
            }
            return .basic(id: id, secret: secret)
        }
        guard let id = form["client_id"] else { return nil }
        if let secret = form["client_secret"] { return .post(id: id, secret: secret) }
        return .none(id: id)
    }

    // MARK: logout

    struct LogoutPage: Encodable {
        var layout: Layout
        var action = OIDCPath.logout.string
        var applicationName: String?
        var clientID: String?
        var postLogoutRedirectURI: String?
        var state: String?
        var signedIn: Bool
        var homeLink = WebPath.home.string
        var loginLink = WebPath.login.string
    }

    /// RP-initiated logout 1.0: asks the user to confirm, ends the Twofold session, tells every application of the
    /// session over the back channel, and returns to a registered `post_logout_redirect_uri` only.
    @Sendable func logout(req: Request) async throws -> Response {
        let issuer: String
        do { issuer = try req.oidcIssuer() } catch let error as OIDCPageError { return try await errorPage(req, error) }
        let parameters = try Self.parameters(of: req)
        let service = try OIDCService(request: req, issuer: issuer)
        var client: OIDCClient?
        if let hint = parameters["id_token_hint"], !hint.isEmpty {
            guard hint.utf8.count <= 8192, let claims = try? await service.context.signer.verify(hint, as: IDTokenHint.self),
                claims.iss == issuer
            else {
                return try await errorPage(
                    req,
                    OIDCPageError(title: "Sign-out request refused", message: "The application's id_token_hint was not issued by Twofold."))
            }
            client = try await OIDCClient.query(on: req.db).filter(\.$clientID == claims.aud).first()
        }
        if let clientID = parameters["client_id"], !clientID.isEmpty {
            if let client, client.clientID != clientID {
                return try await errorPage(
                    req, OIDCPageError(title: "Sign-out request refused", message: "client_id does not match the id_token_hint."))
            }
            client = try await OIDCClient.query(on: req.db).filter(\.$clientID == String(clientID.prefix(128))).first()
        }
        let postLogout = parameters["post_logout_redirect_uri"].flatMap { $0.isEmpty ? nil : $0 }
        if let postLogout, client?.postLogoutRedirectURIs.contains(postLogout) != true {
            return try await errorPage(
                req,
                OIDCPageError(
                    title: "Sign-out request refused",
                    message:
                        "The application asked to send you to an address that is not registered as its sign-out address. You are still signed in; sign out from Twofold's menu instead."
                ))
        }
        let state = parameters["state"].map { String($0.prefix(AuthorizationParameters.maxStateLength)) }
        let confirmed = req.method == .POST && parameters["confirm"] == "yes"
        if confirmed {
            if let session = req.currentSession {
                guard let provided = parameters[CSRFGuard.fieldName], ConstantTime.equals(session.record.csrfToken, provided) else {
                    throw Abort(
                        .forbidden, reason: "This form has expired or did not come from Twofold. Go back, reload the page and try again.")
                }
                try await LoginWebController.endSession(req, session: session, via: client)
            }
            if let postLogout {
                let response = req.redirect(to: Self.postLogoutURL(postLogout, state: state))
                response.cookies[req.sessionCookieName] = SessionCookie.expired(secure: req.twofold.configuration.secureCookies)
                return response
            }
            let page = LogoutPage(
                layout: Layout(title: "Signed out", practiceName: nil, csrf: req.anonymousCSRFToken), applicationName: client?.name,
                signedIn: false)
            let response = try await req.render("oidc-logout", page)
            response.cookies[req.sessionCookieName] = SessionCookie.expired(secure: req.twofold.configuration.secureCookies)
            return response
        }
        if req.currentSession == nil, let postLogout {
            // Nobody is signed in here: nothing to confirm.
            return req.redirect(to: Self.postLogoutURL(postLogout, state: state))
        }
        if let postLogout, let origin = Self.cspSource(of: postLogout) { req.formActionOrigins.append(origin) }
        let page = LogoutPage(
            layout: req.layout(req.currentSession == nil ? "Signed out" : "Sign out"), applicationName: client?.name,
            clientID: client?.clientID,
            postLogoutRedirectURI: postLogout, state: state, signedIn: req.currentSession != nil)
        return try await req.renderUncached("oidc-logout", page, status: .ok)
    }

    /// A registered post-logout redirect URI with the application's `state` added to its query.
    private static func postLogoutURL(_ uri: String, state: String?) -> String {
        var components = URLComponents()
        components.queryItems = state.map { [URLQueryItem(name: "state", value: $0)] }
        return uri + (components.percentEncodedQuery.map { (uri.contains("?") ? "&" : "?") + $0 } ?? "")
    }

    // MARK: helpers

    /// Query parameters for GET, form fields for POST (OpenID Connect Core §3.1.2.1 allows both).
    static func parameters(of req: Request) throws -> [String: String] {
        if req.method == .POST { return try form(of: req) }
        return (try? req.query.decode([String: String].self)) ?? [:]
    }

    static func form(of req: Request) throws -> [String: String] {
        guard req.headers.contentType == .urlEncodedForm else {
            throw OAuthError.invalidRequest("Send the parameters as application/x-www-form-urlencoded.")
        }
        guard let form = try? req.content.decode([String: String].self) else {
            throw OAuthError.invalidRequest("The form body could not be read.")
        }
        return form
    }

    private func errorPage(_ req: Request, _ error: OIDCPageError) async throws -> Response {
        struct Page: Encodable {
            var layout: Layout
            var reason: String
            var signedIn: Bool
            var homeLink: String
        }
        return try await req.render(
            "error",
            Page(
                layout: req.layout(error.title), reason: error.message,
                signedIn: req.currentSession?.record.stage == .signedIn, homeLink: WebPath.home.string), status: error.status)
    }
}

extension OIDCService {
    init(request: Request, issuer: String) throws {
        self.init(
            context: OIDCContext(
                database: request.db, now: request.now, issuer: issuer, signer: request.tokenSigner, audit: request.auditRecorder,
                client: request.client, logger: request.logger, policy: request.policy))
    }
}

extension OIDCService {
    /// ``sessionEnded(sessionID:userID:)`` for a request (which does nothing when no application received
    /// tokens in the session).
    static func sessionEnded(_ req: Request, sessionID: UUID, userID: UUID) async throws {
        let issuer = (try? req.oidcIssuer()) ?? req.twofold.configuration.publicURL ?? req.publicBaseURL
        try await OIDCService(request: req, issuer: issuer).sessionEnded(sessionID: sessionID, userID: userID)
    }
}

extension Request {
    /// The provider's issuer: `TWOFOLD_PUBLIC_URL`; without it only a server under test or one reached on its own
    /// loopback address (development on one machine) answers, as for step-up assertions.
    func oidcIssuer() throws -> String {
        guard
            let issuer = StepUpService.issuer(
                publicURL: twofold.configuration.publicURL, isTesting: application.environment == .testing,
                host: headers.first(name: .host), peerIsLoopback: StepUpService.isLoopback(remoteAddress),
                requestBaseURL: publicBaseURL)
        else {
            throw OIDCPageError(
                title: "OpenID Connect is not set up",
                message: "Set TWOFOLD_PUBLIC_URL to the address users reach Twofold at; until then Twofold cannot sign in applications.",
                status: .serviceUnavailable)
        }
        return issuer
    }
}
