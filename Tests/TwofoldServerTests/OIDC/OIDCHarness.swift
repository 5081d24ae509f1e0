import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// A relying party driving the provider in-process: registers a client, runs the browser part of the code flow
/// with a ``WebClient`` and calls the back-channel endpoints.
struct OIDCHarness {
    let ctx: TestContext
    let client: OIDCClient
    let secret: String?
    let redirectURI: String

    static let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-twofold-test"
    static var challenge: String { PKCE.challenge(for: verifier) }

    static func register(
        _ ctx: TestContext, practice: Practice, isPublic: Bool = false, allowRefresh: Bool = false, alg: String = "RS256",
        backchannel: String? = nil, redirectURI: String = "https://ehr.example.org/callback"
    ) async throws -> OIDCHarness {
        let secret = isPublic ? nil : OIDCClient.newSecret()
        let client = OIDCClient(
            practiceID: try practice.requireID(), clientID: OIDCClient.newClientID(), name: "Riverside EHR",
            secretHash: secret?.hash, redirectURIs: [redirectURI], postLogoutRedirectURIs: ["https://ehr.example.org/signed-out"],
            backchannelLogoutURI: backchannel, idTokenAlgorithm: alg, allowOfflineAccess: allowRefresh, now: ctx.clock.now)
        try await client.create(on: ctx.app.db)
        return OIDCHarness(ctx: ctx, client: client, secret: secret?.secret, redirectURI: redirectURI)
    }

    func authorizePath(_ extra: [String: String] = [:], pkce: Bool = true) -> String {
        var parameters = [
            "response_type": "code", "client_id": client.clientID, "redirect_uri": redirectURI,
            "scope": "openid profile email phone", "state": "st-123", "nonce": "n-456",
        ]
        if pkce {
            parameters["code_challenge"] = Self.challenge
            parameters["code_challenge_method"] = "S256"
        }
        for (key, value) in extra { parameters[key] = value }
        return OIDCPath.authorize.string + "?"
            + parameters.map { "\($0.key)=\(WebClient.escape($0.value))" }.sorted().joined(separator: "&")
    }

    /// Follows redirects inside Twofold until the browser leaves for the relying party (or lands on a page).
    func follow(_ web: WebClient, _ response: TestingHTTPResponse, limit: Int = 8) async throws -> TestingHTTPResponse {
        var current = response
        for _ in 0..<limit {
            guard let location = current.location, location.hasPrefix("/") else { return current }
            current = try await web.get(location)
        }
        return current
    }

    /// Signs in on Twofold's pages with the password and, when asked, an authenticator code.
    func signIn(_ web: WebClient, username: String = "dr.smith", secret: String?, remember: Bool = false) async throws
        -> TestingHTTPResponse
    {
        _ = try await web.get(WebPath.login.string)
        var response = try await web.post(WebPath.login.string, ["username": username, "password": Fixtures.password])
        if response.location == WebPath.twoFactor.string, let secret {
            _ = try await web.get(WebPath.twoFactor.string)
            var fields = ["code": try Fixtures.code(secret, at: ctx.clock.now)]
            if remember { fields["remember"] = "on" }
            response = try await web.post(WebPath.twoFactor.string, fields)
        }
        return try await follow(web, response)
    }

    /// The `code` of a redirect to the relying party.
    static func parameters(of response: TestingHTTPResponse) -> [String: String] {
        guard let location = response.location, let items = URLComponents(string: location)?.queryItems else { return [:] }
        return Dictionary(items.map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { first, _ in first })
    }

    func post(_ path: String, _ form: [String: String], basic: Bool = true) async throws -> TestingHTTPResponse {
        var headers = HTTPHeaders()
        headers.contentType = .urlEncodedForm
        var form = form
        if let secret, basic {
            headers.basicAuthorization = BasicAuthorization(username: client.clientID, password: secret)
        } else {
            form["client_id"] = client.clientID
            if let secret { form["client_secret"] = secret }
        }
        let body = form.map { "\(WebClient.escape($0.key))=\(WebClient.escape($0.value))" }.joined(separator: "&")
        return try await ctx.app.testing().sendRequest(.POST, path, headers: headers, body: ByteBuffer(string: body))
    }

    func exchange(_ code: String, verifier: String? = OIDCHarness.verifier, redirectURI: String? = nil) async throws -> TestingHTTPResponse
    {
        var form = ["grant_type": "authorization_code", "code": code, "redirect_uri": redirectURI ?? self.redirectURI]
        if let verifier { form["code_verifier"] = verifier }
        return try await post(OIDCPath.token.string, form)
    }

    func userInfo(_ accessToken: String) async throws -> TestingHTTPResponse {
        var headers = HTTPHeaders()
        headers.bearerAuthorization = BearerAuthorization(token: accessToken)
        return try await ctx.app.testing().sendRequest(.GET, OIDCPath.userInfo.string, headers: headers)
    }

    /// The claims of a compact JWS, read without checking the signature.
    static func claims(_ jwt: String) -> [String: Any] {
        let parts = jwt.split(separator: ".")
        guard parts.count == 3, let bytes = try? Base64URL.decode(String(parts[1])) else { return [:] }
        return (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] ?? [:]
    }

    static func header(_ jwt: String) -> [String: Any] {
        guard let first = jwt.split(separator: ".").first, let bytes = try? Base64URL.decode(String(first)) else { return [:] }
        return (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] ?? [:]
    }

    /// Runs the whole browser part for a signed-in `web` and returns the code.
    func code(_ web: WebClient, _ extra: [String: String] = [:]) async throws -> String {
        let response = try await follow(web, try await web.get(authorizePath(extra)))
        let parameters = Self.parameters(of: response)
        return try #require(parameters["code"], "no code in \(response.location ?? response.body.string)")
    }
}
