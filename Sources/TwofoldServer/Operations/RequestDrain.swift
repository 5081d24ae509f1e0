import NIOConcurrencyHelpers
import Vapor

/// Lets requests that are still being handled finish before the databases close at shutdown.
///
/// The HTTP server stops accepting work at SIGTERM and waits a while for open connections, but a handler can still be
/// running after that — most often one queued behind other sign-ins for a bcrypt thread — and the databases close
/// right after the lifecycle handlers. This handler shuts down first: it fails the password checks still queued
/// (those sign-ins end with an error instead of holding the shutdown for minutes), then waits, up to
/// ``limit``, for the requests in flight to finish.
final class RequestDrain: AsyncMiddleware, LifecycleHandler, Sendable {
    /// The longest shutdown waits for requests in flight.
    static let limit: Duration = .seconds(30)

    private let inFlight = NIOLockedValueBox(0)

    /// Counts every request (the first middleware) and shuts down before every other lifecycle handler (the last
    /// registered; call it at the end of `configure`).
    static func install(on app: Application) {
        let drain = RequestDrain()
        app.middleware.use(drain, at: .beginning)
        app.lifecycle.use(drain)
    }

    /// Requests being handled now.
    var count: Int { inFlight.withLockedValue { $0 } }

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        inFlight.withLockedValue { $0 += 1 }
        defer { inFlight.withLockedValue { $0 -= 1 } }
        return try await next.respond(to: request)
    }

    func shutdownAsync(_ application: Application) async {
        guard count > 0 else { return }
        if let pool = application.storage[PasswordHashingPool.Key.self] { try? await pool.shutdownGracefully() }
        let deadline = ContinuousClock.now + Self.limit
        while count > 0, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if count > 0 { application.logger.warning("Shutting down with \(count) requests still being handled.") }
    }
}
