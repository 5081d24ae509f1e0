import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import TwofoldCore
import Vapor

/// Turns datagrams into answers: finds the client by source address, checks the authenticators (a packet that fails
/// them is dropped without an answer), answers a retransmission with the same bytes without deciding again
/// (RFC 5080 §2.2.2), and hands everything else to ``RADIUSAuthenticator``.
final class RADIUSProcessor: Sendable {
    let app: Application
    /// Answers kept for retransmissions.
    static let duplicateWindow: TimeInterval = 30
    /// Requests of one client decided at the same time; more are dropped (the device retransmits).
    static let inFlightPerClient = 256

    private enum Seen {
        case inFlight(clientID: UUID)
        case answered([UInt8], at: Date)
    }

    private let seen = NIOLockedValueBox<[RADIUSRequestKey: Seen]>([:])

    init(app: Application) { self.app = app }

    /// The answer to send back, or nil to stay silent.
    func handle(_ bytes: [UInt8], from source: SocketAddress) async -> [UInt8]? {
        let started = ContinuousClock.now
        let address = ClientAddress.canonical(source.ipAddress ?? "")
        let now = app.twofold.clock.now()
        let packet: RADIUSPacket
        do { packet = try RADIUSPacket(decoding: bytes) } catch {
            return await drop(reason: "malformed", address: address, now: now)
        }
        guard packet.code == .accessRequest || packet.code == .statusServer else {
            return await drop(reason: "unsupported", address: address, now: now)
        }
        let client: RADIUSClientRegistry.Entry?
        do { client = try await app.radiusClients.client(for: address, database: app.db, sealer: app.twofold.sealer, now: now) } catch {
            app.logger.warning("RADIUS: cannot load clients", metadata: ["error": .string(String(reflecting: type(of: error)))])
            return nil
        }
        guard let client else { return await drop(reason: "unknown_client", address: address, now: now) }
        do { try packet.verifyRequest(secret: RADIUSSharedSecret(client.secret)) } catch let error as RADIUSError {
            let reason = error.code == .missingMessageAuthenticator ? "missing_authenticator" : "bad_authenticator"
            return await drop(reason: reason, address: address, now: now, client: client)
        } catch {
            return await drop(reason: "bad_authenticator", address: address, now: now, client: client)
        }
        if packet.code == .statusServer {
            // RFC 5997: a health check of a verified client is answered with Access-Accept.
            return try? RADIUSPacket.response(
                to: packet, code: .accessAccept, attributes: RADIUSAttribute.replyMessages("Twofold is up."),
                secret: RADIUSSharedSecret(client.secret)
            ).encoded()
        }
        let key = RADIUSRequestKey(clientAddress: address, port: UInt16(source.port ?? 0), request: packet)
        switch claim(key, clientID: client.id, now: now) {
        case .answer(let cached): return cached
        case .drop(let reason): return await drop(reason: reason, address: address, now: now, client: client, audited: false)
        case .decide: break
        }
        var answer: [UInt8]?
        do {
            let decision = try await RADIUSAuthenticator(app: app, client: client, packet: packet, source: source).decide()
            answer = try RADIUSPacket.response(
                to: packet, code: decision.code, attributes: decision.attributes,
                secret: RADIUSSharedSecret(client.secret)
            ).encoded()
        } catch {
            app.logger.warning(
                "RADIUS: request failed", metadata: ["client": .string(client.name), "error": .string(String(reflecting: type(of: error)))])
        }
        remember(key, answer: answer, now: app.twofold.clock.now())
        app.metrics.radiusAnswered(after: ContinuousClock.now - started)
        return answer
    }

    private enum Claim {
        case decide
        case answer([UInt8])
        case drop(String)
    }

    private func claim(_ key: RADIUSRequestKey, clientID: UUID, now: Date) -> Claim {
        seen.withLockedValue { table in
            if table.count > 50_000 { Self.trim(&table, now: now) }
            switch table[key] {
            case .answered(let bytes, let at) where now.timeIntervalSince(at) < Self.duplicateWindow:
                return .answer(bytes)
            case .inFlight:
                return .drop("duplicate_in_flight")
            default:
                let busy = table.values.reduce(0) { count, entry in
                    if case .inFlight(let id) = entry, id == clientID { return count + 1 }
                    return count
                }
                guard busy < Self.inFlightPerClient else { return .drop("rate_limited") }
                table[key] = .inFlight(clientID: clientID)
                return .decide
            }
        }
    }

