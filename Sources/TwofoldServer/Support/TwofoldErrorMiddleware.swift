import Fluent
import Vapor

/// Turns every error into a clear answer: JSON `{"error": true, "reason": …}` for the API, an HTML page for people.
/// Unexpected errors are logged and shown as a generic message, never with their internals.
struct TwofoldErrorMiddleware: AsyncMiddleware {
    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        do {
            return try await next.respond(to: request)
        } catch {
            return await response(for: error, request: request)
        }
    }

    private func response(for error: any Error, request: Request) async -> Response {
        let status: HTTPResponseStatus
        let reason: String
        var headers: HTTPHeaders = [:]
        switch error {
        case let decoding as DecodingError:
            // Before AbortError: Vapor's own reason for a DecodingError is written for the server's developers.
            status = .badRequest
            reason = decoding.clientReason
        case let abort as any AbortError:
            status = abort.status
            reason = abort.status == .notFound && abort.reason == "Not Found" ? "There is nothing at this address." : abort.reason
            headers = abort.headers
        default:
            status = .internalServerError
            reason = "Something went wrong on our side. Try again; if it keeps happening, tell your practice's IT contact."
        }
        if error is any DatabaseError { request.metrics.databaseError() }
        if status.code >= 500 {
            request.logger.error(
                "Request failed", metadata: ["path": .string(request.url.path), "error": .string(String(reflecting: type(of: error)))])
        } else {
            request.logger.info(
                "Request refused", metadata: ["path": .string(request.url.path), "status": .stringConvertible(status.code)])
        }
        headers.remove(name: .contentType)
        headers.remove(name: .contentLength)
        if Self.wantsJSON(request) {
            return APIError.response(status, reason, headers: headers)
        }
        do {
            let page = ErrorPage(
                layout: request.layout(status.reasonPhrase, error: nil), status: Int(status.code), reason: reason,
                signedIn: request.currentSession != nil)
            let response = try await request.render("error", page, status: status)
            response.headers.add(contentsOf: headers)
            return response
        } catch {
            let response = Response(status: status, headers: headers, body: .init(string: reason))
            response.headers.contentType = .plainText
            return response
        }
    }

    struct ErrorPage: Encodable {
        var layout: Layout
        var status: Int
        var reason: String
        var signedIn: Bool
        var homeLink = WebPath.home.string
    }

    static func wantsJSON(_ request: Request) -> Bool {
        let path = request.url.path
        if path.hasPrefix("/api/") || path == "/api" || path.hasPrefix("/.well-known/") || path == "/openapi.json" { return true }
        return request.headers.accept.first?.mediaType == .json
    }
}
