import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import SwiftASN1
import X509

/// A test CA and a server certificate signed by it, made fresh for each use.
struct TestCertificates {
    var caPEM: String
    var serverCertificatePEM: String
    var serverKeyPEM: String

    /// `names`: DNS names; `ipAddresses`: IPv4 addresses of the server certificate.
    static func make(names: [String] = ["localhost"], ipAddresses: [[UInt8]] = [[127, 0, 0, 1]]) throws -> TestCertificates {
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName { CommonName("Twofold Test SMTP CA") }
        // TLS checks validity against the real time, so the certificates are valid around it.
        let now = Date()
        let ca = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(caKey.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 86_400, issuer: caName, subject: caName, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true))
            },
            issuerPrivateKey: .init(caKey))
        let serverKey = P256.Signing.PrivateKey()
        let serverName = try DistinguishedName { CommonName("smtp.test") }
        var alternativeNames = names.map { GeneralName.dnsName($0) }
        alternativeNames += ipAddresses.map { GeneralName.ipAddress(ASN1OctetString(contentBytes: ArraySlice($0))) }
        let server = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: .init(serverKey.publicKey),
            notValidBefore: now - 3600, notValidAfter: now + 86_400, issuer: caName, subject: serverName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(alternativeNames)
            },
            issuerPrivateKey: .init(caKey))
        return TestCertificates(
            caPEM: try ca.serializeAsPEM().pemString, serverCertificatePEM: try server.serializeAsPEM().pemString,
            serverKeyPEM: serverKey.pemRepresentation)
    }

    /// Writes the CA to a temporary PEM file (for `TWOFOLD_SMTP_CA_FILE`).
    func writeCAFile() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("twofold-test-ca-\(UUID().uuidString).pem").path
        try caPEM.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func serverTLSContext() throws -> NIOSSLContext {
        let configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: Array(serverCertificatePEM.utf8), format: .pem))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(serverKeyPEM.utf8), format: .pem)))
        return try NIOSSLContext(configuration: configuration)
    }
}

/// An SMTP server on 127.0.0.1 that answers from a script, records what the client sent, and can switch to TLS.
final class ScriptedSMTPServer: Sendable {
    enum Action: Sendable {
        /// Raw reply text; lines are separated by `\n` and sent with CRLF.
        case reply(String)
        /// Reply, then expect a TLS handshake.
        case startTLS(String)
        /// Reply (354) and read the data until `CRLF.CRLF`; then the script is asked for `"<DATA>"`.
        case data(String)
        /// Reply, then close the connection.
        case replyAndClose(String)
        /// Say nothing (for timeouts).
        case silence
    }

    /// What the server saw.
    struct Transcript: Sendable {
        var commands: [String] = []
        /// The DATA sections exactly as they came over the wire (dot-stuffed, with the final `.`).
        var data: [[UInt8]] = []
        var connections = 0
    }

    typealias Script = @Sendable (_ command: String, _ overTLS: Bool) -> Action

    let greeting: String
    let script: Script
    let implicitTLS: Bool
    let tls: NIOSSLContext?
    private let recorded = NIOLockedValueBox(Transcript())
    private let group: MultiThreadedEventLoopGroup
    private let channel: NIOLockedValueBox<(any Channel)?> = NIOLockedValueBox(nil)

