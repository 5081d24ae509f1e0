import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import TwofoldCore

/// Why a message was not handed to the SMTP server, and whether trying again later can help.
///
/// Temporary: 4xx replies, network errors, timeouts, a server that broke the protocol, TLS failures (certificate
/// verification or handshake) and a server that does not offer STARTTLS or AUTH. TLS problems and a missing
/// STARTTLS are temporary on purpose: they are nearly always an operator's mistake (a renewed certificate from
/// another CA, a wrong `TWOFOLD_SMTP_CA_FILE`) or an attacker in the path stripping STARTTLS, both fixed without
/// losing the queued messages; they are logged as errors, and after the last retry the message fails and is audited.
/// Permanent: 5xx replies (e.g. 535 authentication failed, 550 unknown recipient), a message the server says is too
/// large, and a message that cannot be composed.
struct SMTPDeliveryError: Error, CustomStringConvertible, Equatable {
    enum Kind: String, Sendable { case temporary, permanent }

    var kind: Kind
    /// For `last_error`, logs and the audit log: never a password or a message body.
    var description: String

    static func temporary(_ description: String) -> Self { Self(kind: .temporary, description: description) }
    static func permanent(_ description: String) -> Self { Self(kind: .permanent, description: description) }

    /// A refusal to `stage` (e.g. `RCPT TO`): 5xx is permanent, anything else temporary.
    static func refused(_ reply: SMTPReply, at stage: String) -> Self {
        Self(kind: reply.isPermanentFailure ? .permanent : .temporary, description: "the SMTP server refused \(stage): \(reply)")
    }
}

/// How long the client waits. Each reply has its own limit, and the whole conversation one more, shorter than the
/// delivery task's two-minute lease, so no other instance takes over a message while this one may still send it.
struct SMTPTimeouts: Sendable {
    var connect: TimeAmount = .seconds(10)
    var reply: TimeAmount = .seconds(30)
    /// For the reply to the end of DATA (the server may scan the message).
    var dataEnd: TimeAmount = .seconds(60)
    var session: TimeAmount = .seconds(100)
}

/// Sends one message per connection over SMTP (RFC 5321) with TLS: implicit (`smtps`) or STARTTLS (RFC 3207,
/// required). Certificates are always verified, against the system's trust roots plus `TWOFOLD_SMTP_CA_FILE`, for
/// the configured host name (or IP address). AUTH PLAIN (else LOGIN) only over TLS and only when credentials are
/// configured. Logs commands at debug level, never AUTH's arguments or the message.
struct SMTPClient: Sendable {
    let settings: TwofoldConfiguration.SMTPSettings
    /// The name in EHLO: the host of `TWOFOLD_PUBLIC_URL`, or `localhost`.
    let heloName: String
    let eventLoopGroup: any EventLoopGroup
    var timeouts = SMTPTimeouts()
    var logger = Logger(label: "twofold.smtp")

