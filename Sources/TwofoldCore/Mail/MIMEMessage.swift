import Foundation

/// Why a message could not be composed. Every header value is checked, so text from a form (a name, an address)
/// can never add a header or end the header block.
public enum MailFormatError: Error, Equatable, CustomStringConvertible {
    /// A header value holds CR, LF or NUL.
    case headerInjection(field: String)
    /// Not an address Twofold sends to or from (`local@domain`, no spaces, brackets or control characters).
    case invalidAddress(field: String)
    /// The boundary is not one MIMEMessage makes (1–70 characters of the RFC 2046 set, not ending in a space).
    case invalidBoundary

    public var description: String {
        switch self {
        case .headerInjection(let field): return "the \(field) header would contain a line break"
        case .invalidAddress(let field): return "the \(field) address is not a valid email address"
        case .invalidBoundary: return "the MIME boundary is not valid"
        }
    }
}

/// A mailbox: an address with an optional display name, as in `Riverside 2FA <2fa@example-clinic.org>`.
public struct MailAddress: Sendable, Equatable {
    public var displayName: String?
    public var address: String

    public init(displayName: String? = nil, address: String) {
        self.displayName = displayName
        self.address = address
    }

    /// `Name <address>`, `"Name" <address>`, `<address>` or a bare address.
    public init(parsing text: String, field: String = "From") throws {
        if MIMEEncoding.containsLineBreak(text) { throw MailFormatError.headerInjection(field: field) }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.hasSuffix(">"), let open = trimmed.lastIndex(of: "<") {
            address = String(trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)])
            var name = trimmed[..<open].trimmingCharacters(in: .whitespaces)
            if name.count >= 2, name.hasPrefix("\""), name.hasSuffix("\"") {
                name = String(name.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"").replacingOccurrences(
                    of: "\\\\", with: "\\")
            }
            displayName = name.isEmpty ? nil : name
        } else {
            address = trimmed
            displayName = nil
        }
        guard Self.isValid(address) else { throw MailFormatError.invalidAddress(field: field) }
    }

    /// One `@`, a non-empty local part and domain, no whitespace, control characters or `<>()[],;:"\`.
    public static func isValid(_ address: String) -> Bool {
        let forbidden = Set("<>()[],;:\"\\")
        guard address.utf8.count <= 254, !address.contains(where: { $0.isWhitespace || forbidden.contains($0) }),
            !address.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F })
        else { return false }
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && !parts[1].isEmpty && parts[0].utf8.count <= 64
            && !parts[1].hasPrefix(".") && !parts[1].hasSuffix(".")
    }

    /// The header form: the display name encoded (RFC 2047) or quoted as needed, then `<address>`.
    func headerValue() -> String {
        guard let name = displayName, !name.isEmpty else { return address }
        return "\(MIMEEncoding.phrase(name)) <\(address)>"
    }
}

/// An RFC 5322 message with a text and an HTML alternative (RFC 2046 multipart/alternative), both UTF-8 in
/// quoted-printable, so the whole message is 7-bit ASCII with CRLF line endings and fits any SMTP server.
public struct MIMEMessage: Sendable {
    public var from: MailAddress
    public var to: MailAddress
    public var subject: String
    public var date: Date
    /// Without angle brackets, e.g. `4f1c…@example-clinic.org`.
    public var messageID: String
    public var text: String
    public var html: String
    /// Separates the parts; ``randomBoundary()`` by default. It starts with `=_`, which quoted-printable text can
    /// never contain (`=` is always followed by two hex digits or a line break), so it cannot occur in a part.
    public var boundary: String

    public init(
        from: MailAddress, to: MailAddress, subject: String, date: Date, messageID: String, text: String, html: String,
        boundary: String = MIMEMessage.randomBoundary()
    ) {
        self.from = from
        self.to = to
        self.subject = subject
        self.date = date
        self.messageID = messageID
        self.text = text
        self.html = html
        self.boundary = boundary
    }

    /// `=_` and 32 random hex digits.
    public static func randomBoundary() -> String {
        "=_" + SecureRandom.bytes(16).map { String(format: "%02x", $0) }.joined()
    }

