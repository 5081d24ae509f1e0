import Foundation
import Testing
@testable import TwofoldServer
import VaporTesting

/// Speaks the JSON API the way an integrating client does: bearer token, JSON bodies.
struct APIClient {
    let app: Application
    var token: String?

    init(_ ctx: TestContext, token: String? = nil) {
        app = ctx.app
        self.token = token
    }

    @discardableResult
    func send(_ method: HTTPMethod, _ path: String, json: [String: any Sendable]? = nil, headers extra: HTTPHeaders = [:]) async throws -> TestingHTTPResponse {
        var headers = extra
        if let token { headers.bearerAuthorization = BearerAuthorization(token: token) }
        var body = ByteBuffer()
        if let json {
            headers.contentType = .json
            body = ByteBuffer(data: try JSONSerialization.data(withJSONObject: json))
        }
        return try await app.testing().sendRequest(method, path, headers: headers, body: body)
    }

    /// Sends a JSON document built with JSONSerialization (nested objects, such as a WebAuthn credential).
    @discardableResult
    func send(_ method: HTTPMethod, _ path: String, document: Any) async throws -> TestingHTTPResponse {
        var headers = HTTPHeaders()
        if let token { headers.bearerAuthorization = BearerAuthorization(token: token) }
        headers.contentType = .json
        return try await app.testing().sendRequest(method, path, headers: headers, body: ByteBuffer(data: try JSONSerialization.data(withJSONObject: document)))
    }

    /// Signs in with the password and returns a client holding the new token and the decoded reply.
    static func login(_ ctx: TestContext, username: String = "dr.smith", password: String = Fixtures.password, rememberToken: String? = nil) async throws -> (APIClient, [String: Any], HTTPResponseStatus) {
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
