import Foundation
import NIOCore
import NIOPosix
import Testing
import TwofoldCore

@testable import TwofoldServer

/// The SMTP client against a scripted server on 127.0.0.1: recorded good exchanges, and servers that misbehave.
@Suite struct SMTPClientTests {
    static let message = Array("From: 2fa@example.org\r\nTo: x@example.org\r\nSubject: t\r\n\r\nline one\r\n.\r\n.hidden\r\nlast\r\n".utf8)

    struct Setup {
        var server: ScriptedSMTPServer
        var client: SMTPClient
        var caFile: String
    }

    /// Starts a server with `script`, and a client for it that trusts the server's CA (unless `trustCA` is false).
    func withServer(
        greeting: String = "220 smtp.test ESMTP ready", security: TwofoldConfiguration.SMTPSettings.Security = .startTLS,
        credentials: (String, String)? = ("user", "pass"), host: String = "127.0.0.1", certificateNames: [String] = ["localhost"],
        certificateIPs: [[UInt8]] = [[127, 0, 0, 1]], trustCA: Bool = true, timeouts: SMTPTimeouts = SMTPTimeouts(),
        script: @escaping ScriptedSMTPServer.Script = ScriptedSMTPServer.standardScript(),
        _ body: (Setup) async throws -> Void
    ) async throws {
        let certificates = try TestCertificates.make(names: certificateNames, ipAddresses: certificateIPs)
        let caFile = try (trustCA ? certificates : TestCertificates.make()).writeCAFile()
        defer { try? FileManager.default.removeItem(atPath: caFile) }
        let server = ScriptedSMTPServer(
            greeting: greeting, implicitTLS: security == .implicitTLS, tls: try certificates.serverTLSContext(), script: script)
        let port = try await server.start()
        let settings = TwofoldConfiguration.SMTPSettings(
            host: host, port: port, security: security, username: credentials?.0, password: credentials?.1, caFile: caFile)
        let client = SMTPClient(
            settings: settings, heloName: "2fa.example-clinic.org", eventLoopGroup: MultiThreadedEventLoopGroup.singleton,
            timeouts: timeouts)
        do {
            try await body(Setup(server: server, client: client, caFile: caFile))
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    func failure(_ setup: Setup, message: [UInt8] = SMTPClientTests.message) async -> SMTPDeliveryError? {
        do {
            try await setup.client.send(from: "2fa@example.org", to: "x@example.org", message: message)
            return nil
        } catch let error as SMTPDeliveryError {
            return error
        } catch {
            Issue.record("not an SMTPDeliveryError: \(error)")
            return nil
        }
    }

    @Test func sendsOverSTARTTLSWithAuthPlainAndDotStuffing() async throws {
        try await withServer { setup in
            try await setup.client.send(from: "2fa@example.org", to: "x@example.org", message: Self.message)
            let transcript = setup.server.transcript
            let wireSize = SMTPDataEncoding.encode(Self.message).count
            #expect(
                transcript.commands == [
                    "EHLO 2fa.example-clinic.org", "STARTTLS", "EHLO 2fa.example-clinic.org",
                    "AUTH PLAIN " + SMTPAuthentication.plain(username: "user", password: "pass"),
                    "MAIL FROM:<2fa@example.org> SIZE=\(wireSize)", "RCPT TO:<x@example.org>", "DATA", "QUIT",
                ])
            #expect(transcript.data.count == 1)
            let wire = String(decoding: transcript.data[0], as: UTF8.self)
            #expect(wire.hasSuffix("\r\nlast\r\n.\r\n"))
            #expect(wire.contains("\r\nline one\r\n..\r\n..hidden\r\n")) // dot-stuffed on the wire
            #expect(SMTPDataEncoding.decode(transcript.data[0]) == Self.message)
        }
    }

    @Test func usesAuthLoginWhenPlainIsNotOffered() async throws {
        try await withServer(script: ScriptedSMTPServer.standardScript(authMechanisms: "LOGIN CRAM-MD5")) { setup in
            try await setup.client.send(from: "2fa@example.org", to: "x@example.org", message: Self.message)
            let commands = setup.server.transcript.commands
            #expect(Array(commands[3...5]) == ["AUTH LOGIN", "dXNlcg==", "cGFzcw=="])
            #expect(commands.contains("DATA"))
        }
    }

    @Test func implicitTLSAndNoAuthWithoutCredentials() async throws {
        try await withServer(security: .implicitTLS, credentials: nil) { setup in
            try await setup.client.send(from: "2fa@example.org", to: "x@example.org", message: Self.message)
            let commands = setup.server.transcript.commands
            #expect(commands.first == "EHLO 2fa.example-clinic.org")
            #expect(!commands.contains("STARTTLS"))
            #expect(!commands.contains { $0.hasPrefix("AUTH") })
            #expect(setup.server.transcript.data.count == 1)
        }
    }

    @Test func verifiesTheHostNameOverSNI() async throws {
        try await withServer(host: "localhost", certificateNames: ["localhost"], certificateIPs: []) { setup in
            try await setup.client.send(from: "2fa@example.org", to: "x@example.org", message: Self.message)
            #expect(setup.server.transcript.data.count == 1)
        }
        // A certificate for another name is refused before AUTH.
        try await withServer(host: "localhost", certificateNames: ["smtp.elsewhere.test"], certificateIPs: []) { setup in
            let error = try #require(await failure(setup))
            #expect(error.kind == .temporary)
            #expect(error.description.contains("TLS"), "\(error)")
            #expect(!setup.server.transcript.commands.contains { $0.hasPrefix("AUTH") })
            #expect(setup.server.transcript.data.isEmpty)
        }
    }

    @Test func refusesACertificateFromAnUntrustedCA() async throws {
        try await withServer(trustCA: false) { setup in
            let error = try #require(await failure(setup))
            #expect(error.kind == .temporary)
            #expect(error.description.contains("TLS with the SMTP server 127.0.0.1"), "\(error)")
            #expect(error.description.contains("verif"), "\(error)")
            #expect(setup.server.transcript.commands == ["EHLO 2fa.example-clinic.org", "STARTTLS"]) // no password sent
        }
    }

    @Test func refusesAServerWithoutSTARTTLS() async throws {
        let script = ScriptedSMTPServer.standardScript(overrides: { command, _ in
            command.hasPrefix("EHLO") ? .reply("250-smtp.test\n250-AUTH PLAIN LOGIN\n250 8BITMIME") : nil
        })
        try await withServer(script: script) { setup in
            let error = try #require(await failure(setup))
            #expect(error.kind == .temporary)
            #expect(error.description.contains("does not offer STARTTLS"))
            #expect(setup.server.transcript.commands == ["EHLO 2fa.example-clinic.org"]) // neither AUTH nor the message in the clear
        }
    }

    @Test func authenticationFailureIsPermanent() async throws {
        try await withServer(
            credentials: ("user", "s3cr3t-Passw0rd"),
            script: ScriptedSMTPServer.standardScript(authReply: "535 5.7.8 Authentication credentials invalid")
        ) { setup in
            let error = try #require(await failure(setup))
            #expect(error.kind == .permanent)
            #expect(error.description.contains("535 5.7.8"))
            #expect(
                !error.description.contains("s3cr3t")
                    && !error.description.contains(SMTPAuthentication.plain(username: "user", password: "s3cr3t-Passw0rd")))
            #expect(!setup.server.transcript.commands.contains { $0.hasPrefix("MAIL") })
        }
    }

