import Fluent
import FluentSQL
import Foundation
import SQLKit
import TwofoldCore
import Vapor

/// One outgoing email. Sending never blocks a request: the message is written here in the request's transaction, and
/// the delivery task sends it (SMTP) after the commit, so a crash loses no message; a lease on the row makes sure two
/// instances never send one twice. With the `outbox` sender the message is kept here (status `kept`) for
/// `twofold mail list`. The bodies hold single-use links, so they are sealed at rest and wiped once sent.
final class QueuedMail: Model, @unchecked Sendable {
    static let schema = "mail_queue"

    enum Status: String, Codable, Sendable, CaseIterable {
        /// waiting for the delivery task (or for a retry after a temporary failure)
        case queued
        /// leased by one instance's delivery task until ``QueuedMail/leaseUntil``
        case sending
        /// accepted by the SMTP server
        case sent
        /// kept by the outbox sender (development, tests, offline clinics)
        case kept
        /// refused for good (5xx), or still failing after every retry; audited
        case failed
    }

    @ID(key: .id) var id: UUID?
    @OptionalField(key: "practice_id") var practiceID: UUID?
    @OptionalField(key: "user_id") var userID: UUID?
    @Field(key: "recipient") var recipient: String
    /// What the message is about (e.g. `password_reset`, `invitation`, `notification.factor_added`).
    @Field(key: "category") var category: String
    @Field(key: "subject") var subject: String
    /// ``MailBody`` as JSON, sealed with the record's id as context; nil once an SMTP server accepted it.
    @OptionalField(key: "sealed_body") var sealedBody: Data?
    @Field(key: "status") var status: Status
    @Field(key: "attempts") var attempts: Int
    @Field(key: "next_attempt_at") var nextAttemptAt: Date
    @OptionalField(key: "lease_until") var leaseUntil: Date?
    @OptionalField(key: "last_error") var lastError: String?
    /// The `Message-ID` header (without angle brackets), fixed when queued so a retry sends the same message.
    @Field(key: "message_id") var messageID: String
    @Field(key: "created_at") var createdAt: Date
    @OptionalField(key: "sent_at") var sentAt: Date?

    init() {}
}

/// The two bodies of a message: plain text and HTML (sent as multipart/alternative).
struct MailBody: Codable, Sendable, Equatable {
    var text: String
    var html: String
}

/// A message to queue.
struct OutgoingMail: Sendable {
    var to: String
    var subject: String
    var body: MailBody
    var category: String
    var practiceID: UUID?
    var userID: UUID?
}

/// Queues outgoing email. Takes its dependencies explicitly so commands, tasks and requests all use it.
struct Mailer: Sendable {
    let database: any Database
    let sealer: SecretSealer
    let now: Date
    let sender: TwofoldConfiguration.EmailSenderChoice
    /// The domain of Message-IDs (the host of the From address).
    let messageIDDomain: String

    static func sealingContext(for id: UUID) -> [UInt8] {
        Array("twofold.mail.\(id.uuidString.lowercased())".utf8)
    }

    /// Writes the message (in `db`, e.g. the transaction of the change it reports); the delivery task sends it after
    /// the commit. Returns its id.
    @discardableResult
    func enqueue(_ mail: OutgoingMail, on db: (any Database)? = nil) async throws -> UUID {
        let id = UUID()
        let sealed = try sealer.seal(Array(try JSONEncoder().encode(mail.body)), context: Self.sealingContext(for: id))
        let status: QueuedMail.Status = sender == .outbox ? .kept : .queued
        let messageID = "\(Digest.hex(SecureRandom.bytes(12))).\(Int(now.timeIntervalSince1970))@\(messageIDDomain)"
        // Written with SQL directly: the model layer logs its inputs at debug level.
        try await (db ?? database).sql.insert(into: QueuedMail.schema)
            .columns(
                "id", "practice_id", "user_id", "recipient", "category", "subject", "sealed_body", "status", "attempts",
                "next_attempt_at", "message_id", "created_at", "sent_at"
            )
            .values(
                SQLBind(id), SQLBind(mail.practiceID), SQLBind(mail.userID),
                SQLBind(mail.to.trimmingCharacters(in: .whitespaces).lowercased()), SQLBind(mail.category),
                SQLBind(mail.subject), SQLBind(Data(sealed)), SQLBind(status.rawValue), SQLBind(0), SQLBind(now), SQLBind(messageID),
                SQLBind(now), SQLBind(status == .kept ? now : nil as Date?)
            )
            .run()
        return id
    }

    /// The bodies of a queued or kept message; nil once they were wiped after sending.
    func body(of mail: QueuedMail) throws -> MailBody? {
        guard let sealed = mail.sealedBody, let id = mail.id else { return nil }
        return try JSONDecoder().decode(MailBody.self, from: Data(try sealer.open(Array(sealed), context: Self.sealingContext(for: id))))
    }