    private func remember(_ key: RADIUSRequestKey, answer: [UInt8]?, now: Date) {
        seen.withLockedValue { table in
            if let answer { table[key] = .answered(answer, at: now) } else { table[key] = nil }
        }
    }

    private static func trim(_ table: inout [RADIUSRequestKey: Seen], now: Date) {
        table = table.filter { _, entry in
            if case .answered(_, let at) = entry { return now.timeIntervalSince(at) < duplicateWindow }
            return true
        }
    }

    /// Counts a dropped datagram and audits it at most once a minute per address and reason.
    private func drop(reason: String, address: String, now: Date, client: RADIUSClientRegistry.Entry? = nil, audited: Bool = true) async
        -> [UInt8]?
    {
        app.metrics.radiusDropped(reason: reason)
        guard audited else { return nil }
        let bucket = "radius:drop-audit:\(ClientAddress.throttleKey(address)):\(reason)"
        if case .reserved =
            (try? await ThrottleStore(database: app.db).reserve(bucket, limit: FixedWindowLimit(limit: 1, window: 60), now: now))
        {
            var details = ["reason": reason, "address": address]
            if let client { details["radius_client"] = client.name }
            try? await AuditLog.append(
                AuditEntry(type: .radiusDropped, practiceID: client?.practiceID, ip: address, details: details), on: app.db, now: now)
        }
        return nil
    }
}

/// Reads datagrams off one socket and writes the answers back to their senders.
private final class RADIUSDatagramHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    let processor: RADIUSProcessor

    init(processor: RADIUSProcessor) { self.processor = processor }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        let channel = context.channel
        let bytes = Array(envelope.data.readableBytesView.prefix(RADIUSPacket.maximumLength + 1))
        let remote = envelope.remoteAddress
        let processor = self.processor
        Task {
            guard let answer = await processor.handle(bytes, from: remote) else { return }
            let buffer = channel.allocator.buffer(bytes: answer)
            channel.writeAndFlush(AddressedEnvelope(remoteAddress: remote, data: buffer), promise: nil)
        }
    }
}

/// The RADIUS listener inside `twofold serve` (`TWOFOLD_RADIUS_LISTEN`): one UDP socket per configured address.
final class RADIUSServer: LifecycleHandler, Sendable {
    let addresses: [RADIUSListenAddress]
    private let channels = NIOLockedValueBox<[any Channel]>([])

    init(addresses: [RADIUSListenAddress]) { self.addresses = addresses }

    /// Installs the listener for `serve` when addresses are configured.
    static func install(on app: Application, addresses: [RADIUSListenAddress]) {
        let command = app.environment.arguments.dropFirst().first ?? "serve"
        guard command == "serve", !addresses.isEmpty else { return }
        app.lifecycle.use(RADIUSServer(addresses: addresses))
    }

    func didBootAsync(_ application: Application) async throws {
        for address in addresses {
            let port = try await start(application, host: address.host, port: address.port)
            application.logger.notice("RADIUS listening on \(address.host.contains(":") ? "[\(address.host)]" : address.host):\(port)")
        }
    }

    /// Binds one socket; port 0 picks a free one (tests). Returns the bound port.
    @discardableResult
    func start(_ app: Application, host: String, port: Int) async throws -> Int {
        let processor = RADIUSProcessor(app: app)
        let channel = try await DatagramBootstrap(group: app.eventLoopGroup)
            .channelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RADIUSDatagramHandler(processor: processor))
                }
            }
            .bind(host: host, port: port).get()
        channels.withLockedValue { $0.append(channel) }
        return channel.localAddress?.port ?? port
    }

    func shutdownAsync(_ application: Application) async {
        for channel in channels.withLockedValue({ $0 }) { try? await channel.close() }
    }
}