    @Test func greetingOf421IsTemporary() async throws {
        try await withServer(greeting: "421 4.3.2 Service not available, closing channel") { setup in
            let error = try #require(await failure(setup))
            #expect(error.kind == .temporary)
            #expect(error.description.contains("421 4.3.2"))
            #expect(setup.server.transcript.commands.isEmpty)
        }
    }

    @Test func garbageAndInconsistentRepliesAreProtocolErrors() async throws {
        try await withServer(greeting: "hello, I am not SMTP") { setup in
            let error = try #require(await failure(setup))
            #expect(error.kind == .temporary)
            #expect(error.description.contains("malformed reply"), "\(error)")
        }
        let inconsistent = ScriptedSMTPServer.standardScript(overrides: { command, _ in
            command.hasPrefix("EHLO") ? .reply("250-smtp.test\n251-STARTTLS\n250 OK") : nil
        })
        try await withServer(script: inconsistent) { setup in
            let error = try #require(await failure(setup))
            #expect(error.kind == .temporary)
            #expect(error.description.contains("changed its code from 250 to 251"), "\(error)")
        }
        let long = ScriptedSMTPServer.standardScript(overrides: { command, _ in
            command.hasPrefix("EHLO") ? .reply("250-" + String(repeating: "x", count: 10_000)) : nil
        })
        try await withServer(script: long) { setup in
            let error = try #require(await failure(setup))
            #expect(error.description.contains("too long"), "\(error)")
        }
    }