    /// The TLS settings: verification on, TLS 1.2 or newer, the extra CAs of ``TwofoldConfiguration/SMTPSettings/caFile``.
    static func tlsConfiguration(caFile: String?) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .fullVerification
        tls.minimumTLSVersion = .tlsv12
        if let caFile {
            do {
                tls.additionalTrustRoots = [.certificates(try NIOSSLCertificate.fromPEMFile(caFile))]
            } catch {
                throw SMTPDeliveryError.temporary("TWOFOLD_SMTP_CA_FILE \(caFile) could not be read as PEM certificates")
            }
        }
        return tls
    }

    /// Sends `message` (RFC 5322, CRLF lines, before dot-stuffing) from `sender` to `recipient`.
    /// - Throws: ``SMTPDeliveryError``.
    func send(from sender: String, to recipient: String, message: [UInt8]) async throws {
        let started = NIODeadline.now()
        let sslContext: NIOSSLContext
        do {
            sslContext = try NIOSSLContext(configuration: try Self.tlsConfiguration(caFile: settings.caFile))
        } catch let error as SMTPDeliveryError {
            throw error
        } catch {
            throw SMTPDeliveryError.temporary("the TLS settings for the SMTP server could not be loaded (\(error))")
        }
        // SNI takes a name only; for an IP address NIOSSL checks the certificate's IP address entries instead.
        let serverHostname = Self.isIPAddress(settings.host) ? nil : settings.host
        let implicitTLS = settings.security == .implicitTLS
        // The reply handler, kept outside the pipeline so that its error outlives a closed connection.
        let replyHandler = NIOLockedValueBox<NIOLoopBound<SMTPReplyHandler>?>(nil)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: eventLoopGroup)
                .connectTimeout(timeouts.connect)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if implicitTLS {
                            try channel.pipeline.syncOperations.addHandler(
                                NIOSSLClientHandler(context: sslContext, serverHostname: serverHostname))
                        }
                        let handler = SMTPReplyHandler()
                        try channel.pipeline.syncOperations.addHandler(handler)
                        replyHandler.withLockedValue { $0 = NIOLoopBound(handler, eventLoop: channel.eventLoop) }
                    }
                }
                .connect(host: settings.host, port: settings.port)
                .get()
        } catch {
            throw classify(error, stage: "connecting")
        }
        guard let handler = replyHandler.withLockedValue({ $0 }) else {
            preconditionFailure("the channel initializer adds the reply handler")
        }
        let session = SMTPSession(
            channel: channel, handler: handler, deadline: started + timeouts.session, timeouts: timeouts, logger: logger)
        var stage = "the greeting"
        do {
            try await conversation(
                session, sslContext: sslContext, serverHostname: serverHostname, sender: sender, recipient: recipient,
                message: message, stage: &stage)
        } catch {
            session.close()
            let failure = classify(error, stage: stage)
            logger.log(
                level: failure.kind == .permanent ? .warning : .notice, "SMTP delivery failed",
                metadata: [
                    "smtp_host": .string(settings.host), "stage": .string(stage), "kind": .string(failure.kind.rawValue),
                    "error": .string(failure.description),
                ])
            throw failure
        }
        // QUIT is a courtesy: the message was accepted already.
        try? await session.write("QUIT")
        _ = try? await session.reply(timeout: .seconds(5))
        session.close()
    }

    private func conversation(
        _ session: SMTPSession, sslContext: NIOSSLContext, serverHostname: String?, sender: String, recipient: String,
        message: [UInt8], stage: inout String
    ) async throws {
        let greeting = try await session.reply()
        guard greeting.code == 220 else { throw SMTPDeliveryError.refused(greeting, at: "the connection") }

        stage = "EHLO"
        var capabilities = try await ehlo(session)
        var overTLS = settings.security == .implicitTLS
        if !overTLS {
            guard capabilities.startTLS else {
                throw SMTPDeliveryError.temporary(
                    "the SMTP server \(settings.host) does not offer STARTTLS; Twofold sends mail only over TLS (use smtps:// for a server with TLS on connect)"
                )
            }
            stage = "STARTTLS"
            let reply = try await session.command("STARTTLS")
            guard reply.code == 220 else { throw SMTPDeliveryError.refused(reply, at: "STARTTLS") }
            try await session.startTLS(context: sslContext, serverHostname: serverHostname)
            overTLS = true
            stage = "EHLO after STARTTLS"
            capabilities = try await ehlo(session)
        }

        if let username = settings.username {
            stage = "AUTH"
            precondition(overTLS)
            let password = settings.password ?? ""
            if capabilities.authMechanisms.contains("PLAIN") {
                let reply = try await session.command(
                    "AUTH PLAIN " + SMTPAuthentication.plain(username: username, password: password), redacted: "AUTH PLAIN ***")
                guard reply.code == 235 else { throw SMTPDeliveryError.refused(reply, at: "the user name and password (AUTH PLAIN)") }
            } else if capabilities.authMechanisms.contains("LOGIN") {
                let encoded = SMTPAuthentication.login(username: username, password: password)
                var reply = try await session.command("AUTH LOGIN")
                guard reply.code == 334 else { throw SMTPDeliveryError.refused(reply, at: "AUTH LOGIN") }
                reply = try await session.command(encoded.username, redacted: "***")
                guard reply.code == 334 else { throw SMTPDeliveryError.refused(reply, at: "the user name (AUTH LOGIN)") }
                reply = try await session.command(encoded.password, redacted: "***")
                guard reply.code == 235 else { throw SMTPDeliveryError.refused(reply, at: "the user name and password (AUTH LOGIN)") }
            } else {
                let offered = capabilities.authMechanisms.sorted().joined(separator: " ")
                throw SMTPDeliveryError.temporary(
                    "the SMTP server \(settings.host) offers no AUTH PLAIN or LOGIN (it offers: \(offered.isEmpty ? "none" : offered)), but TWOFOLD_SMTP_URL has a user name"
                )
            }
        }

        stage = "MAIL FROM"
        let wire = SMTPDataEncoding.encode(message)
        var parameters: [String] = []
        if let maximum = capabilities.maximumSize {
            guard wire.count <= maximum else {
                throw SMTPDeliveryError.permanent(
                    "the message (\(wire.count) bytes) is larger than the SMTP server accepts (\(maximum) bytes)")
            }
            parameters.append("SIZE=\(wire.count)")
        }
        if !sender.allSatisfy(\.isASCII) || !recipient.allSatisfy(\.isASCII) {
            guard capabilities.smtpUTF8 else {
                throw SMTPDeliveryError.permanent("the SMTP server does not accept addresses with non-ASCII characters (no SMTPUTF8)")
            }
            parameters.append("SMTPUTF8")
        }
        let mail = try await session.command(try SMTPCommand.mailFrom(sender, parameters: parameters))
        guard mail.code == 250 else { throw SMTPDeliveryError.refused(mail, at: "the sender (MAIL FROM)") }

        stage = "RCPT TO"
        let rcpt = try await session.command(try SMTPCommand.rcptTo(recipient))
        guard rcpt.code == 250 || rcpt.code == 251 else { throw SMTPDeliveryError.refused(rcpt, at: "the recipient (RCPT TO)") }

        stage = "DATA"
        let data = try await session.command("DATA")
        guard data.code == 354 else { throw SMTPDeliveryError.refused(data, at: "DATA") }
        stage = "the end of DATA"
        try await session.write(bytes: wire)
        let accepted = try await session.reply(timeout: timeouts.dataEnd)
        guard accepted.code == 250 else { throw SMTPDeliveryError.refused(accepted, at: "the message") }
        logger.debug(
            "SMTP server accepted a message", metadata: ["smtp_host": .string(settings.host), "reply": .string(accepted.description)])
    }

    private func ehlo(_ session: SMTPSession) async throws -> SMTPCapabilities {
        let reply = try await session.command(SMTPCommand.ehlo(heloName))
        guard reply.code == 250 else { throw SMTPDeliveryError.refused(reply, at: "EHLO") }
        return SMTPCapabilities(ehlo: reply)
    }

    /// Maps any error to temporary or permanent with a message an operator can act on.
    func classify(_ error: any Error, stage: String) -> SMTPDeliveryError {
        let server = "\(settings.host):\(settings.port)"
        switch error {
        case let error as SMTPDeliveryError: return error
        case let error as SMTPProtocolError: return .temporary("\(error) (during \(stage))")
        case let error as MailFormatError: return .permanent("the message cannot be sent: \(error)")
        case let error as SMTPReplyHandler.Failure:
            switch error {
            case .timeout: return .temporary("the SMTP server \(server) did not answer in time (during \(stage))")
            case .closed: return .temporary("the SMTP server \(server) closed the connection (during \(stage))")
            case .lineTooLong: return .temporary("the SMTP server \(server) sent a line that is too long (during \(stage))")
            case .dataBeforeTLS: return .temporary("the SMTP server \(server) sent data before the TLS handshake after STARTTLS; refused")
            }
        case let error as NIOSSLError:
            return .temporary(
                "TLS with the SMTP server \(server) failed: \(Self.describeTLS(error)) (during \(stage)); check the server's certificate and TWOFOLD_SMTP_CA_FILE"
            )
        case let error as NIOSSLExtraError:
            return .temporary(
                "TLS with the SMTP server \(server) failed: \(error) (during \(stage)); the certificate does not name \(settings.host)")
        case let error as BoringSSLError: return .temporary("TLS with the SMTP server \(server) failed: \(error) (during \(stage))")
        case let error as ChannelError:
            if case .connectTimeout = error {
                return .temporary(
                    "could not connect to the SMTP server \(server) within \(timeouts.connect.nanoseconds / 1_000_000_000) seconds")
            }
            return .temporary("the connection to the SMTP server \(server) failed during \(stage): \(error)")
        default:
            if stage == "connecting" { return .temporary("could not connect to the SMTP server \(server): \(error)") }
            return .temporary("the connection to the SMTP server \(server) failed during \(stage): \(error)")
        }
    }

    /// The BoringSSL reasons (`CERTIFICATE_VERIFY_FAILED`, …) without file names and error numbers.
    static func describeTLS(_ error: NIOSSLError) -> String {
        let text = String(describing: error)
        let reasons = text.split(whereSeparator: { !($0.isUppercase || $0 == "_" || $0.isNumber) }).filter {
            $0.count >= 6 && $0.contains("_")
        }
        var seen: [String] = []
        for reason in reasons.map(String.init) where !seen.contains(reason) { seen.append(reason) }
        if seen.contains("CERTIFICATE_VERIFY_FAILED") {
            return
                "the server's certificate could not be verified against the system's CAs and TWOFOLD_SMTP_CA_FILE (\(seen.joined(separator: ", ")))"
        }
        return seen.isEmpty ? String(text.prefix(200)) : "the TLS handshake failed (\(seen.joined(separator: ", ")))"
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}

