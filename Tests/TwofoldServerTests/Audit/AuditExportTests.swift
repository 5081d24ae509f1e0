import Crypto
import Fluent
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import SQLKit
import Testing
import VaporTesting

@testable import TwofoldServer

/// Offline verification of exports with only the public key, and shipping checkpoints outside the server.
@Suite("Audit exports and checkpoint shipping")
struct AuditExportTests {
    static func export(_ ctx: TestContext) async throws -> (
        csv: String, manifest: AuditExportManifest, bundle: AuditExportBundle, key: Curve25519.Signing.PublicKey
    ) {
        try await AuditChainTests.someEvents(ctx)
        let practice = try #require(try await Practice.query(on: ctx.app.db).first())
        let export = AuditExport(database: ctx.app.db, practiceID: try practice.requireID(), now: ctx.clock.now)
        let (csv, manifest) = try await export.csv(.init())
        let bundle = try await export.json(.init())
        return (csv, manifest, bundle, try ctx.app.auditContext.keys.signingKey.publicKey)
    }

    static func verify(_ csv: String, _ manifest: AuditExportManifest, key: Curve25519.Signing.PublicKey) throws
        -> AuditExportVerifier.Outcome
    {
        AuditExportVerifier.verify(file: Data(csv.utf8), manifest: try AuditExportManifest.encoder().encode(manifest), keys: [key])
    }

    static func lines(_ csv: String) -> [String] { AuditExportVerifier.csvRecords(csv) }
    static func join(_ lines: [String]) -> String { lines.joined(separator: "\r\n") + "\r\n" }

