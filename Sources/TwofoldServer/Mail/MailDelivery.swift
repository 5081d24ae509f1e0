import Fluent
import Foundation
import NIOConcurrencyHelpers
import SQLKit
import TwofoldCore
import Vapor

/// Hands one composed message to a mail server. ``SMTPTransport`` in production; tests record.
protocol MailTransport: Sendable {
    /// - Throws: ``SMTPDeliveryError`` (temporary or permanent); any other error counts as temporary.
    func send(from sender: String, to recipient: String, message: [UInt8]) async throws
}

/// The SMTP client as a transport.
struct SMTPTransport: MailTransport {
    let client: SMTPClient

    func send(from sender: String, to recipient: String, message: [UInt8]) async throws {
        try await client.send(from: sender, to: recipient, message: message)
    }
}

/// While `twofold serve` runs with `TWOFOLD_EMAIL_SENDER=smtp`, drains `mail_queue`: every two seconds, and at once
/// when ``wake(_:)`` is called after a message was queued.
///
/// Each round claims up to 20 due messages in one statement (status `sending`, a two-minute lease, one more
/// attempt), so an instance never sends a message another instance holds; a message whose instance died is
/// claimed again once its lease ran out. The lease is renewed before each message of the batch, and an SMTP
/// conversation is cut off after 100 seconds, inside the lease. Every later write names the attempt it belongs
/// to (`attempts = n`), so an instance whose lease was taken over changes nothing.
///
/// Outcomes: accepted → `sent` (the sealed body is wiped); a temporary failure → `queued` again after 1 min,
/// 5 min, 15 min, 1 h, then every 4 h; after the 8th attempt, or on a permanent failure (5xx) → `failed`, the body
/// wiped and the failure audited (`mail.failed`).
final class MailDelivery: LifecycleHandler, Sendable {
    static let pollInterval: Duration = .seconds(2)
    static let leaseSeconds: TimeInterval = 120
    static let batchSize = 20
    static let maximumAttempts = 8
    /// The wait after the n-th failed attempt (the last entry repeats).
    static let backOff: [TimeInterval] = [60, 300, 900, 3600, 4 * 3600]

    private let settings: TwofoldConfiguration.SMTPSettings
    private let signal: MailWakeSignal
    private let task = NIOLockedValueBox<Task<Void, Never>?>(nil)

    init(settings: TwofoldConfiguration.SMTPSettings, signal: MailWakeSignal) {
        self.settings = settings
        self.signal = signal
    }

    private struct SignalKey: StorageKey { typealias Value = MailWakeSignal }

    /// Installs the task for `twofold serve` with the smtp sender (not for admin commands, nor in tests, which drain by hand).
    static func install(on app: Application, sender: TwofoldConfiguration.EmailSenderChoice) {
        let command = app.environment.arguments.dropFirst().first ?? "serve"
        guard case .smtp(let settings) = sender, command == "serve", app.environment != .testing else { return }
        let signal = MailWakeSignal()
        app.storage[SignalKey.self] = signal
        app.lifecycle.use(MailDelivery(settings: settings, signal: signal))
    }

    /// Asks the delivery task to look at the queue now (call it after the transaction that queued a message
    /// committed). Does nothing without the task (outbox sender, commands, tests).
    static func wake(_ app: Application) {
        app.storage[SignalKey.self]?.signal()
    }

    /// The EHLO name: the host of `TWOFOLD_PUBLIC_URL`, else `localhost`.
    static func heloName(publicURL: String?) -> String {
        publicURL.flatMap { URLComponents(string: $0)?.host }.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
    }

    func didBootAsync(_ application: Application) async throws {
        let transport = SMTPTransport(
            client: SMTPClient(
                settings: settings, heloName: Self.heloName(publicURL: application.twofold.configuration.publicURL),
                eventLoopGroup: application.eventLoopGroup, logger: application.logger))
        let signal = self.signal
        let handle = Task { [transport] in
            while !Task.isCancelled {
                var full = false
                do {
                    let services = application.twofold
                    let outcome = try await Self.drainOnce(
                        database: application.db, now: services.clock.now(), transport: transport, sealer: services.sealer,
                        from: services.configuration.emailFrom, clock: services.clock, logger: application.logger)
                    full = outcome.claimed == Self.batchSize
                } catch {
                    application.logger.warning(
                        "Reading the mail queue failed; trying again", metadata: ["error": .string(String(describing: error))])
                }
                if Task.isCancelled { break }
                if !full { await signal.wait(timeout: Self.pollInterval) }
            }
        }
        task.withLockedValue { $0 = handle }
    }

