import Vapor

/// JSON error bodies in the product's shape: `{"error": true, "reason": "…"}`.
enum APIError {
    struct Body: Content {
        var error = true
        var reason: String
    }

    static func response(_ status: HTTPResponseStatus, _ reason: String, headers: HTTPHeaders = [:]) -> Response {
        let response = Response(status: status, headers: headers)
        try? response.content.encode(Body(reason: reason))
        return response
    }
}
