import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Vapor

/// Sends each published checkpoint outside the server, so a copy exists that the database administrators cannot
/// edit: POSTed as its JSON line to `TWOFOLD_AUDIT_CHECKPOINT_WEBHOOK` and/or sent as an RFC 5424 message to
/// `TWOFOLD_AUDIT_SYSLOG`. Delivery runs in the background and never holds up an append; each attempt has a short
/// timeout and is retried, and a delivery that still fails is logged and audited
/// (`audit.checkpoint_shipping_failed`).
final class AuditShipping: Sendable {
    struct Syslog: Sendable, Equatable {
        enum Transport: String, Sendable { case udp, tcp }
        var transport: Transport
        var host: String
        var port: Int

        /// `udp://host:514` or `tcp://host:601` (`[::1]:514` for an IPv6 address).
        init?(_ text: String) {
            guard let url = URL(string: text), let scheme = url.scheme.flatMap(Transport.init(rawValue:)),
                let host = url.host, !host.isEmpty, url.path.isEmpty || url.path == "/", url.user == nil
            else { return nil }
            transport = scheme
            self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
            port = url.port ?? (scheme == .udp ? 514 : 601)
            guard (1...65_535).contains(port) else { return nil }
        }
    }

    struct Targets: Sendable, Equatable {
        var webhook: URL?
        var syslog: Syslog?
        var isEmpty: Bool { webhook == nil && syslog == nil }

        /// Reads `TWOFOLD_AUDIT_CHECKPOINT_WEBHOOK` and `TWOFOLD_AUDIT_SYSLOG`; adds a line to `problems` for each unusable one.
        static func from(_ env: [String: String], problems: inout [String]) -> Targets {
            var targets = Targets()
            if let text = env["TWOFOLD_AUDIT_CHECKPOINT_WEBHOOK"], !text.isEmpty {
                if TwofoldConfiguration.isAcceptableOutboundURL(text), let url = URL(string: text) {
                    targets.webhook = url
                } else {
                    problems.append("TWOFOLD_AUDIT_CHECKPOINT_WEBHOOK must be an https:// URL (http:// only for 127.0.0.1 or localhost)")
                }
            }
            if let text = env["TWOFOLD_AUDIT_SYSLOG"], !text.isEmpty {
                if let syslog = Syslog(text) {
                    targets.syslog = syslog
                } else {
                    problems.append("TWOFOLD_AUDIT_SYSLOG must look like udp://syslog.example.org:514 or tcp://syslog.example.org:601")
                }
            }
            return targets
        }
    }

    let targets: Targets
    let attempts: Int
    let timeout: TimeAmount
    let retryDelay: Duration
    private let client: HTTPClient
    private let group: any EventLoopGroup
    private let logger: Logger
    private let failed: @Sendable (_ target: String, _ problem: String, _ checkpoint: AuditCheckpoint) async -> Void
    private let hostname = AuditChainRegistry.instanceLabel().split(separator: " ").first.map(String.init) ?? "-"
    private let inFlight = NIOLockedValueBox<[UUID: Task<Void, Never>]>([:])

    init(
        targets: Targets, client: HTTPClient, group: any EventLoopGroup, logger: Logger, attempts: Int = 3,
        timeout: TimeAmount = .seconds(5), retryDelay: Duration = .seconds(2),
        failed: @escaping @Sendable (_ target: String, _ problem: String, _ checkpoint: AuditCheckpoint) async -> Void
    ) {
        self.targets = targets
        self.client = client
        self.group = group
        self.logger = logger
        self.attempts = max(1, attempts)
        self.timeout = timeout
        self.retryDelay = retryDelay
        self.failed = failed
    }

    /// Starts delivering `checkpoints` in the background and returns at once.
    func ship(_ checkpoints: [AuditCheckpoint]) {
        let id = UUID()
        // Registered under the lock the task's own removal takes, so it is never removed before it is added.
        inFlight.withLockedValue { tasks in
            tasks[id] = Task { [self] in
                await deliver(checkpoints)
                _ = inFlight.withLockedValue { $0.removeValue(forKey: id) }
            }
        }
    }