/// One connection: writes commands and reads replies, each within its timeout and the session's deadline.
struct SMTPSession: Sendable {
    let channel: any Channel
    let handler: NIOLoopBound<SMTPReplyHandler>
    let deadline: NIODeadline
    let timeouts: SMTPTimeouts
    let logger: Logger

    func write(_ line: String) async throws {
        try await write(bytes: Array((line + "\r\n").utf8))
    }

    /// Writes; when the write fails because the connection failed (e.g. the TLS handshake), throws that cause.
    func write(bytes: [UInt8]) async throws {
        do {
            try await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes))
        } catch {
            let handler = self.handler
            let cause = try? await channel.eventLoop.submit { () -> (any Error)? in handler.value.failure }.get()
            throw (cause ?? nil) ?? error
        }
    }

    func reply(timeout: TimeAmount? = nil) async throws -> SMTPReply {
        let remaining = deadline - .now()
        let wait = min(timeout ?? timeouts.reply, remaining)
        guard wait > .zero else { throw SMTPReplyHandler.Failure.timeout }
        let eventLoop = channel.eventLoop, handler = self.handler
        let reply = try await eventLoop.flatSubmit { handler.value.nextReply(on: eventLoop, timeout: wait) }.get()
        logger.trace("SMTP reply", metadata: ["reply": .string(reply.description)])
        return reply
    }

    /// Sends one command and reads its reply; `redacted` is what the log shows instead (for AUTH).
    func command(_ line: String, redacted: String? = nil) async throws -> SMTPReply {
        logger.debug("SMTP command", metadata: ["command": .string(redacted ?? line)])
        try await write(line)
        return try await reply()
    }

    /// Puts TLS under the reply handler after the server's 220 to STARTTLS. Anything the server sent after that
    /// reply and before the handshake is refused (it could be an injected reply: CVE-2011-0411).
    func startTLS(context: NIOSSLContext, serverHostname: String?) async throws {
        let channel = self.channel, handler = self.handler
        try await channel.eventLoop.submit {
            guard !handler.value.hasBufferedInput else { throw SMTPReplyHandler.Failure.dataBeforeTLS }
            if let failure = handler.value.failure { throw failure }
            try channel.pipeline.syncOperations.addHandler(
                NIOSSLClientHandler(context: context, serverHostname: serverHostname), position: .first)
        }.get()
    }

    func close() {
        channel.close(promise: nil)
    }
}