    /// The message as sent in DATA (before dot-stuffing): headers, a blank line and the body, every line ending in CRLF.
    public func rendered() throws -> [UInt8] {
        for (field, value) in [
            ("From", from.address), ("From", from.displayName ?? ""), ("To", to.address), ("To", to.displayName ?? ""),
            ("Subject", subject), ("Message-ID", messageID),
        ] where MIMEEncoding.containsLineBreak(value) {
            throw MailFormatError.headerInjection(field: field)
        }
        guard MailAddress.isValid(from.address) else { throw MailFormatError.invalidAddress(field: "From") }
        guard MailAddress.isValid(to.address) else { throw MailFormatError.invalidAddress(field: "To") }
        guard MailAddress.isValid(messageID) else { throw MailFormatError.invalidAddress(field: "Message-ID") }
        let boundaryCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'()+_,-./:=?")
        guard (1...70).contains(boundary.count), boundary.allSatisfy({ boundaryCharacters.contains($0) }) else {
            throw MailFormatError.invalidBoundary
        }

        var lines: [String] = []
        lines += MIMEEncoding.foldedAddressHeader("From", from.headerValue())
        lines += MIMEEncoding.foldedAddressHeader("To", to.headerValue())
        lines += MIMEEncoding.encodedHeader("Subject", subject)
        lines.append("Date: " + MIMEEncoding.rfc5322Date(date))
        lines.append("Message-ID: <\(messageID)>")
        lines.append("MIME-Version: 1.0")
        lines.append("Auto-Submitted: auto-generated")
        lines.append("Content-Type: multipart/alternative;")
        lines.append(" boundary=\"\(boundary)\"")
        lines.append("")
        lines.append("This is a message in MIME format: a plain text and an HTML version.")
        for (type, body) in [("text/plain", text), ("text/html", html)] {
            lines.append("")
            lines.append("--\(boundary)")
            lines.append("Content-Type: \(type); charset=utf-8")
            lines.append("Content-Transfer-Encoding: quoted-printable")
            lines.append("")
            lines += MIMEEncoding.quotedPrintableLines(body)
        }
        lines.append("")
        lines.append("--\(boundary)--")
        return Array((lines.joined(separator: "\r\n") + "\r\n").utf8)
    }
}

/// The encodings of RFC 2045 (quoted-printable), RFC 2047 (encoded-words) and the RFC 5322 date.
public enum MIMEEncoding {
    /// Lines of a header are kept to this many characters where possible (RFC 5322 §2.1.1 "SHOULD").
    public static let preferredLineLength = 78
    /// No line is ever longer (RFC 5322 "MUST").
    public static let maximumLineLength = 998

    /// CR, LF or NUL anywhere, also inside a CRLF grapheme (which `Character` comparison would miss).
    public static func containsLineBreak(_ text: String) -> Bool {
        text.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" }
    }

    /// A header whose value is free text (Subject): plain ASCII is folded at spaces; anything else becomes
    /// UTF-8 base64 encoded-words (RFC 2047 "B"), each at most 75 characters, split only between characters.
    /// Returns the header's lines (the first starts with `Name: `, the rest with a space), without CRLF.
    public static func encodedHeader(_ name: String, _ value: String) -> [String] {
        let needsEncoding =
            value.unicodeScalars.contains { $0.value < 0x20 || $0.value > 0x7E } || value.contains("=?")
            || value.hasPrefix(" ") || value.hasSuffix(" ") || value.contains("  ")
        if !needsEncoding {
            let folded = foldAtSpaces(name + ": " + value)
            if folded.allSatisfy({ $0.utf8.count <= maximumLineLength }) { return folded }
        }
        let words = encodedWords(value, firstLineUsed: name.utf8.count + 2)
        var lines = [name + ": " + (words.first ?? "")]
        lines += words.dropFirst().map { " " + $0 }
        return lines
    }

