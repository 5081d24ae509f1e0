import Foundation

/// A server reply (RFC 5321 §4.2): a three-digit code and one or more lines of text.
public struct SMTPReply: Sendable, Equatable, CustomStringConvertible {
    public var code: Int
    /// The text of each line, after the code and separator.
    public var lines: [String]

    public init(code: Int, lines: [String]) {
        self.code = code
        self.lines = lines
    }

    /// 2xx and 3xx.
    public var isPositive: Bool { (200..<400).contains(code) }
    /// 4xx: try again later.
    public var isTransientFailure: Bool { (400..<500).contains(code) }
    /// 5xx: do not try again.
    public var isPermanentFailure: Bool { (500..<600).contains(code) }

    /// `250 first line` (only the first line, shortened), for errors and logs.
    public var description: String {
        let text = (lines.first ?? "").prefix(200)
        return text.isEmpty ? String(code) : "\(code) \(text)"
    }
}

/// Why the server's bytes are not SMTP.
public enum SMTPProtocolError: Error, Equatable, CustomStringConvertible {
    /// A reply line that does not start with a code in 200–599 followed by a space, a hyphen or the end of the line.
    case malformedReply(String)
    /// A continuation line whose code differs from the first line's.
    case inconsistentCode(expected: Int, got: Int)
    /// More lines in one reply than any server sends.
    case replyTooLong

    public var description: String {
        switch self {
        case .malformedReply(let line): return "the SMTP server sent a malformed reply line: \(line.prefix(80).debugDescription)"
        case .inconsistentCode(let expected, let got):
            return "the SMTP server's multi-line reply changed its code from \(expected) to \(got)"
        case .replyTooLong: return "the SMTP server's reply has too many lines"
        }
    }
}

/// Assembles replies from lines (without their CRLF): `250-first`, `250-second`, `250 last`.
public struct SMTPReplyParser: Sendable {
    public static let maximumLines = 100
    private var code: Int?
    private var lines: [String] = []

    public init() {}

    /// Whether a reply has begun and not yet ended.
    public var isInsideReply: Bool { code != nil }

    /// Feeds one line; returns the reply it completes, if any.
    public mutating func consume(line: String) throws -> SMTPReply? {
        let scalars = Array(line.utf8)
        guard scalars.count >= 3, scalars[0...2].allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
            (UInt8(ascii: "2")...UInt8(ascii: "5")).contains(scalars[0]),
            scalars.count == 3 || scalars[3] == UInt8(ascii: " ") || scalars[3] == UInt8(ascii: "-")
        else { throw SMTPProtocolError.malformedReply(line) }
        let lineCode = Int(String(decoding: scalars[0...2], as: UTF8.self))!
        if let code, code != lineCode { throw SMTPProtocolError.inconsistentCode(expected: code, got: lineCode) }
        code = lineCode
        lines.append(scalars.count > 4 ? String(decoding: scalars[4...], as: UTF8.self) : "")
        guard lines.count <= Self.maximumLines else { throw SMTPProtocolError.replyTooLong }
        let continues = scalars.count > 3 && scalars[3] == UInt8(ascii: "-")
        if continues { return nil }
        let reply = SMTPReply(code: lineCode, lines: lines)
        code = nil
        lines = []
        return reply
    }

    /// Parses whole replies from text with CRLF line endings (for tests and recorded exchanges).
    public static func parseAll(_ text: String) throws -> [SMTPReply] {
        var parser = SMTPReplyParser()
        var replies: [SMTPReply] = []
        var lines = text.components(separatedBy: "\r\n")
        if lines.last == "" { lines.removeLast() }
        for line in lines { if let reply = try parser.consume(line: line) { replies.append(reply) } }
        if parser.isInsideReply { throw SMTPProtocolError.malformedReply("(the reply ended inside a multi-line reply)") }
        return replies
    }
}

/// What a server offers in its EHLO reply (RFC 5321 §4.1.1.1; RFC 3207, 4954, 1870, 6152, 6531).
public struct SMTPCapabilities: Sendable, Equatable {
    public var startTLS = false
    /// Upper-cased mechanism names (`PLAIN`, `LOGIN`, …).
    public var authMechanisms: Set<String> = []
    /// The largest message the server takes (`SIZE n`); nil when not advertised or 0 (no limit).
    public var maximumSize: Int?
    public var eightBitMIME = false
    public var smtpUTF8 = false
    public var pipelining = false

