import Fluent
import Foundation
import NIOConcurrencyHelpers
import SQLKit
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// Records what would have gone to the SMTP server; answers with `outcome` (nil: accepted).
final class RecordingTransport: MailTransport {
    struct Sent: Sendable {
        var from: String
        var to: String
        var message: String
    }

    private let box = NIOLockedValueBox<[Sent]>([])
    let outcome: @Sendable (Int) -> SMTPDeliveryError?
    let delay: Duration?

    init(delay: Duration? = nil, outcome: @escaping @Sendable (Int) -> SMTPDeliveryError? = { _ in nil }) {
        self.delay = delay
        self.outcome = outcome
    }

    var sent: [Sent] { box.withLockedValue { $0 } }

    func send(from sender: String, to recipient: String, message: [UInt8]) async throws {
        let call = box.withLockedValue { list -> Int in
            list.append(Sent(from: sender, to: recipient, message: String(decoding: message, as: UTF8.self)))
            return list.count
        }
        if let delay { try await Task.sleep(for: delay) }
        if let error = outcome(call) { throw error }
    }

    /// The Message-ID header of each message sent.
    var messageIDs: [String] {
        sent.map { sent in
            sent.message.components(separatedBy: "\r\n").first { $0.hasPrefix("Message-ID: ") }.map {
                String($0.dropFirst("Message-ID: <".count).dropLast())
            } ?? ""
        }
    }
}

@Suite struct MailDeliveryTests {
    static let from = "Riverside 2FA <2fa@example-clinic.org>"
    static let smtp = TwofoldConfiguration.EmailSenderChoice.smtp(
        .init(host: "smtp.example.org", port: 587, security: .startTLS, username: nil, password: nil, caFile: nil))

    func mailer(_ ctx: TestContext) -> Mailer {
        Mailer(
            database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now, sender: Self.smtp,
            messageIDDomain: "example-clinic.org")
    }

    @discardableResult
    func enqueue(
        _ ctx: TestContext, to: String = "dr.smith@example.org", subject: String = "Réinitialiser votre mot de passe",
        text: String = "Open https://2fa.example-clinic.org/reset/SECRET-TOKEN-0123456789\n"
    ) async throws -> UUID {
        try await mailer(ctx).enqueue(
            OutgoingMail(to: to, subject: subject, body: MailBody(text: text, html: "<p>\(text)</p>"), category: "password_reset"))
    }

    func drain(_ ctx: TestContext, _ transport: any MailTransport, now: Date? = nil) async throws -> MailDelivery.Outcome {
        try await MailDelivery.drainOnce(
            database: ctx.app.db, now: now ?? ctx.clock.now, transport: transport, sealer: ctx.app.twofold.sealer,
            from: Self.from, clock: ctx.clock.twofoldClock)
    }

    func row(_ ctx: TestContext, _ id: UUID) async throws -> QueuedMail {
        try #require(try await QueuedMail.find(id, on: ctx.app.db))
    }

    @Test func sendsEachMessageOnceAndWipesItsBody() async throws {
        try await withTestApp { ctx in
            let first = try await enqueue(ctx)
            ctx.clock.advance(1)
            let second = try await enqueue(ctx, to: "Nurse.Jones@Example.org", subject: "Plain subject")
            let transport = RecordingTransport()
            let outcome = try await drain(ctx, transport)
            #expect(outcome == MailDelivery.Outcome(claimed: 2, sent: 2, retried: 0, failed: 0))
            #expect(transport.sent.map(\.to) == ["dr.smith@example.org", "nurse.jones@example.org"])
            #expect(transport.sent.allSatisfy { $0.from == "2fa@example-clinic.org" })
            let stored = try await row(ctx, first)
            #expect(transport.messageIDs == [stored.messageID, try await row(ctx, second).messageID])
            let message = transport.sent[0].message
            #expect(message.hasPrefix("From: Riverside 2FA <2fa@example-clinic.org>\r\nTo: dr.smith@example.org\r\nSubject: =?utf-8?B?"))
            #expect(message.contains("\r\nDate: \(MIMEEncoding.rfc5322Date(stored.createdAt))\r\n"))
            #expect(message.contains("SECRET-TOKEN-0123456789"))
            #expect(message.contains("Content-Type: text/html; charset=utf-8"))
            for id in [first, second] {
                let mail = try await row(ctx, id)
                #expect(mail.status == .sent)
                #expect(mail.sealedBody == nil)
                #expect(mail.sentAt == ctx.clock.now)
                #expect(mail.leaseUntil == nil)
                #expect(mail.attempts == 1)
                #expect(try mailer(ctx).body(of: mail) == nil)
            }
            // Nothing is sent twice.
            ctx.clock.advance(3600)
            #expect(try await drain(ctx, transport).claimed == 0)
            #expect(transport.sent.count == 2)
        }
    }

