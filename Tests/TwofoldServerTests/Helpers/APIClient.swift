import Foundation
import Testing
import VaporTesting

@testable import TwofoldServer

/// Speaks the JSON API the way an integrating client does: bearer token, JSON bodies. Like a real client it
/// switches to the new token Twofold hands out when a sign-in completes (the token of the password step stops working).
struct APIClient {
    let app: Application
    private let box: TokenBox
    var token: String? { box.value }

    final class TokenBox: @unchecked Sendable {
        private let lock = NSLock()
        private var stored: String?
        init(_ value: String?) { stored = value }
        var value: String? {
            get { lock.withLock { stored } }
            set { lock.withLock { stored = newValue } }
        }
    }

    init(_ ctx: TestContext, token: String? = nil) {
        app = ctx.app
        box = TokenBox(token)
    }

    /// Completing a sign-in rotates the session's token: these answers carry the new one.
    private static let rotatingPaths = [
        "/api/v1/login/verify", "/api/v1/login/recovery", "/api/v1/login/push/", "/api/v1/login/webauthn", "/activate",
    ]

    private func adoptRotatedToken(_ response: TestingHTTPResponse, path: String) {
        guard token != nil, response.status.code < 300, Self.rotatingPaths.contains(where: { path.contains($0) }),
            let rotated = response.json["token"] as? String
        else { return }
        box.value = rotated
    }

    @discardableResult
    func send(_ method: HTTPMethod, _ path: String, json: [String: any Sendable]? = nil, headers extra: HTTPHeaders = [:]) async throws
        -> TestingHTTPResponse
    {
        var headers = extra
        if let token { headers.bearerAuthorization = BearerAuthorization(token: token) }
        var body = ByteBuffer()
        if let json {
            headers.contentType = .json
            body = ByteBuffer(data: try JSONSerialization.data(withJSONObject: json))
        }
        let response = try await app.testing().sendRequest(method, path, headers: headers, body: body)
        adoptRotatedToken(response, path: path)
        return response
    }

    /// Sends a JSON document built with JSONSerialization (nested objects, such as a WebAuthn credential).
    @discardableResult
    func send(_ method: HTTPMethod, _ path: String, document: Any) async throws -> TestingHTTPResponse {
        var headers = HTTPHeaders()
        if let token { headers.bearerAuthorization = BearerAuthorization(token: token) }
        headers.contentType = .json
        let response = try await app.testing().sendRequest(
            method, path, headers: headers, body: ByteBuffer(data: try JSONSerialization.data(withJSONObject: document)))
        adoptRotatedToken(response, path: path)
        return response
    }

    /// Signs in with the password and returns a client holding the new token and the decoded reply.
    static func login(_ ctx: TestContext, username: String = "dr.smith", password: String = Fixtures.password, rememberToken: String? = nil)
        async throws -> (APIClient, [String: Any], HTTPResponseStatus)
    {
        var json: [String: any Sendable] = ["username": username, "password": password]
        if let rememberToken { json["rememberToken"] = rememberToken }
        let response = try await APIClient(ctx).send(.POST, "/api/v1/login", json: json)
        let body = response.json
        return (APIClient(ctx, token: body["token"] as? String), body, response.status)
    }
}

extension TestingHTTPResponse {
    var json: [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
    }

    var jsonArray: [[String: Any]] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [[String: Any]] ?? []
    }

    var text: String { body.string }
    var reason: String { json["reason"] as? String ?? "" }
}
