import Foundation
import Prometheus
import TwofoldCore
import Vapor

/// Prometheus metrics: requests and latency per route, verification outcomes per factor kind, SMS sends and failures,
/// lockouts and database errors. Labels use route patterns, never raw paths or user input, so their number stays small.
struct TwofoldMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5),
    ]

    static func name(_ subsystem: String?, _ metric: String, unit: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "twofold", subsystem: subsystem, metricName: metric, unitName: unit, helpText: help)
    }

    static var requests: MetricNameDescriptor {
        name("http", "requests", unit: "total", help: "HTTP requests by route pattern, method and status.")
    }
    static var latency: MetricNameDescriptor { name("http", "request_duration", unit: "seconds", help: "Time to answer HTTP requests.") }
    static var verifications: MetricNameDescriptor {
        name(nil, "verifications", unit: "total", help: "Second-factor checks by factor kind and outcome.")
    }
    static var messages: MetricNameDescriptor { name(nil, "sms", unit: "total", help: "Text messages handed to the sender.") }
    static var lockouts: MetricNameDescriptor { name(nil, "lockouts", unit: "total", help: "Second-factor lockouts started.") }
    static var databaseErrors: MetricNameDescriptor {
        name("database", "errors", unit: "total", help: "Requests that failed on a database error.")
    }

    func request(route: String, method: String, status: UInt, duration: Duration) {
        registry.makeCounter(descriptor: Self.requests, labels: [("route", route), ("method", method), ("status", String(status))])
            .increment()
        registry.makeDurationHistogram(
            descriptor: Self.latency, labels: [("route", route), ("method", method)], buckets: Self.latencyBuckets
        ).record(duration)
    }

    enum Outcome: String {
        case accept, reject, locked
    }

    /// One checked code: `kind` is totp, sms, recovery_code (or `any` when the account was locked before any check).
    func verification(kind: String, outcome: Outcome) {
        registry.makeCounter(descriptor: Self.verifications, labels: [("kind", kind), ("outcome", outcome.rawValue)]).increment()
    }

    func sms(sent: Bool) {
        registry.makeCounter(descriptor: Self.messages, labels: [("outcome", sent ? "sent" : "failed")]).increment()
    }

    func lockout() {
        registry.makeCounter(descriptor: Self.lockouts).increment()
    }

    func databaseError() {
        registry.makeCounter(descriptor: Self.databaseErrors).increment()
    }

    static var radiusRequests: MetricNameDescriptor {
        name("radius", "requests", unit: "total", help: "RADIUS Access-Requests answered, by outcome (accept, reject, challenge).")
    }
    static var radiusDrops: MetricNameDescriptor {
        name("radius", "dropped", unit: "total", help: "RADIUS datagrams dropped without an answer, by reason.")
    }
    static var radiusLatency: MetricNameDescriptor {
        name("radius", "request_duration", unit: "seconds", help: "Time to answer a RADIUS Access-Request.")
    }

    func radius(outcome: String) {
        registry.makeCounter(descriptor: Self.radiusRequests, labels: [("outcome", outcome)]).increment()
    }

    /// `reason`: malformed, unknown_client, bad_authenticator, missing_authenticator, unsupported, duplicate_in_flight, rate_limited.
    func radiusDropped(reason: String) {
        registry.makeCounter(descriptor: Self.radiusDrops, labels: [("reason", reason)]).increment()
    }

    func radiusAnswered(after duration: Duration) {
        registry.makeDurationHistogram(descriptor: Self.radiusLatency, buckets: Self.latencyBuckets).record(duration)
    }
}

extension Application {
    private struct MetricsKey: StorageKey { typealias Value = TwofoldMetrics }

    var metrics: TwofoldMetrics {
        if let metrics = storage[MetricsKey.self] { return metrics }
        let metrics = TwofoldMetrics()
        storage[MetricsKey.self] = metrics
        return metrics
    }
}

extension Request {
    var metrics: TwofoldMetrics { application.metrics }
}

/// Times every request and counts it under its route pattern.
struct MetricsMiddleware: AsyncMiddleware {
    let metrics: TwofoldMetrics

    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let clock = ContinuousClock()
        let start = clock.now
        let response = try await next.respond(to: request)
        let route = request.route.map { "/" + $0.path.map(\.description).joined(separator: "/") } ?? "unmatched"
        metrics.request(route: route, method: request.method.rawValue, status: response.status.code, duration: clock.now - start)
        return response
    }
}

/// `GET /metrics` in the Prometheus text format; with `TWOFOLD_METRICS_TOKEN` set, only for `Authorization: Bearer <token>`.
struct MetricsController: RouteCollection {
    let token: String?

    func boot(routes: any RoutesBuilder) throws {
        routes.get(OperationsPath.metrics, use: metrics)
    }

    @Sendable func metrics(req: Request) async throws -> Response {
        if let token {
            guard let given = req.headers.bearerAuthorization?.token, ConstantTime.equals(given, token) else {
                throw Abort(.unauthorized, reason: "Send the metrics token as Authorization: Bearer <TWOFOLD_METRICS_TOKEN>.")
            }
        }
        let response = Response(status: .ok, body: .init(string: req.metrics.registry.emitToString()))
        response.headers.replaceOrAdd(name: .contentType, value: "text/plain; version=0.0.4; charset=utf-8")
        return response
    }
}