    func shutdownAsync(_ application: Application) async {
        let handle = task.withLockedValue { $0 }
        handle?.cancel()
        await handle?.value
    }

    struct Outcome: Equatable, Sendable {
        var claimed = 0
        var sent = 0
        var retried = 0
        var failed = 0
    }

    struct Claimed: Decodable {
        var id: UUID
        var practice_id: UUID?
        var user_id: UUID?
        var recipient: String
        var category: String
        var subject: String
        var sealed_body: Data?
        var attempts: Int
        var message_id: String
        var created_at: Date
    }

    /// One round: claims due messages (queued and due, or leased by an instance whose lease ran out) and sends
    /// each through `transport`. `clock` (default: always `now`) renews the lease between messages.
    @discardableResult
    static func drainOnce(
        database: any Database, now: Date, transport: any MailTransport, sealer: SecretSealer, from: String,
        clock: TwofoldClock? = nil, logger: Logger = Logger(label: "twofold.mail")
    ) async throws -> Outcome {
        let clock = clock ?? TwofoldClock { now }
        let claimed = try await claim(database: database, now: now)
        var outcome = Outcome(claimed: claimed.count)
        for (index, mail) in claimed.enumerated() {
            let current = index == 0 ? now : clock.now()
            if index > 0 {
                // Still ours? Renew the lease for this message's conversation.
                let renewed = try await database.sql.update(QueuedMail.schema)
                    .set("lease_until", to: SQLBind(current.addingTimeInterval(leaseSeconds)))
                    .where("id", .equal, SQLBind(mail.id)).where("status", .equal, SQLBind(QueuedMail.Status.sending.rawValue))
                    .where("attempts", .equal, SQLBind(mail.attempts))
                    .returning("id").all()
                if renewed.isEmpty { continue }
            }
            if mail.attempts > maximumAttempts {
                // Its instance stopped during the last attempt.
                try await finish(
                    mail, status: .failed, error: "the delivery task stopped during the last attempt", database: database, now: current,
                    logger: logger)
                outcome.failed += 1
                continue
            }
            do {
                let message = try compose(mail, sealer: sealer, from: from)
                try await transport.send(from: message.from.address, to: mail.recipient, message: try message.rendered())
                try await finish(mail, status: .sent, error: nil, database: database, now: clock.now(), logger: logger)
                outcome.sent += 1
            } catch {
                let failure = (error as? SMTPDeliveryError) ?? .temporary("sending failed: \(String(describing: error).prefix(200))")
                let after = clock.now()
                if failure.kind == .temporary, mail.attempts < maximumAttempts {
                    let wait = backOff[min(mail.attempts, backOff.count) - 1]
                    try await database.sql.update(QueuedMail.schema)
                        .set("status", to: SQLBind(QueuedMail.Status.queued.rawValue))
                        .set("next_attempt_at", to: SQLBind(after.addingTimeInterval(wait)))
                        .set("lease_until", to: SQLBind(nil as Date?))
                        .set("last_error", to: SQLBind(String(failure.description.prefix(500))))
                        .where("id", .equal, SQLBind(mail.id)).where("status", .equal, SQLBind(QueuedMail.Status.sending.rawValue))
                        .where("attempts", .equal, SQLBind(mail.attempts))
                        .run()
                    logger.notice(
                        "Email not sent; trying again later",
                        metadata: [
                            "mail_id": .string(mail.id.uuidString), "attempt": .stringConvertible(mail.attempts),
                            "retry_in_seconds": .stringConvertible(Int(wait)),
                            "error": .string(failure.description),
                        ])
                    outcome.retried += 1
                } else {
                    let reason =
                        failure.kind == .permanent
                        ? failure.description : "\(failure.description) (gave up after \(mail.attempts) attempts)"
                    try await finish(mail, status: .failed, error: reason, database: database, now: after, logger: logger)
                    outcome.failed += 1
                }
            }
        }
        return outcome
    }