    public init() {}

    /// From a 250 reply to EHLO: the first line is the server's name, each other line a keyword and parameters.
    public init(ehlo reply: SMTPReply) {
        for line in reply.lines.dropFirst() {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "=" }).map { $0.uppercased() }
            guard let keyword = words.first else { continue }
            switch keyword {
            case "STARTTLS": startTLS = true
            case "AUTH": authMechanisms.formUnion(words.dropFirst())
            case "SIZE":
                if words.count > 1, let size = Int(words[1]), size > 0 { maximumSize = size }
            case "8BITMIME": eightBitMIME = true
            case "SMTPUTF8": smtpUTF8 = true
            case "PIPELINING": pipelining = true
            default: continue
            }
        }
    }
}

/// SASL initial responses for AUTH (RFC 4954).
public enum SMTPAuthentication {
    /// `AUTH PLAIN` initial response (RFC 4616): base64 of NUL, user, NUL, password.
    public static func plain(username: String, password: String) -> String {
        Data([0] + Array(username.utf8) + [0] + Array(password.utf8)).base64EncodedString()
    }

    /// `AUTH LOGIN` answers: base64 of the user name, then of the password.
    public static func login(username: String, password: String) -> (username: String, password: String) {
        (Data(username.utf8).base64EncodedString(), Data(password.utf8).base64EncodedString())
    }
}

/// The commands Twofold sends, with their arguments checked so nothing can smuggle in a second command.
public enum SMTPCommand {
    /// `MAIL FROM:<address>` plus parameters such as `SIZE=1234` or `SMTPUTF8`.
    public static func mailFrom(_ address: String, parameters: [String] = []) throws -> String {
        guard MailAddress.isValid(address) else { throw MailFormatError.invalidAddress(field: "MAIL FROM") }
        return (["MAIL FROM:<\(address)>"] + parameters).joined(separator: " ")
    }

    /// `RCPT TO:<address>`.
    public static func rcptTo(_ address: String) throws -> String {
        guard MailAddress.isValid(address) else { throw MailFormatError.invalidAddress(field: "RCPT TO") }
        return "RCPT TO:<\(address)>"
    }

    /// `EHLO name`: a host name, or an address literal when the name is not usable.
    public static func ehlo(_ name: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")
        let valid = !name.isEmpty && name.count <= 253 && name.allSatisfy { allowed.contains($0) }
        return "EHLO " + (valid ? name : "localhost")
    }
}

/// The DATA section on the wire (RFC 5321 §4.5.2): every line ending in CRLF, a line that starts with `.` gets a
/// second one, and `.` alone on a line ends the data.
public enum SMTPDataEncoding {
    /// The message with line endings normalised to CRLF, dot-stuffed, followed by `CRLF.CRLF`.
    public static func encode(_ message: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + message.count / 50 + 5)
        var atLineStart = true
        var index = 0
        while index < message.count {
            let byte = message[index]
            if byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") {
                out += [13, 10]
                if byte == UInt8(ascii: "\r"), index + 1 < message.count, message[index + 1] == UInt8(ascii: "\n") { index += 1 }
                atLineStart = true
            } else {
                if atLineStart, byte == UInt8(ascii: ".") { out.append(UInt8(ascii: ".")) }
                out.append(byte)
                atLineStart = false
            }
            index += 1
        }
        if !atLineStart || out.isEmpty { out += [13, 10] }
        out += Array(".\r\n".utf8)
        return out
    }

    /// The message back from the wire: the terminating line removed and stuffed dots taken away.
    public static func decode(_ wire: [UInt8]) -> [UInt8]? {
        let text = String(decoding: wire, as: UTF8.self)
        guard text.hasSuffix("\r\n.\r\n") || text == ".\r\n" else { return nil }
        var lines = text.components(separatedBy: "\r\n")
        lines.removeLast(2) // "." and the empty string after its CRLF
        return Array(lines.map { $0.hasPrefix(".") ? String($0.dropFirst()) : $0 }.map { $0 + "\r\n" }.joined().utf8)
    }
}