    init(greeting: String = "220 smtp.test ESMTP ready", implicitTLS: Bool = false, tls: NIOSSLContext?, script: @escaping Script) {
        self.greeting = greeting
        self.implicitTLS = implicitTLS
        self.tls = tls
        self.script = script
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    var transcript: Transcript { recorded.withLockedValue { $0 } }

    func record(_ change: @Sendable (inout Transcript) -> Void) { recorded.withLockedValue { change(&$0) } }

    /// Starts listening; returns the port.
    func start() async throws -> Int {
        let server = self
        let bound = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if server.implicitTLS, let tls = server.tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    try channel.pipeline.syncOperations.addHandler(ScriptedSMTPHandler(server: server))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        channel.withLockedValue { $0 = bound }
        return bound.localAddress!.port!
    }

    func stop() async {
        if let channel = channel.withLockedValue({ $0 }) { try? await channel.close() }
        try? await group.shutdownGracefully()
    }

    /// The usual good server: STARTTLS, then `AUTH` with `authMechanisms`, accepts any user and every message.
    static func standardScript(
        authMechanisms: String = "PLAIN LOGIN", size: Int? = 100_000, authReply: String = "235 2.7.0 Authentication successful",
        overrides: @escaping @Sendable (String, Bool) -> Action? = { _, _ in nil }
    ) -> Script {
        { command, overTLS in
            if let action = overrides(command, overTLS) { return action }
            let verb = command.split(separator: " ").first.map { $0.uppercased() } ?? ""
            switch verb {
            case "EHLO":
                var lines = ["250-smtp.test greets you", "250-8BITMIME"]
                if !overTLS { lines.append("250-STARTTLS") }
                if overTLS, !authMechanisms.isEmpty { lines.append("250-AUTH \(authMechanisms)") }
                if let size { lines.append("250-SIZE \(size)") }
                lines.append("250 SMTPUTF8")
                return .reply(lines.joined(separator: "\n"))
            case "STARTTLS": return .startTLS("220 2.0.0 Ready to start TLS")
            case "AUTH":
                if command.uppercased() == "AUTH LOGIN" { return .reply("334 VXNlcm5hbWU6") }
                return .reply(authReply)
            case "MAIL", "RCPT": return .reply("250 2.1.0 Ok")
            case "DATA": return .data("354 End data with <CR><LF>.<CR><LF>")
            case "<DATA>": return .reply("250 2.0.0 Ok: queued as 12345")
            case "QUIT": return .replyAndClose("221 2.0.0 Bye")
            default:
                // The two base64 lines of AUTH LOGIN for user "user" (then any password).
                if command == "dXNlcg==" { return .reply("334 UGFzc3dvcmQ6") }
                if command == "cGFzcw==" { return .reply(authReply) }
                return .reply("500 5.5.2 Error: command not recognized")
            }
        }
    }
}

/// The server side of one connection.
final class ScriptedSMTPHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let server: ScriptedSMTPServer
    private var buffer = ByteBuffer()
    private var inData = false
    private var overTLS: Bool

    init(server: ScriptedSMTPServer) {
        self.server = server
        self.overTLS = server.implicitTLS
    }

    func channelActive(context: ChannelHandlerContext) {
        server.record { $0.connections += 1 }
        send(server.greeting, context: context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        buffer.writeBuffer(&incoming)
        process(context: context)
    }

    private func process(context: ChannelHandlerContext) {
        while true {
            if inData {
                let view = Array(buffer.readableBytesView)
                guard let end = Self.find(Array("\r\n.\r\n".utf8), in: view) ?? (view.starts(with: Array(".\r\n".utf8)) ? -2 : nil) else {
                    return
                }
                let length = end + 5
                let section = buffer.readBytes(length: length)!
                server.record { $0.data.append(section) }
                inData = false
                perform(server.script("<DATA>", overTLS), context: context)
                continue
            }
            guard let newline = buffer.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else { return }
            var line = buffer.readString(length: newline - buffer.readerIndex)!
            buffer.moveReaderIndex(forwardBy: 1)
            if line.hasSuffix("\r") { line.removeLast() }
            let command = line
            server.record { $0.commands.append(command) }
            if !perform(server.script(line, overTLS), context: context) { return }
        }
    }

    /// Returns false when reading must stop (TLS begins or the connection closes).
    @discardableResult
    private func perform(_ action: ScriptedSMTPServer.Action, context: ChannelHandlerContext) -> Bool {
        switch action {
        case .reply(let text):
            send(text, context: context)
        case .data(let text):
            send(text, context: context)
            inData = true
        case .startTLS(let text):
            send(text, context: context)
            if let tls = server.tls {
                try! context.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls), position: .first)
                overTLS = true
            }
            return buffer.readableBytes == 0
        case .replyAndClose(let text):
            send(text, context: context)
            context.close(promise: nil)
            return false
        case .silence:
            break
        }
        return true
    }

    private func send(_ text: String, context: ChannelHandlerContext) {
        let wire = text.split(separator: "\n", omittingEmptySubsequences: false).map { $0 + "\r\n" }.joined()
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: wire)), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start..<start + needle.count].elementsEqual(needle) { return start }
        return nil
    }
}