    /// Waits for every delivery started so far (tests, shutdown).
    func drain() async {
        while let task = inFlight.withLockedValue({ $0.values.first }) { await task.value }
    }

    func deliver(_ checkpoints: [AuditCheckpoint]) async {
        for checkpoint in checkpoints {
            if let webhook = targets.webhook {
                await attempt("webhook", checkpoint) { try await self.post(checkpoint.jsonLine, to: webhook) }
            }
            if let syslog = targets.syslog {
                await attempt("syslog", checkpoint) { try await self.send(self.syslogMessage(checkpoint), to: syslog) }
            }
        }
    }

    private func attempt(_ target: String, _ checkpoint: AuditCheckpoint, _ body: @Sendable () async throws -> Void) async {
        var problem = ""
        for round in 1...attempts {
            do {
                try await body()
                return
            } catch {
                problem = String(describing: error)
                if round < attempts { try? await Task.sleep(for: retryDelay) }
            }
        }
        logger.error(
            "Audit checkpoint could not be shipped",
            metadata: [
                "target": .string(target), "chain": .string(checkpoint.chain), "seq": .stringConvertible(checkpoint.seq),
                "error": .string(problem),
            ])
        await failed(target, problem, checkpoint)
    }

    struct DeliveryError: Error, CustomStringConvertible {
        var description: String
    }

    private func post(_ line: String, to url: URL) async throws {
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "Twofold audit checkpoints")
        request.body = .bytes(ByteBuffer(string: line))
        let response = try await client.execute(request, timeout: timeout)
        _ = try? await response.body.collect(upTo: 64 * 1024)
        guard (200..<300).contains(response.status.code) else {
            throw DeliveryError(description: "the webhook answered \(response.status.code)")
        }
    }

    /// RFC 5424: facility 13 (log audit), severity 5 (notice); the message is the checkpoint's JSON line.
    func syslogMessage(_ checkpoint: AuditCheckpoint) -> String {
        let time = Date().ISO8601Format(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        return "<109>1 \(time) \(hostname) twofold \(getpid()) audit-checkpoint - \(checkpoint.jsonLine)"
    }

    private func send(_ message: String, to target: Syslog) async throws {
        let address = try SocketAddress.makeAddressResolvingHost(target.host, port: target.port)
        switch target.transport {
        case .udp:
            let local = address.protocol == .inet6 ? "::" : "0.0.0.0"
            let channel = try await DatagramBootstrap(group: group).bind(host: local, port: 0).get()
            defer { channel.close(promise: nil) }
            try await channel.writeAndFlush(AddressedEnvelope(remoteAddress: address, data: ByteBuffer(string: message))).get()
        case .tcp:
            // RFC 6587 octet counting: the length, a space, the message.
            let channel = try await ClientBootstrap(group: group).connectTimeout(timeout).connect(to: address).get()
            defer { channel.close(promise: nil) }
            try await channel.writeAndFlush(ByteBuffer(string: "\(message.utf8.count) \(message)")).get()
        }
    }

    /// The shipping of `app`'s checkpoints, from its configuration; `nil` when no target is set.
    static func live(_ app: Application, targets: Targets) -> AuditShipping? {
        guard !targets.isEmpty else { return nil }
        let weak = WeakApplication(app)
        return AuditShipping(targets: targets, client: app.http.client.shared, group: app.eventLoopGroup, logger: app.logger) {
            target, problem, checkpoint in
            guard let app = weak.app else { return }
            try? await AuditLog.append(
                AuditEntry(
                    type: .auditCheckpointShippingFailed, practiceID: nil, ip: "maintenance",
                    details: [
                        "target": target, "chain": checkpoint.chain, "seq": String(checkpoint.seq), "error": String(problem.prefix(200)),
                    ]), on: app.db, now: app.twofold.clock.now())
        }
    }

    private final class WeakApplication: @unchecked Sendable {
        weak var app: Application?
        init(_ app: Application) { self.app = app }
    }
}