    /// `=?utf-8?B?…?=` words for `text`: the first fits after `firstLineUsed` characters on a 78-character line,
    /// the others after a folding space. An empty text gives one empty word list entry ("").
    public static func encodedWords(_ text: String, firstLineUsed: Int) -> [String] {
        if text.isEmpty { return [""] }
        let overhead = "=?utf-8?B??=".utf8.count
        var words: [String] = []
        var chunk: [UInt8] = []
        func capacity() -> Int {
            let room = words.isEmpty ? preferredLineLength - firstLineUsed : preferredLineLength - 1
            let encoded = min(75, max(room, 16 + overhead)) - overhead // at least 4 bytes per word, even after a long name
            return encoded / 4 * 3
        }
        for character in text {
            let bytes = Array(String(character).utf8)
            if !chunk.isEmpty, chunk.count + bytes.count > capacity() {
                words.append("=?utf-8?B?" + Data(chunk).base64EncodedString() + "?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty { words.append("=?utf-8?B?" + Data(chunk).base64EncodedString() + "?=") }
        return words
    }

    /// RFC 2047 "Q" encoding of one word (for readers that prefer it; the composer uses "B").
    public static func qEncodedWord(_ text: String) -> String {
        var out = "=?utf-8?Q?"
        for byte in text.utf8 {
            switch byte {
            case 0x20: out += "_"
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "!"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "/"):
                out.append(Character(Unicode.Scalar(byte)))
            default: out += String(format: "=%02X", byte)
            }
        }
        return out + "?="
    }

    /// A display name: as it is when it is plain atoms, quoted when it has specials, encoded when it is not ASCII.
    static func phrase(_ name: String) -> String {
        if name.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value > 0x7E }) || name.contains("=?") {
            return encodedWords(name, firstLineUsed: 6).joined(separator: " ")
        }
        let atext = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-/=?^_`{|}~ ")
        if name.allSatisfy({ atext.contains($0) }), !name.hasPrefix(" "), !name.hasSuffix(" ") { return name }
        return "\"" + name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// An address header, folded at the spaces between encoded words.
    static func foldedAddressHeader(_ name: String, _ value: String) -> [String] {
        foldAtSpaces(name + ": " + value)
    }

    /// Folds a header line at spaces so lines stay within 78 characters where a space allows it.
    static func foldAtSpaces(_ line: String) -> [String] {
        var lines: [String] = []
        var current = ""
        let parts = line.split(separator: " ", omittingEmptySubsequences: false)
        for (index, part) in parts.enumerated() {
            if index == 0 {
                current = String(part)
                continue
            }
            if current.utf8.count + 1 + part.utf8.count > preferredLineLength, !current.trimmingCharacters(in: .whitespaces).isEmpty,
                !(lines.isEmpty && current.hasSuffix(":") && !current.contains(" "))
            {
                lines.append(current)
                current = " " + part
            } else {
                current += " " + part
            }
        }
        lines.append(current)
        return lines
    }

    /// `Tue, 01 Dec 2026 09:05:03 +0000` (RFC 5322 §3.3), in UTC.
    public static func rfc5322Date(_ date: Date) -> String {
        let seconds = Int64((date.timeIntervalSince1970).rounded(.down))
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        let weekday = Int(((days % 7) + 11) % 7) // 1970-01-01 was a Thursday
        let weekdays = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        return String(
            format: "%@, %02d %@ %04d %02d:%02d:%02d +0000", weekdays[weekday], Int(day), months[Int(month) - 1], Int(year),
            Int(secondOfDay / 3600), Int(secondOfDay / 60 % 60), Int(secondOfDay % 60))
    }

    /// Quoted-printable (RFC 2045 §6.7) of UTF-8 text: LF, CRLF or CR end a line; encoded lines are at most
    /// 76 characters, with soft line breaks (`=`) where a line is longer.
    public static func quotedPrintableLines(_ text: String) -> [String] {
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        var source = normalized.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if source.count > 1, source.last == "" { source.removeLast() }
        var lines: [String] = []
        for line in source {
            let bytes = Array(line.utf8)
            var current = ""
            for (index, byte) in bytes.enumerated() {
                let isLast = index == bytes.count - 1
                let token: String
                switch byte {
                case 0x20, 0x09: token = isLast ? String(format: "=%02X", byte) : String(Character(Unicode.Scalar(byte)))
                case 0x3D: token = "=3D"
                case 33...126: token = String(Character(Unicode.Scalar(byte)))
                default: token = String(format: "=%02X", byte)
                }
                // Room for a soft break "=" unless this token ends the line.
                let limit = isLast ? 76 : 75
                if current.utf8.count + token.utf8.count > limit {
                    lines.append(current + "=")
                    current = ""
                }
                current += token
            }
            lines.append(current)
        }
        return lines
    }
}
