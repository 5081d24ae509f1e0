import Foundation
import VaporTesting

@testable import TwofoldServer

/// A minimal browser for the server-rendered pages: keeps cookies, reads the CSRF token from forms, submits forms.
final class WebClient: @unchecked Sendable {
    let app: Application
    private(set) var cookies: [String: String] = [:]
    private(set) var lastSetCookieHeaders: [String] = []
    var userAgent = "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0 Safari/537.36"

    init(_ ctx: TestContext) { app = ctx.app }

    func get(_ path: String) async throws -> TestingHTTPResponse {
        try await send(.GET, path, form: nil)
    }

    /// Posts a form, adding the CSRF token from the last page unless `csrf` is given (use "" to leave it out).
    func post(_ path: String, _ fields: [String: String] = [:], csrf: String? = nil) async throws -> TestingHTTPResponse {
        var form = fields
        let token = csrf ?? lastCSRF
        if let token, !token.isEmpty { form["csrf"] = token }
        return try await send(.POST, path, form: form)
    }

    private(set) var lastCSRF: String?

    /// What the page's script does: a JSON POST with the session cookie and the page's CSRF token in X-CSRF-Token.
    func postJSON(_ path: String, _ document: Any = [String: Any](), sendCSRF: Bool = true) async throws -> TestingHTTPResponse {
        var headers = HTTPHeaders()
        headers.replaceOrAdd(name: .userAgent, value: userAgent)
        if !cookies.isEmpty { headers.replaceOrAdd(name: .cookie, value: cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")) }
        if sendCSRF, let lastCSRF { headers.replaceOrAdd(name: "X-CSRF-Token", value: lastCSRF) }
        headers.contentType = .json
        return try await app.testing().sendRequest(
            .POST, path, headers: headers, body: ByteBuffer(data: try JSONSerialization.data(withJSONObject: document)))
    }

    private func send(_ method: HTTPMethod, _ path: String, form: [String: String]?) async throws -> TestingHTTPResponse {
        var headers = HTTPHeaders()
        headers.replaceOrAdd(name: .userAgent, value: userAgent)
        if !cookies.isEmpty { headers.replaceOrAdd(name: .cookie, value: cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")) }
        var body = ByteBuffer()
        if let form {
            headers.contentType = .urlEncodedForm
            let encoded = form.map { key, value in
                "\(Self.escape(key))=\(Self.escape(value))"
            }.joined(separator: "&")
            body = ByteBuffer(string: encoded)
        }
        let response = try await app.testing().sendRequest(method, path, headers: headers, body: body)
        lastSetCookieHeaders = response.headers[.setCookie]
        for header in lastSetCookieHeaders {
            let pair = header.split(separator: ";", maxSplits: 1)[0].split(separator: "=", maxSplits: 1)
            guard pair.count == 2 || pair.count == 1 else { continue }
            let name = String(pair[0])
            let value = pair.count == 2 ? String(pair[1]) : ""
            if value.isEmpty || header.lowercased().contains("max-age=0") { cookies[name] = nil } else { cookies[name] = value }
        }
        if let token = Self.csrfToken(in: response.body.string) { lastCSRF = token }
        return response
    }

    static func escape(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }

    static func csrfToken(in html: String) -> String? {
        guard let range = html.range(of: #"name="csrf" value="([^"]+)""#, options: .regularExpression) else { return nil }
        let match = html[range]
        return match.split(separator: "\"")[3].description
    }
}

extension TestingHTTPResponse {
    var location: String? { headers.first(name: .location) }
}
