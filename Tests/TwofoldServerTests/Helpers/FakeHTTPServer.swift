import Foundation
import NIOConcurrencyHelpers
import Vapor

/// A real HTTP server on 127.0.0.1 that records what it receives: stands in for Twilio or an SMS webhook.
final class FakeHTTPServer: Sendable {
    struct Received: Sendable {
        var method: HTTPMethod
        var path: String
        var headers: HTTPHeaders
        var body: String
    }

    let app: Application
    private let received: NIOLockedValueBox<[Received]>
    let port: Int

    var requests: [Received] { received.withLockedValue { $0 } }

    /// Starts a server that answers every request with `status`.
    static func start(status: HTTPResponseStatus = .created) async throws -> FakeHTTPServer {
        let app = try await Application.make(.testing)
        let box = NIOLockedValueBox<[Received]>([])
        app.routes.defaultMaxBodySize = "1mb"
        app.middleware = Middlewares()
        let handler: @Sendable (Request) async throws -> Response = { req in
            let body = req.body.string ?? ""
            box.withLockedValue { $0.append(Received(method: req.method, path: req.url.path, headers: req.headers, body: body)) }
            return Response(status: status, body: .init(string: "{}"))
        }
        app.post("**", use: handler)
        try await app.server.start(address: .hostname("127.0.0.1", port: 0))
        guard let port = app.http.server.shared.localAddress?.port else {
            throw Abort(.internalServerError, reason: "fake server has no port")
        }
        return FakeHTTPServer(app: app, received: box, port: port)
    }

    private init(app: Application, received: NIOLockedValueBox<[Received]>, port: Int) {
        self.app = app
        self.received = received
        self.port = port
    }

    func stop() async {
        await app.server.shutdown()
        try? await app.asyncShutdown()
    }
}