    /// The host part of an address such as `Name <user@host>`.
    static func domain(of from: String) -> String {
        let address = from.split(separator: "<").last.map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "> ")) } ?? from
        return address.split(separator: "@").last.map(String.init) ?? "localhost"
    }
}

extension Application {
    var mailer: Mailer {
        Mailer(
            database: db, sealer: twofold.sealer, now: twofold.clock.now(), sender: twofold.configuration.emailSender,
            messageIDDomain: Mailer.domain(of: twofold.configuration.emailFrom))
    }
}

extension Request {
    var mailer: Mailer {
        Mailer(
            database: db, sealer: twofold.sealer, now: now, sender: twofold.configuration.emailSender,
            messageIDDomain: Mailer.domain(of: twofold.configuration.emailFrom))
    }
}

struct CreateMailQueue: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(QueuedMail.schema)
            .id()
            .field("practice_id", .uuid)
            .field("user_id", .uuid)
            .field("recipient", .string, .required)
            .field("category", .string, .required)
            .field("subject", .string, .required)
            .field("sealed_body", .data)
            .field("status", .string, .required)
            .field("attempts", .int, .required)
            .field("next_attempt_at", .datetime, .required)
            .field("lease_until", .datetime)
            .field("last_error", .string)
            .field("message_id", .string, .required)
            .field("created_at", .datetime, .required)
            .field("sent_at", .datetime)
            .create()
        try await database.sqlIndex(name: "mail_queue_due_idx", on: QueuedMail.schema, columns: ["status", "next_attempt_at"])
        try await database.sqlIndex(name: "mail_queue_recipient_idx", on: QueuedMail.schema, columns: ["recipient", "created_at"])
    }

    func revert(on database: any Database) async throws {
        try await database.schema(QueuedMail.schema).delete()
    }
}

/// `twofold mail list [--to ADDRESS] [--json]`: messages of the queue, newest first (bodies while they are kept).
struct MailCommands: AsyncCommandGroup {
    var help: String { "Read outgoing email: kept by the outbox sender, or queued and sent over SMTP." }
    var commands: [String: any AnyAsyncCommand] { ["list": ListMailCommand(), "test": TestMailCommand()] }
}

struct ListMailCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "to", help: "Only messages to this address.") var to: String?
        @Option(name: "limit", help: "At most this many messages (default 50).") var limit: Int?
        @Flag(name: "json", help: "Print JSON instead of text.") var json: Bool
    }

    var help: String { "Lists outgoing email, newest first." }

    struct Item: Codable {
        var id: UUID
        var to: String
        var subject: String
        var category: String
        var status: String
        var createdAt: Date
        var sentAt: Date?
        var attempts: Int
        var lastError: String?
        var messageId: String
        var text: String?
        var html: String?
    }

    func run(using context: CommandContext, signature: Signature) async throws {
        let app = context.application
        try await prepareDatabase(app)
        let limit = signature.limit ?? 50
        guard (1...10_000).contains(limit) else { throw CLIError("--limit must be 1 to 10000") }
        var query = QueuedMail.query(on: app.db).sort(\.$createdAt, .descending).sort(\.$id, .descending).limit(limit)
        if let to = signature.to { query = query.filter(\.$recipient == to.trimmingCharacters(in: .whitespaces).lowercased()) }
        let mailer = app.mailer
        let items = try await query.all().map { mail in
            let body = try mailer.body(of: mail)
            return Item(
                id: try mail.requireID(), to: mail.recipient, subject: mail.subject, category: mail.category, status: mail.status.rawValue,
                createdAt: mail.createdAt, sentAt: mail.sentAt, attempts: mail.attempts, lastError: mail.lastError,
                messageId: mail.messageID, text: body?.text, html: body?.html)
        }
        if signature.json {
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            context.console.print(String(decoding: try encoder.encode(items), as: UTF8.self))
        } else if items.isEmpty {
            context.console.print("No email.")
        } else {
            for item in items {
                context.console.print("\(item.createdAt.ISO8601Format())  \(item.status)  \(item.to)  \(item.subject)")
                if let text = item.text {
                    context.console.print(
                        text.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n"))
                }
            }
        }
    }
}

extension ServiceContext {
    /// The mail queue as this context's configuration sends it, writing through `db` (a transaction, so a rolled-back
    /// change sends nothing).
    func mailer(on db: any Database, now: Date) -> Mailer {
        Mailer(
            database: db, sealer: sealer, now: now, sender: configuration.emailSender,
            messageIDDomain: Mailer.domain(of: configuration.emailFrom))
    }
}