    /// Claims due messages in one statement. On PostgreSQL the rows are locked with SKIP LOCKED, so a concurrent
    /// claim neither waits for them nor takes them; the outer conditions are checked again on the locked row.
    /// SQLite runs the statement under its single write lock.
    static func claim(database: any Database, now: Date) async throws -> [Claimed] {
        let sql = database.sql
        let skipLocked: SQLQueryString = sql.dialect.name == "postgresql" ? " FOR UPDATE SKIP LOCKED" : ""
        let due: SQLQueryString = """
            ((status = \(bind: QueuedMail.Status.queued.rawValue) AND next_attempt_at <= \(bind: now)) \
            OR (status = \(bind: QueuedMail.Status.sending.rawValue) AND lease_until < \(bind: now)))
            """
        let query: SQLQueryString = """
            UPDATE \(ident: QueuedMail.schema) SET status = \(bind: QueuedMail.Status.sending.rawValue), \
            lease_until = \(bind: now.addingTimeInterval(leaseSeconds)), attempts = attempts + 1 \
            WHERE id IN (SELECT id FROM \(ident: QueuedMail.schema) WHERE \(due) ORDER BY created_at, id LIMIT \(unsafeRaw: String(batchSize))\(skipLocked)) \
            AND \(due) \
            RETURNING id, practice_id, user_id, recipient, category, subject, sealed_body, attempts, message_id, created_at
            """
        let rows = try await sql.raw(query).all()
        return try rows.map { try $0.decode(model: Claimed.self) }.sorted {
            ($0.created_at, $0.id.uuidString) < ($1.created_at, $1.id.uuidString)
        }
    }

    /// The message of a queued row: `From` from `TWOFOLD_EMAIL_FROM`, `Date` when it was queued (the same on every retry).
    static func compose(_ mail: Claimed, sealer: SecretSealer, from: String) throws -> MIMEMessage {
        guard let sealed = mail.sealed_body else { throw SMTPDeliveryError.permanent("the message's body was wiped") }
        let body: MailBody
        do {
            body = try JSONDecoder().decode(
                MailBody.self, from: Data(try sealer.open(Array(sealed), context: Mailer.sealingContext(for: mail.id))))
        } catch {
            throw SMTPDeliveryError.permanent("the message's body cannot be opened with the sealing keys")
        }
        do {
            return MIMEMessage(
                from: try MailAddress(parsing: from, field: "From"), to: try MailAddress(parsing: mail.recipient, field: "To"),
                subject: mail.subject, date: mail.created_at, messageID: mail.message_id, text: body.text, html: body.html)
        } catch let error as MailFormatError {
            throw SMTPDeliveryError.permanent("the message cannot be sent: \(error)")
        }
    }

    /// `sent` or `failed`: the body wiped, the lease released; a failure is audited.
    private static func finish(
        _ mail: Claimed, status: QueuedMail.Status, error: String?, database: any Database, now: Date, logger: Logger
    ) async throws {
        var update = database.sql.update(QueuedMail.schema)
            .set("status", to: SQLBind(status.rawValue))
            .set("sealed_body", to: SQLBind(nil as Data?))
            .set("lease_until", to: SQLBind(nil as Date?))
            .set("last_error", to: SQLBind(error.map { String($0.prefix(500)) }))
        if status == .sent { update = update.set("sent_at", to: SQLBind(now)) }
        let changed =
            try await update
            .where("id", .equal, SQLBind(mail.id)).where("status", .equal, SQLBind(QueuedMail.Status.sending.rawValue))
            .where("attempts", .equal, SQLBind(mail.attempts))
            .returning("id").all()
        guard status == .failed, !changed.isEmpty else { return }
        logger.error(
            "Email could not be delivered",
            metadata: [
                "mail_id": .string(mail.id.uuidString), "category": .string(mail.category), "attempts": .stringConvertible(mail.attempts),
                "error": .string(error ?? ""),
            ])
        do {
            try await AuditLog.append(
                AuditEntry(
                    type: .mailFailed, practiceID: mail.practice_id, subjectID: mail.user_id,
                    details: [
                        "mail_id": mail.id.uuidString.lowercased(), "category": mail.category, "recipient": mail.recipient,
                        "attempts": String(mail.attempts), "reason": String((error ?? "").prefix(300)),
                    ]), on: database, now: now)
        } catch {
            logger.error("Auditing an undelivered email failed", metadata: ["mail_id": .string(mail.id.uuidString)])
        }
    }
}