    @Test func refusalsAreClassifiedByCode() async throws {
        let unknownRecipient = ScriptedSMTPServer.standardScript(overrides: { command, _ in
            command.hasPrefix("RCPT") ? .reply("550 5.1.1 <x@example.org>: Recipient address rejected") : nil
        })
        try await withServer(script: unknownRecipient) { setup in
            let error = try #require(await failure(setup))
            #expect(
                error
                    == .permanent("the SMTP server refused the recipient (RCPT TO): 550 5.1.1 <x@example.org>: Recipient address rejected"))
        }
        let greylisted = ScriptedSMTPServer.standardScript(overrides: { command, _ in
            command == "<DATA>" ? .reply("451 4.7.1 Greylisted, try again later") : nil
        })
        try await withServer(script: greylisted) { setup in
            let error = try #require(await failure(setup))
            #expect(error.kind == .temporary)
            #expect(error.description.contains("451 4.7.1"))
            #expect(setup.server.transcript.data.count == 1)
        }
        try await withServer(script: ScriptedSMTPServer.standardScript(size: 50)) { setup in
            let error = try #require(await failure(setup))
            #expect(error.kind == .permanent)
            #expect(error.description.contains("larger than the SMTP server accepts (50 bytes)"))
        }
    }

    @Test func refusesRepliesInjectedBeforeTheTLSHandshake() async throws {
        let injecting = ScriptedSMTPServer.standardScript(overrides: { command, _ in
            command == "STARTTLS" ? .reply("220 2.0.0 Ready\n250 injected") : nil
        })
        try await withServer(script: injecting) { setup in
            let error = try #require(await failure(setup))
            #expect(error.kind == .temporary)
            #expect(error.description.contains("before the TLS handshake"), "\(error)")
        }
    }

    @Test func timesOutOnASilentServer() async throws {
        var timeouts = SMTPTimeouts()
        timeouts.reply = .milliseconds(300)
        let silent = ScriptedSMTPServer.standardScript(overrides: { command, _ in command.hasPrefix("EHLO") ? .silence : nil })
        try await withServer(timeouts: timeouts, script: silent) { setup in
            let error = try #require(await failure(setup))
            #expect(error.kind == .temporary)
            #expect(error.description.contains("did not answer in time (during EHLO)"), "\(error)")
        }
        // The whole conversation has a deadline too.
        var session = SMTPTimeouts()
        session.session = .milliseconds(300)
        try await withServer(timeouts: session, script: silent) { setup in
            let error = try #require(await failure(setup))
            #expect(error.description.contains("did not answer in time"), "\(error)")
        }
    }

    @Test func connectionRefusedIsTemporary() async throws {
        let settings = TwofoldConfiguration.SMTPSettings(
            host: "127.0.0.1", port: 9, security: .startTLS, username: nil, password: nil, caFile: nil)
        let client = SMTPClient(settings: settings, heloName: "localhost", eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
        do {
            try await client.send(from: "2fa@example.org", to: "x@example.org", message: Self.message)
            Issue.record("sent to a closed port")
        } catch let error as SMTPDeliveryError {
            #expect(error.kind == .temporary)
            #expect(error.description.contains("could not connect to the SMTP server 127.0.0.1:9"), "\(error)")
        }
    }

    @Test func anUnreadableCAFileIsReported() async throws {
        let settings = TwofoldConfiguration.SMTPSettings(
            host: "127.0.0.1", port: 9, security: .startTLS, username: nil, password: nil, caFile: "/nonexistent/ca.pem")
        let client = SMTPClient(settings: settings, heloName: "localhost", eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
        await #expect(throws: SMTPDeliveryError.temporary("TWOFOLD_SMTP_CA_FILE /nonexistent/ca.pem could not be read as PEM certificates"))
        {
            try await client.send(from: "2fa@example.org", to: "x@example.org", message: Self.message)
        }
    }
}
