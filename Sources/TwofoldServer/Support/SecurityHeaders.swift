import Vapor

/// Headers that keep pages out of frames, stop content sniffing, keep the URL out of referrers,
/// allow scripts and styles only from Twofold itself, and keep authenticated pages out of caches.
struct SecurityHeaders: AsyncMiddleware {
    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let response = try await next.respond(to: request)
        // A form on this page may end, after redirects, at an application's redirect URI (an OpenID Connect sign-in
        // or sign-out in progress); browsers check every hop against form-action, so that origin is allowed too.
        var formActions = ["'self'"] + request.formActionOrigins
        if response.headers.contentType == .html, let origin = try await OIDCController.pendingRedirectOrigin(request) {
            formActions.append(origin)
        }
        let headers: [(String, String)] = [
            (
                "Content-Security-Policy",
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action \(Set(formActions).sorted().joined(separator: " ")); frame-ancestors 'none'; base-uri 'none'"
            ),
            ("X-Frame-Options", "DENY"),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Cross-Origin-Opener-Policy", "same-origin"),
            ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
        ]
        for (name, value) in headers where !response.headers.contains(name: name) {
            response.headers.replaceOrAdd(name: name, value: value)
        }
        if !request.url.path.hasPrefix("/assets/"), !response.headers.contains(name: .cacheControl) {
            response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        }
        if request.twofold.configuration.secureCookies {
            response.headers.replaceOrAdd(name: "Strict-Transport-Security", value: "max-age=31536000")
        }
        return response
    }
}

extension Request {
    private struct FormActionOriginsKey: StorageKey { typealias Value = [String] }

    /// Origins besides Twofold's own that this page's forms may lead to (CSP `form-action`).
    var formActionOrigins: [String] {
        get { storage[FormActionOriginsKey.self] ?? [] }
        set { storage[FormActionOriginsKey.self] = newValue }
    }
}
