import Vapor

/// JSON error bodies in the product's shape: `{"error": true, "reason": "…"}`, with a machine-readable `status`
/// where a client must act (`enrollment_required`, `second_factor_required`, `password_change_required`).
enum APIError {
    struct Body: Content {
        var error = true
        var reason: String
        var status: String?
    }

    static func response(_ status: HTTPResponseStatus, _ reason: String, state: String? = nil, headers: HTTPHeaders = [:]) -> Response {
        let response = Response(status: status, headers: headers)
        try? response.content.encode(Body(reason: reason, status: state))
        return response
    }
}