    @Test func temporaryFailuresBackOffThenFailAndAreAudited() async throws {
        try await withTestApp { ctx in
            let id = try await enqueue(ctx)
            let transport = RecordingTransport { _ in .temporary("the SMTP server refused the message: 451 4.3.0 try later") }
            let schedule: [TimeInterval] = [60, 300, 900, 3600, 14_400, 14_400, 14_400]
            for (attempt, wait) in schedule.enumerated() {
                #expect(try await drain(ctx, transport) == MailDelivery.Outcome(claimed: 1, sent: 0, retried: 1, failed: 0))
                let mail = try await row(ctx, id)
                #expect(mail.status == .queued)
                #expect(mail.attempts == attempt + 1)
                #expect(mail.nextAttemptAt == ctx.clock.now.addingTimeInterval(wait))
                #expect(mail.lastError == "the SMTP server refused the message: 451 4.3.0 try later")
                #expect(mail.sealedBody != nil)
                // Not due a second early.
                ctx.clock.advance(wait - 1)
                #expect(try await drain(ctx, transport).claimed == 0)
                ctx.clock.advance(1)
            }
            #expect(try await drain(ctx, transport) == MailDelivery.Outcome(claimed: 1, sent: 0, retried: 0, failed: 1))
            let mail = try await row(ctx, id)
            #expect(mail.status == .failed)
            #expect(mail.attempts == 8)
            #expect(mail.sealedBody == nil)
            #expect(mail.lastError?.hasSuffix("(gave up after 8 attempts)") == true)
            #expect(transport.sent.count == 8)
            let events = try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "mail.failed").all()
            #expect(events.count == 1)
            #expect(events.first?.details.contains(id.uuidString.lowercased()) == true)
            #expect(events.first?.details.contains("gave up after 8 attempts") == true)
            ctx.clock.advance(86_400)
            #expect(try await drain(ctx, transport).claimed == 0)
        }
    }

    @Test func permanentFailuresFailAtOnceAndAreAudited() async throws {
        try await withTestApp { ctx in
            let id = try await enqueue(ctx)
            let transport = RecordingTransport { _ in .permanent("the SMTP server refused the recipient (RCPT TO): 550 5.1.1 unknown user")
            }
            #expect(try await drain(ctx, transport) == MailDelivery.Outcome(claimed: 1, sent: 0, retried: 0, failed: 1))
            let mail = try await row(ctx, id)
            #expect(mail.status == .failed)
            #expect(mail.attempts == 1)
            #expect(mail.sealedBody == nil)
            #expect(mail.lastError == "the SMTP server refused the recipient (RCPT TO): 550 5.1.1 unknown user")
            let event = try #require(
                try await AuditEvent.query(on: ctx.app.db).filter(\.$event == AuditEventType.mailFailed.rawValue).first())
            #expect(event.details.contains("550 5.1.1 unknown user"))
            #expect(event.details.contains("password_reset"))
            #expect(!event.details.contains("SECRET-TOKEN"))
            ctx.clock.advance(86_400)
            #expect(try await drain(ctx, transport).claimed == 0)
            #expect(transport.sent.count == 1)
        }
    }

    @Test func aMessageWhoseInstanceDiedIsSentAfterTheLease() async throws {
        try await withTestApp { ctx in
            let id = try await enqueue(ctx)
            // An instance claims the message and dies before sending it.
            let claimed = try await MailDelivery.claim(database: ctx.app.db, now: ctx.clock.now)
            #expect(claimed.map(\.id) == [id])
            let transport = RecordingTransport()
            ctx.clock.advance(119)
            #expect(try await drain(ctx, transport).claimed == 0) // the lease still holds
            #expect(try await row(ctx, id).status == .sending)
            ctx.clock.advance(2)
            #expect(try await drain(ctx, transport) == MailDelivery.Outcome(claimed: 1, sent: 1, retried: 0, failed: 0))
            let mail = try await row(ctx, id)
            #expect(mail.status == .sent)
            #expect(mail.attempts == 2)
            #expect(transport.sent.count == 1)
        }
    }

    @Test func aStaleInstanceDoesNotOverwriteTheOutcome() async throws {
        try await withTestApp { ctx in
            let id = try await enqueue(ctx)
            // Instance A is slow: by the time its server refuses, its lease has run out and B sent the message.
            let start = ctx.clock.now
            let gate = AsyncGate()
            let slow = GatedTransport(gate: gate, error: .permanent("550 late refusal"))
            async let stale = MailDelivery.drainOnce(
                database: ctx.app.db, now: start, transport: slow, sealer: ctx.app.twofold.sealer, from: Self.from)
            try await gate.waitUntilEntered()
            let fresh = RecordingTransport()
            #expect(try await drain(ctx, fresh, now: start.addingTimeInterval(121)).sent == 1)
            gate.open()
            _ = try await stale
            let mail = try await row(ctx, id)
            #expect(mail.status == .sent)
            #expect(mail.attempts == 2)
            #expect(mail.lastError == nil)
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "mail.failed").count() == 0)
        }
    }

    @Test func concurrentDrainsNeverSendAMessageTwice() async throws {
        try await withTestApp { ctx in
            var ids: [UUID] = []
            for index in 0..<45 {
                ids.append(try await enqueue(ctx, to: "user\(index)@example.org"))
                ctx.clock.advance(0.01)
            }
            let transport = RecordingTransport(delay: .milliseconds(2))
            let now = ctx.clock.now
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<3 {
                    group.addTask {
                        while try await MailDelivery.drainOnce(
                            database: ctx.app.db, now: now, transport: transport, sealer: ctx.app.twofold.sealer,
                            from: Self.from
                        ).claimed > 0 {}
                    }
                }
                try await group.waitForAll()
            }
            let sentTo = transport.sent.map(\.to)
            #expect(sentTo.count == 45)
            #expect(Set(sentTo).count == 45)
            let statuses = try await QueuedMail.query(on: ctx.app.db).all().map(\.status)
            #expect(statuses.allSatisfy { $0 == .sent })
            #expect(try await QueuedMail.query(on: ctx.app.db).filter(\.$attempts == 1).count() == 45)
        }
    }

    @Test func bodiesAreSealedAtRest() async throws {
        try await withTestApp { ctx in
            let id = try await enqueue(ctx, text: "Your link: https://2fa.example-clinic.org/reset/PLAINTEXT-MARKER-987654\n")
            let row = try #require(
                try await ctx.app.db.sql.select().column("sealed_body").from(QueuedMail.schema).where("id", .equal, SQLBind(id)).first())
            let sealed = try row.decode(column: "sealed_body", as: Data.self)
            #expect(!sealed.isEmpty)
            #expect(sealed.range(of: Data("PLAINTEXT-MARKER".utf8)) == nil)
            #expect(sealed.range(of: Data("2fa.example-clinic.org".utf8)) == nil)
            #expect(try mailer(ctx).body(of: try await self.row(ctx, id))?.text.contains("PLAINTEXT-MARKER-987654") == true)
            // A body sealed for another message (a copied row) cannot be opened: it fails for good, without sending.
            let other = try await enqueue(ctx)
            try await ctx.app.db.sql.update(QueuedMail.schema).set("sealed_body", to: SQLBind(sealed)).where("id", .equal, SQLBind(other))
                .run()
            let transport = RecordingTransport()
            #expect(try await drain(ctx, transport) == MailDelivery.Outcome(claimed: 2, sent: 1, retried: 0, failed: 1))
            #expect(try await self.row(ctx, other).lastError == "the message's body cannot be opened with the sealing keys")
            #expect(transport.sent.count == 1)
        }
    }

    @Test func outboxMessagesAreNeverSent() async throws {
        try await withTestApp { ctx in
            try await ctx.app.mailer.enqueue(
                OutgoingMail(to: "a@example.org", subject: "kept", body: MailBody(text: "t", html: "h"), category: "test"))
            let transport = RecordingTransport()
            #expect(try await drain(ctx, transport).claimed == 0)
            #expect(try await QueuedMail.query(on: ctx.app.db).first()?.status == .kept)
        }
    }

    @Test func wakeSignalEndsTheWaitEarly() async throws {
        // Each wait says what ended it, so nothing here depends on how fast the machine is: the timeouts are an
        // hour, and a wait that returned `true` was ended by a signal, not by its timer.
        let signal = MailWakeSignal()
        // A signal while nobody waits is kept for the next wait.
        signal.signal()
        #expect(await signal.wait(timeout: .seconds(3600)))
        // A task waiting (or about to wait) is woken by a signal from another task.
        let waiter = Task { await signal.wait(timeout: .seconds(3600)) }
        signal.signal()
        #expect(await waiter.value)
        // Cancelling ends the wait without a signal; so does a short timeout.
        let cancelled = Task { await signal.wait(timeout: .seconds(3600)) }
        cancelled.cancel()
        #expect(await cancelled.value == false)
        #expect(await signal.wait(timeout: .milliseconds(20)) == false)
        // wake() without the delivery task installed does nothing.
        try await withTestApp { ctx in MailDelivery.wake(ctx.app) }
    }

    @Test func heloNameComesFromThePublicURL() {
        #expect(MailDelivery.heloName(publicURL: "https://2fa.example-clinic.org") == "2fa.example-clinic.org")
        #expect(MailDelivery.heloName(publicURL: "http://127.0.0.1:8080") == "127.0.0.1")
        #expect(MailDelivery.heloName(publicURL: nil) == "localhost")
    }
}

/// Lets a test hold a transport inside `send` until it opens the gate.
final class AsyncGate: Sendable {
    private let state = NIOLockedValueBox<(entered: Bool, open: Bool)>((false, false))

    func enter() async {
        state.withLockedValue { $0.entered = true }
        while !state.withLockedValue({ $0.open }) { try? await Task.sleep(for: .milliseconds(5)) }
    }

    func waitUntilEntered() async throws {
        while !state.withLockedValue({ $0.entered }) { try await Task.sleep(for: .milliseconds(5)) }
    }

    func open() { state.withLockedValue { $0.open = true } }
}

struct GatedTransport: MailTransport {
    let gate: AsyncGate
    let error: SMTPDeliveryError

    func send(from sender: String, to recipient: String, message: [UInt8]) async throws {
        await gate.enter()
        throw error
    }
}