/// Wakes the delivery task: ``signal()`` from anywhere, ``wait(timeout:)`` in the task. A signal while nobody
/// waits is kept for the next wait; cancelling the waiting task ends its wait.
final class MailWakeSignal: Sendable {
    private struct State {
        var pending = false
        var nextWait: UInt64 = 0
        var waiter: (id: UInt64, continuation: CheckedContinuation<Bool, Never>)?
        /// A wait that timed out or was cancelled before its continuation was stored.
        var ended: UInt64?
    }

    private let state = NIOLockedValueBox(State())

    init() {}

    func signal() {
        let continuation = state.withLockedValue { state -> CheckedContinuation<Bool, Never>? in
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter.continuation
            }
            state.pending = true
            return nil
        }
        continuation?.resume(returning: true)
    }

    /// Returns on a signal, after `timeout`, or when the task is cancelled, whichever comes first.
    /// - Returns: whether a signal ended the wait.
    @discardableResult
    func wait(timeout: Duration) async -> Bool {
        let id = state.withLockedValue { state -> UInt64 in
            state.nextWait += 1
            return state.nextWait
        }
        let timer = Task { [self] in
            try? await Task.sleep(for: timeout)
            end(id)
        }
        let signalled = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let resumeNow = state.withLockedValue { state -> Bool? in
                    if state.pending {
                        state.pending = false
                        return true
                    }
                    if state.ended == id { return false }
                    state.waiter = (id, continuation)
                    return nil
                }
                if let resumeNow { continuation.resume(returning: resumeNow) }
            }
        } onCancel: {
            end(id)
        }
        timer.cancel()
        return signalled
    }

    private func end(_ id: UInt64) {
        let continuation = state.withLockedValue { state -> CheckedContinuation<Bool, Never>? in
            if let waiter = state.waiter, waiter.id == id {
                state.waiter = nil
                return waiter.continuation
            }
            state.ended = id
            return nil
        }
        continuation?.resume(returning: false)
    }
}

/// `twofold mail test --to ADDRESS`: queues a short message, for an operator checking the SMTP settings.
struct TestMailCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "to", help: "The address to send the test message to.") var to: String?
    }

    var help: String { "Queues a test message (the server's delivery task sends it; see `twofold mail list`)." }

    struct Context: Encodable, Sendable {
        var subject: String
        var practiceName: String
        var sender: String
        var smtpServer: String
        var queuedAt: String
    }

    func run(using context: CommandContext, signature: Signature) async throws {
        let app = context.application
        guard let to = signature.to?.trimmingCharacters(in: .whitespaces), MailAddress.isValid(to) else {
            throw CLIError("--to ADDRESS is required: an email address")
        }
        try await prepareDatabase(app)
        let config = app.twofold.configuration
        let server: String
        switch config.emailSender {
        case .outbox: server = "none (TWOFOLD_EMAIL_SENDER=outbox: the message is kept in the database)"
        case .smtp(let settings): server = "\(settings.security == .implicitTLS ? "smtps" : "smtp")://\(settings.host):\(settings.port)"
        }
        let subject = "Twofold test message ✓"
        let body = try await MailTemplates.render(
            "test",
            Context(
                subject: subject, practiceName: "Twofold", sender: config.emailFrom, smtpServer: server,
                queuedAt: MIMEEncoding.rfc5322Date(app.twofold.clock.now())), with: app.view)
        let id = try await app.mailer.enqueue(OutgoingMail(to: to, subject: subject, body: body, category: "test"))
        switch config.emailSender {
        case .outbox:
            context.console.print(
                "Kept test message \(id.uuidString.lowercased()) for \(to.lowercased()) in the outbox (TWOFOLD_EMAIL_SENDER=outbox); see `twofold mail list`."
            )
        case .smtp:
            context.console.print(
                "Queued test message \(id.uuidString.lowercased()) for \(to.lowercased()); the running server sends it through \(server). Check with `twofold mail list --to \(to.lowercased())`."
            )
        }
    }
}