/// Splits what the server sends into lines and assembles them into replies, handing each to the waiting reader
/// (or keeping it until one asks). Lives on the channel's event loop.
final class SMTPReplyHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer

    enum Failure: Error, Equatable {
        case timeout, closed, lineTooLong, dataBeforeTLS
    }

    /// RFC 5321 allows 512 octets per reply line; servers with long texts get some slack.
    static let maximumLineLength = 4096

    private var pending = ByteBuffer()
    private var parser = SMTPReplyParser()
    private var replies = CircularBuffer<SMTPReply>()
    /// The first error of the connection.
    private(set) var failure: (any Error)?
    private var waiter: (promise: EventLoopPromise<SMTPReply>, timeout: Scheduled<Void>)?

    init() {}

    var hasBufferedInput: Bool { !replies.isEmpty || pending.readableBytes > 0 || parser.isInsideReply }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        pending.writeBuffer(&incoming)
        do {
            while let newline = pending.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
                let length = newline - pending.readerIndex
                var line = pending.readString(length: length) ?? ""
                pending.moveReaderIndex(forwardBy: 1)
                if line.hasSuffix("\r") { line.removeLast() }
                if let reply = try parser.consume(line: line) { deliver(reply) }
            }
            if pending.readableBytes > Self.maximumLineLength { throw Failure.lineTooLong }
            pending.discardReadBytes()
        } catch {
            fail(error)
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(Failure.closed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }

    func nextReply(on eventLoop: any EventLoop, timeout: TimeAmount) -> EventLoopFuture<SMTPReply> {
        if let reply = replies.popFirst() { return eventLoop.makeSucceededFuture(reply) }
        if let failure { return eventLoop.makeFailedFuture(failure) }
        precondition(waiter == nil, "one reply is awaited at a time")
        let promise = eventLoop.makePromise(of: SMTPReply.self)
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let scheduled = eventLoop.scheduleTask(in: timeout) { bound.value.fail(Failure.timeout) }
        waiter = (promise, scheduled)
        return promise.futureResult
    }

    private func deliver(_ reply: SMTPReply) {
        if let waiter {
            self.waiter = nil
            waiter.timeout.cancel()
            waiter.promise.succeed(reply)
        } else {
            replies.append(reply)
        }
    }

    private func fail(_ error: any Error) {
        if failure == nil { failure = error }
        if let waiter {
            self.waiter = nil
            waiter.timeout.cancel()
            waiter.promise.fail(failure ?? error)
        }
    }
}

@available(*, unavailable)
extension SMTPReplyHandler: Sendable {}