    @Test func aCSVExportVerifiesOfflineAndNamesEveryChange() async throws {
        try await withTestApp { ctx in
            let (csv, manifest, _, key) = try await Self.export(ctx)
            #expect(manifest.count >= 4)
            #expect(manifest.logIntact)
            #expect(try Self.verify(csv, manifest, key: key).isIntact)
            // The key as `twofold audit public-key` prints it is read too.
            let printed = "ed25519 \(AuditKeys.keyID(key)) \(key.rawRepresentation.base64EncodedString())  (current)"
            #expect(AuditExportVerifier.publicKeys(printed).map(\.rawRepresentation) == [key.rawRepresentation])

            var rows = Self.lines(csv)
            // An edited cell.
            var edited = rows
            edited[2] = AuditExportVerifier.csvCells(rows[2]).enumerated().map { $0.offset == 5 ? "10.6.6.6" : $0.element }.map(
                AuditQuery.csvCell
            ).joined(separator: ",")
            var outcome = try Self.verify(Self.join(edited), manifest, key: key)
            #expect(outcome.problems.contains { $0.hasPrefix("row 2 ") && $0.contains("was edited") }, "\(outcome.problems)")
            // A removed row.
            var removed = rows
            removed.remove(at: 3)
            outcome = try Self.verify(Self.join(removed), manifest, key: key)
            #expect(
                outcome.problems.contains { $0.hasPrefix("row 3 of the signed export") && $0.contains("missing") }, "\(outcome.problems)")
            #expect(outcome.problems.count == 1, "\(outcome.problems)")
            // Swapped rows.
            rows.swapAt(1, 2)
            outcome = try Self.verify(Self.join(rows), manifest, key: key)
            #expect(
                outcome.problems.contains { $0.hasPrefix("row 2 ") && $0.contains("out of place") && $0.contains("signed as row 1") },
                "\(outcome.problems)")
            #expect(outcome.problems.count == 1, "\(outcome.problems)")
            // Data after the last row.
            outcome = try Self.verify(csv + "\r\n", manifest, key: key)
            #expect(!outcome.isIntact)
            // A manifest edited to match an edited export no longer carries a good signature.
            var forged = manifest
            forged.rows.removeLast()
            forged.count -= 1
            outcome = try Self.verify(csv, forged, key: key)
            #expect(outcome.problems.first?.contains("signature does not verify") == true, "\(outcome.problems)")
        }
    }

    @Test func theWrongPublicKeyFails() async throws {
        try await withTestApp { ctx in
            let (csv, manifest, bundle, _) = try await Self.export(ctx)
            let other = Curve25519.Signing.PrivateKey().publicKey
            let outcome = try Self.verify(csv, manifest, key: other)
            #expect(outcome.problems.first?.contains("not with the public key given") == true, "\(outcome.problems)")
            let json = try AuditExportManifest.encoder().encode(bundle)
            #expect(!AuditExportVerifier.verify(file: json, manifest: nil, keys: [other]).isIntact)
        }
    }

    @Test func aJSONExportVerifiesOfflineAndNamesEveryChange() async throws {
        try await withTestApp { ctx in
            let (_, _, bundle, key) = try await Self.export(ctx)
            func outcome(_ bundle: AuditExportBundle) throws -> AuditExportVerifier.Outcome {
                AuditExportVerifier.verify(file: try AuditExportManifest.encoder(pretty: true).encode(bundle), manifest: nil, keys: [key])
            }
            let clean = try outcome(bundle)
            #expect(clean.isIntact, "\(clean.problems)")
            #expect(bundle.manifest.chains.contains { $0.chain == AuditCheckpoint.mainChain })
            var edited = bundle
            edited.events[1].ip = "10.6.6.6"
            #expect(try outcome(edited).problems.contains { $0.hasPrefix("row 2 ") && $0.contains("was edited") })
            var removed = bundle
            removed.events.remove(at: 0)
            #expect(try outcome(removed).problems.contains { $0.hasPrefix("row 1 of the signed export") && $0.contains("missing") })
            var swapped = bundle
            swapped.events.swapAt(0, 1)
            #expect(try outcome(swapped).problems.contains { $0.contains("out of place") })
            var retimed = bundle
            retimed.events[1].time += 1
            #expect(try outcome(retimed).problems.contains { $0.hasPrefix("row 2 ") && $0.contains("was edited") })
        }
    }

    /// A JSON export holds each event's time to the millisecond, in the form exports have always written it, and the
    /// verifier reads back exactly that form: a time written any other way is a changed row.
    @Test func aJSONExportWritesTimesToTheMillisecondAndReadsOnlyThatForm() async throws {
        try await withTestApp { ctx in
            let (_, _, bundle, key) = try await Self.export(ctx)
            let entry = AuditQuery.Entry(
                chain: "main", seq: 7, time: AuditLog.date(1_795_615_200_123), event: "sign_in.failed", subject: "ana",
                ip: "10.0.0.1", userAgent: "curl/8", details: ["b": "2", "a": "1/2"])
            // 2026-11-25T14:00:00.123Z, cut off at the millisecond as exports have always written it
            let expected =
                #"{"chain":"main","details":{"a":"1/2","b":"2"},"event":"sign_in.failed","ip":"10.0.0.1","seq":7,"subject":"ana","#
                + #""time":"2026-11-25T14:00:00.12"#
            #expect(entry.canonical.hasPrefix(expected), "\(entry.canonical)")
            #expect(entry.canonical.hasSuffix(#"","userAgent":"curl/8"}"#), "\(entry.canonical)")
            // Every millisecond reads back to a time that writes the same text.
            for ms in Int64(1_795_615_200_000)..<1_795_615_202_000 {
                let text = AuditLog.date(ms).ISO8601Format(AuditExportManifest.timeFormat)
                #expect(AuditExportManifest.time(text)?.ISO8601Format(AuditExportManifest.timeFormat) == text)
            }
            #expect(AuditExportManifest.time("2026-11-25T14:00:00.123Z") == nil)
            #expect(AuditExportManifest.time("2026-11-25T14:00:00") == nil)

            // The same file with its second event's time written another way.
            let file = try AuditExportManifest.encoder(pretty: true).encode(bundle)
            var document = try #require(try JSONSerialization.jsonObject(with: file) as? [String: Any])
            var events = try #require(document["events"] as? [[String: Any]])
            events[1]["time"] = try #require(events[1]["time"] as? String) + "Z"
            document["events"] = events
            let edited = String(decoding: try JSONSerialization.data(withJSONObject: document), as: UTF8.self)
            let outcome = AuditExportVerifier.verify(file: Data(edited.utf8), manifest: nil, keys: [key])
            #expect(outcome.problems.contains { $0.hasPrefix("row 2 of the file is not an event") }, "\(outcome.problems)")
        }
    }

    @Test func aFilteredExportSignsItsFilter() async throws {
        try await withTestApp { ctx in
            try await AuditChainTests.someEvents(ctx)
            let practice = try #require(try await Practice.query(on: ctx.app.db).first())
            let bundle = try await AuditExport(database: ctx.app.db, practiceID: try practice.requireID(), now: ctx.clock.now).json(
                .init(type: "sign_in.failed"))
            #expect(bundle.events.allSatisfy { $0.event == "sign_in.failed" })
            #expect(bundle.manifest.filter.type == "sign_in.failed")
        }
    }

    // MARK: Shipping

    /// Collects what arrives on a UDP port of 127.0.0.1.
    final class UDPReceiver: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = AddressedEnvelope<ByteBuffer>
        let received = NIOLockedValueBox<[String]>([])
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let envelope = unwrapInboundIn(data)
            received.withLockedValue { $0.append(String(buffer: envelope.data)) }
        }
    }

    /// Collects what arrives on a TCP connection to 127.0.0.1.
    final class TCPReceiver: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let received = NIOLockedValueBox<[String]>([])
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            received.withLockedValue { $0.append(String(buffer: buffer)) }
        }
    }

    static func wait(until condition: () -> Bool) async throws {
        for _ in 0..<200 where !condition() { try await Task.sleep(for: .milliseconds(25)) }
    }

    @Test func checkpointsAreShippedToAWebhookAndToSyslog() async throws {
        try await withTestApp { ctx in
            let hook = try await FakeHTTPServer.start(status: .ok)
            let receiver = UDPReceiver()
            let udp = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { $0.pipeline.addHandler(receiver) }
                .bind(host: "127.0.0.1", port: 0).get()
            defer { udp.close(promise: nil) }
            let targets = AuditShipping.Targets(
                webhook: URL(string: "http://127.0.0.1:\(hook.port)/checkpoints"),
                syslog: AuditShipping.Syslog("udp://127.0.0.1:\(udp.localAddress!.port!)"))
            let shipping = AuditShipping(
                targets: targets, client: ctx.app.http.client.shared, group: ctx.app.eventLoopGroup, logger: ctx.app.logger,
                retryDelay: .milliseconds(10)
            ) { _, _, _ in }
            try ctx.app.auditContext.shipping = shipping
            try ctx.app.auditContext.policy = AuditCheckpointPolicy(every: 3, interval: 3600)
            try await AuditChainTests.someEvents(ctx)
            try ctx.app.auditContext.policy.every = 3
            try await AuditLog.checkpointIfDue(on: ctx.app.db, now: ctx.clock.now, force: true)
            await shipping.drain()
            // The main chain's were published when the database was migrated, before shipping was set up.
            let stored = try await AuditCheckpoint.all(on: ctx.app.db).filter { $0.chain != AuditCheckpoint.mainChain }
            let keys = try ctx.app.auditContext.keys
            let posted = try hook.requests.map { try JSONDecoder().decode(AuditCheckpoint.self, from: Data($0.body.utf8)) }
            #expect(Set(posted.map(\.jsonLine)) == Set(stored.map(\.jsonLine)))
            #expect(posted.allSatisfy { $0.signatureProblem(keys: keys) == nil })
            #expect(hook.requests.allSatisfy { $0.headers.first(name: .contentType) == "application/json" })
            try await Self.wait { receiver.received.withLockedValue { $0.count } >= stored.count }
            let messages = receiver.received.withLockedValue { $0 }
            #expect(messages.count == stored.count)
            #expect(messages.allSatisfy { $0.hasPrefix("<109>1 ") && $0.contains(" twofold ") && $0.contains(" audit-checkpoint - {") })
            await hook.stop()
        }
    }

    @Test func syslogOverTCPUsesOctetCounting() async throws {
        try await withTestApp { ctx in
            let receiver = TCPReceiver()
            let tcp = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .childChannelInitializer { $0.pipeline.addHandler(receiver) }
                .bind(host: "127.0.0.1", port: 0).get()
            defer { tcp.close(promise: nil) }
            let shipping = AuditShipping(
                targets: .init(syslog: AuditShipping.Syslog("tcp://127.0.0.1:\(tcp.localAddress!.port!)")),
                client: ctx.app.http.client.shared, group: ctx.app.eventLoopGroup, logger: ctx.app.logger
            ) { _, _, _ in }
            let checkpoint = try #require(try await AuditCheckpoint.all(on: ctx.app.db).first)
            await shipping.deliver([checkpoint])
            try await Self.wait { !receiver.received.withLockedValue { $0.joined() }.isEmpty }
            let text = receiver.received.withLockedValue { $0.joined() }
            let (length, message) = try #require(text.split(separator: " ", maxSplits: 1).map(String.init).splat)
            #expect(Int(length) == message.utf8.count)
            #expect(message.hasSuffix(checkpoint.jsonLine))
        }
    }

    @Test func aFailingWebhookIsRetriedLoggedAndAuditedWithoutHoldingUpAppends() async throws {
        try await withTestApp { ctx in
            let hook = try await FakeHTTPServer.start(status: .internalServerError)
            let failures = NIOLockedValueBox<[String]>([])
            let app = ctx.app
            let shipping = AuditShipping(
                targets: .init(webhook: URL(string: "http://127.0.0.1:\(hook.port)/checkpoints")),
                client: ctx.app.http.client.shared, group: ctx.app.eventLoopGroup, logger: ctx.app.logger,
                attempts: 3, retryDelay: .milliseconds(10)
            ) { target, problem, checkpoint in
                failures.withLockedValue { $0.append(target) }
                try? await AuditLog.append(
                    AuditEntry(
                        type: .auditCheckpointShippingFailed, practiceID: nil, ip: "maintenance",
                        details: ["target": target, "chain": checkpoint.chain, "seq": String(checkpoint.seq), "error": problem]),
                    on: app.db, now: ctx.clock.now)
            }
            try ctx.app.auditContext.shipping = shipping
            try await AuditLog.append(AuditEntry(type: .signOut, practiceID: nil), on: ctx.app.db, now: ctx.clock.now) // opens the chain
            await shipping.drain()
            #expect(hook.requests.count >= 3) // every checkpoint, three attempts each
            #expect(hook.requests.count % 3 == 0)
            let audited = try await AuditEvent.query(on: ctx.app.db).filter(
                \.$event == AuditEventType.auditCheckpointShippingFailed.rawValue
            ).all()
            #expect(!audited.isEmpty)
            #expect(audited.allSatisfy { $0.details.contains("webhook") && $0.details.contains("500") })
            #expect(try await AuditLog.verify(on: ctx.app.db).isIntact)
            await hook.stop()
        }
    }

    @Test func shippingTargetsAreValidated() {
        var problems: [String] = []
        let targets = AuditShipping.Targets.from(
            ["TWOFOLD_AUDIT_CHECKPOINT_WEBHOOK": "http://logs.example.org/in", "TWOFOLD_AUDIT_SYSLOG": "smtp://x"], problems: &problems)
        #expect(targets.isEmpty)
        #expect(problems.count == 2)
        problems = []
        let good = AuditShipping.Targets.from(
            ["TWOFOLD_AUDIT_CHECKPOINT_WEBHOOK": "https://logs.example.org/in", "TWOFOLD_AUDIT_SYSLOG": "tcp://[::1]:6514"],
            problems: &problems)
        #expect(problems.isEmpty)
        #expect(good.syslog == AuditShipping.Syslog("tcp://[::1]:6514"))
        #expect(good.syslog?.host == "::1" && good.syslog?.port == 6514)
        #expect(AuditShipping.Syslog("udp://127.0.0.1")?.port == 514)
    }
}

private extension Array {
    var splat: (Element, Element)? { count == 2 ? (self[0], self[1]) : nil }
}
