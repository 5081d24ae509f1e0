import Fluent
import Foundation
import SQLKit
import Vapor

/// A text message that could not be handed to the provider.
struct SMSDeliveryError: Error, CustomStringConvertible {
    var description: String
}

/// Sends a text message. Implementations: the database outbox, Twilio, or a signed HTTPS webhook.
protocol SMSSender: Sendable {
    var name: String { get }
    /// - Throws: ``SMSDeliveryError`` when the provider refused or could not be reached.
    func send(to phone: String, body: String, database: any Database, client: any Client, now: Date) async throws
}

extension Application {
    private struct SMSSenderKey: StorageKey { typealias Value = any SMSSender }

    /// The configured sender (`app.smsSender = …`); `outbox` unless configured otherwise.
    var smsSender: any SMSSender {
        get { storage[SMSSenderKey.self] ?? OutboxSender() }
        set { storage[SMSSenderKey.self] = newValue }
    }
}

/// Keeps messages in the database for `twofold outbox list`: for development, tests and offline clinics.
struct OutboxSender: SMSSender {
    let name = "outbox"

    func send(to phone: String, body: String, database: any Database, client: any Client, now: Date) async throws {
        // Written with SQL directly: the model layer logs its inputs at debug level, and the body holds a code.
        try await database.sql.insert(into: OutboxMessage.schema)
            .columns("id", "recipient", "body", "created_at")
            .values(SQLBind(UUID()), SQLBind(phone), SQLBind(body), SQLBind(now))
            .run()
    }
}

/// Sends through Twilio's Messages API (form POST with HTTP basic authentication).
struct TwilioSender: SMSSender {
    let name = "twilio"
    let settings: TwofoldConfiguration.TwilioSettings

    func send(to phone: String, body: String, database: any Database, client: any Client, now: Date) async throws {
        let base = settings.apiBaseURL.hasSuffix("/") ? String(settings.apiBaseURL.dropLast()) : settings.apiBaseURL
        let sid = settings.accountSID.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let uri = URI(string: "\(base)/2010-04-01/Accounts/\(sid)/Messages.json")
        let response: ClientResponse
        do {
            response = try await client.post(uri) { request in
                request.headers.basicAuthorization = BasicAuthorization(username: settings.accountSID, password: settings.authToken)
                try request.content.encode(["To": phone, "From": settings.fromNumber, "Body": body], as: .urlEncodedForm)
            }
        } catch {
            throw SMSDeliveryError(description: "Twilio could not be reached")
        }
        guard (200..<300).contains(response.status.code) else {
            throw SMSDeliveryError(description: "Twilio refused the message (HTTP \(response.status.code))")
        }
    }
}

/// POSTs `{"to", "body", "sentAt"}` as JSON to an HTTPS URL, signed with HMAC-SHA256 over `timestamp.body`
/// in `X-Twofold-Signature: v1=<hex>` with `X-Twofold-Timestamp`, so the receiver can reject forgeries and replays.
struct WebhookSender: SMSSender {
    let name = "webhook"
    let settings: TwofoldConfiguration.WebhookSettings

    struct Payload: Content {
        var to: String
        var body: String
        var sentAt: Int
    }

    static func signature(secret: String, timestamp: String, body: Data) -> String {
        let key = SymmetricKey(data: Data(secret.utf8))
        var message = Data("\(timestamp).".utf8)
        message.append(body)
        return "v1=" + HMAC<SHA256>.authenticationCode(for: message, using: key).map { String(format: "%02x", $0) }.joined()
    }

    func send(to phone: String, body: String, database: any Database, client: any Client, now: Date) async throws {
        let timestamp = String(Int(now.timeIntervalSince1970))
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = try encoder.encode(Payload(to: phone, body: body, sentAt: Int(now.timeIntervalSince1970)))
        let response: ClientResponse
        do {
            response = try await client.post(URI(string: settings.url)) { request in
                request.headers.contentType = .json
                request.headers.replaceOrAdd(name: "X-Twofold-Timestamp", value: timestamp)
                request.headers.replaceOrAdd(
                    name: "X-Twofold-Signature", value: Self.signature(secret: settings.signingSecret, timestamp: timestamp, body: json))
                request.body = ByteBuffer(data: json)
            }
        } catch {
            throw SMSDeliveryError(description: "the SMS webhook could not be reached")
        }
        guard (200..<300).contains(response.status.code) else {
            throw SMSDeliveryError(description: "the SMS webhook answered HTTP \(response.status.code)")
        }
    }
}
