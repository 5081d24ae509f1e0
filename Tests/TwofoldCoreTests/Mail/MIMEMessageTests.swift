import Foundation
import Testing

@testable import TwofoldCore

/// A small reader of what the composer writes: headers unfolded, encoded-words decoded, parts split at the boundary
/// and quoted-printable decoded. Independent of the composer's code, so the round trip checks the format.
enum MailReader {
    struct Parsed {
        var headers: [(name: String, value: String)]
        var body: String
        func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
    }

    static func parse(_ text: String) -> Parsed {
        let split = text.components(separatedBy: "\r\n\r\n")
        let head = split[0], body = split.dropFirst().joined(separator: "\r\n\r\n")
        var headers: [(String, String)] = []
        for line in head.components(separatedBy: "\r\n") {
            if line.hasPrefix(" ") || line.hasPrefix("\t") {
                headers[headers.count - 1].1 += line
            } else {
                let colon = line.firstIndex(of: ":")!
                headers.append((String(line[..<colon]), String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
            }
        }
        return Parsed(headers: headers, body: body)
    }

    /// RFC 2047 decoding: adjacent encoded-words separated by whitespace join without the whitespace.
    static func decodeWords(_ value: String) -> String {
        let pattern = try! NSRegularExpression(pattern: #"=\?utf-8\?([BQ])\?([^?]*)\?=(\s+(?==\?))?"#, options: .caseInsensitive)
        var result = ""
        var last = value.startIndex
        for match in pattern.matches(in: value, range: NSRange(value.startIndex..., in: value)) {
            let range = Range(match.range, in: value)!
            result += value[last..<range.lowerBound]
            let kind = String(value[Range(match.range(at: 1), in: value)!]).uppercased()
            let payload = String(value[Range(match.range(at: 2), in: value)!])
            if kind == "B" {
                result += String(decoding: Data(base64Encoded: payload)!, as: UTF8.self)
            } else {
                result += String(decoding: qpDecode(payload.replacingOccurrences(of: "_", with: " ")), as: UTF8.self)
            }
            last = range.upperBound
        }
        return result + value[last...]
    }

    static func qpDecode(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "="), i + 2 < bytes.count,
                let value = UInt8(String(decoding: bytes[(i + 1)...(i + 2)], as: UTF8.self), radix: 16)
            {
                out.append(value)
                i += 3
                continue
            }
            out.append(bytes[i])
            i += 1
        }
        return out
    }

    /// Quoted-printable body lines (CRLF) to text with LF.
    static func quotedPrintableBody(_ text: String) -> String {
        var joined = ""
        for line in text.components(separatedBy: "\r\n") {
            if line.hasSuffix("=") { joined += line.dropLast() } else { joined += line + "\n" }
        }
        return String(decoding: qpDecode(joined), as: UTF8.self)
    }
}

@Suite struct MIMEMessageTests {
    static let date = Date(timeIntervalSince1970: 1_796_115_903) // 2026-12-01 09:05:03 UTC, a Tuesday

    func message(subject: String = "Reset your password", from: String = "Riverside 2FA <2fa@example-clinic.org>") throws -> MIMEMessage {
        MIMEMessage(
            from: try MailAddress(parsing: from), to: try MailAddress(parsing: "dr.smith@example.org", field: "To"), subject: subject,
            date: Self.date, messageID: "abc123.1796115903@example-clinic.org",
            text: "Hello Sam,\n\nOpen this link: https://2fa.example-clinic.org/reset?t=A=B\n.\nGrüße, Café ☕\n",
            html: "<p>Hello Sam,</p>\n<p><a href=\"https://2fa.example-clinic.org/reset?t=A=B\">Reset</a></p>\n",
            boundary: "=_fixedboundary")
    }

    @Test func composesTheExactHeadersAndParts() throws {
        let text = String(decoding: try message().rendered(), as: UTF8.self)
        #expect(
            text == """
                From: Riverside 2FA <2fa@example-clinic.org>\r
                To: dr.smith@example.org\r
                Subject: Reset your password\r
                Date: Tue, 01 Dec 2026 09:05:03 +0000\r
                Message-ID: <abc123.1796115903@example-clinic.org>\r
                MIME-Version: 1.0\r
                Auto-Submitted: auto-generated\r
                Content-Type: multipart/alternative;\r
                 boundary="=_fixedboundary"\r
                \r
                This is a message in MIME format: a plain text and an HTML version.\r
                \r
                --=_fixedboundary\r
                Content-Type: text/plain; charset=utf-8\r
                Content-Transfer-Encoding: quoted-printable\r
                \r
                Hello Sam,\r
                \r
                Open this link: https://2fa.example-clinic.org/reset?t=3DA=3DB\r
                .\r
                Gr=C3=BC=C3=9Fe, Caf=C3=A9 =E2=98=95\r
                \r
                --=_fixedboundary\r
                Content-Type: text/html; charset=utf-8\r
                Content-Transfer-Encoding: quoted-printable\r
                \r
                <p>Hello Sam,</p>\r
                <p><a href=3D"https://2fa.example-clinic.org/reset?t=3DA=3DB">Reset</a></p>\r
                \r
                --=_fixedboundary--\r

                """)
    }

    @Test func everyLineEndsInCRLFAndIsShort() throws {
        let long = String(repeating: "Ünïcödé wörds ", count: 20)
        var m = try message(subject: long)
        m.text = String(repeating: "x", count: 500) + "\n" + String(repeating: "é", count: 200)
        let bytes = try m.rendered()
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(bytes.allSatisfy { $0 < 0x80 }) // 7-bit on the wire
        #expect(!text.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
        #expect(!text.replacingOccurrences(of: "\r\n", with: "").contains("\r"))
        for line in text.components(separatedBy: "\r\n") { #expect(line.utf8.count <= 78, "\(line)") }
        let parsed = MailReader.parse(text)
        #expect(MailReader.decodeWords(parsed.header("Subject")!) == long)
        let plain = parsed.body.components(separatedBy: "--=_fixedboundary")[1].components(separatedBy: "\r\n\r\n").dropFirst().joined(
            separator: "\r\n\r\n")
        #expect(
            MailReader.quotedPrintableBody(String(plain.dropLast(2))).hasPrefix(
                String(repeating: "x", count: 500) + "\n" + String(repeating: "é", count: 200)))
    }

    @Test func roundTripsTheBodiesThroughAReader() throws {
        let m = try message()
        let parsed = MailReader.parse(String(decoding: try m.rendered(), as: UTF8.self))
        let parts = parsed.body.components(separatedBy: "\r\n--=_fixedboundary")
        #expect(parts.count == 4 && parts[3] == "--\r\n")
        let plain = parts[1].components(separatedBy: "\r\n\r\n")
        #expect(plain[0].contains("Content-Type: text/plain; charset=utf-8"))
        #expect(
            MailReader.quotedPrintableBody(plain.dropFirst().joined(separator: "\r\n\r\n")) == m.text + "\n"
                || MailReader.quotedPrintableBody(plain.dropFirst().joined(separator: "\r\n\r\n")) == m.text)
        let html = parts[2].components(separatedBy: "\r\n\r\n")
        #expect(html[0].contains("Content-Type: text/html; charset=utf-8"))
        #expect(MailReader.quotedPrintableBody(html.dropFirst().joined(separator: "\r\n\r\n")).hasPrefix(m.html))
    }

    @Test func encodesNonASCIISubjectsAndNames() throws {
        let m = try message(subject: "Neues Gerät für Ihr Konto", from: "Praxis Müller <2fa@example-clinic.org>")
        let parsed = MailReader.parse(String(decoding: try m.rendered(), as: UTF8.self))
        #expect(parsed.header("Subject") == "=?utf-8?B?TmV1ZXMgR2Vyw6R0IGbDvHIgSWhyIEtvbnRv?=")
        #expect(parsed.header("From") == "=?utf-8?B?UHJheGlzIE3DvGxsZXI=?= <2fa@example-clinic.org>")
        #expect(MailReader.decodeWords(parsed.header("Subject")!) == "Neues Gerät für Ihr Konto")
    }

    /// RFC 2047 §8 examples and UTF-8 boundaries: a word never splits a character.
    @Test func rfc2047Vectors() {
        #expect(MailReader.decodeWords("=?ISO-8859-1?Q?a?=") == "=?ISO-8859-1?Q?a?=") // other charsets are left alone by the reader
        #expect(MIMEEncoding.encodedWords("Café", firstLineUsed: 9) == ["=?utf-8?B?Q2Fmw6k=?="])
        #expect(MIMEEncoding.qEncodedWord("Café au lait") == "=?utf-8?Q?Caf=C3=A9_au_lait?=")
        #expect(MailReader.decodeWords("=?utf-8?Q?Caf=C3=A9_au_lait?=") == "Café au lait")
        #expect(MailReader.decodeWords("=?utf-8?B?YQ==?= =?utf-8?B?Yg==?=") == "ab") // whitespace between words vanishes
        let emoji = String(repeating: "👩‍⚕️", count: 30)
        let words = MIMEEncoding.encodedWords(emoji, firstLineUsed: 9)
        #expect(words.count > 1)
        for (index, word) in words.enumerated() {
            #expect(word.count <= 75)
            #expect((index == 0 ? 9 : 1) + word.count <= 78)
            let payload = word.dropFirst("=?utf-8?B?".count).dropLast(2)
            #expect(String(data: Data(base64Encoded: String(payload))!, encoding: .utf8) != nil) // each word is whole UTF-8
        }
        #expect(MailReader.decodeWords(words.joined(separator: "\r\n ").replacingOccurrences(of: "\r\n", with: "")) == emoji)
    }

    @Test func asciiSubjectsFoldAtSpaces() throws {
        let subject = (1...30).map { "word\($0)" }.joined(separator: " ")
        let lines = MIMEEncoding.encodedHeader("Subject", subject)
        #expect(lines.count > 1)
        #expect(lines.allSatisfy { $0.count <= 78 })
        #expect(lines.joined() == "Subject: " + subject)
        // Something that looks like an encoded word is encoded, so a reader does not decode it.
        #expect(MIMEEncoding.encodedHeader("Subject", "=?utf-8?B?YQ==?=") == ["Subject: =?utf-8?B?PT91dGYtOD9CP1lRPT0/PQ==?="])
    }

    @Test func refusesHeaderInjection() throws {
        #expect(throws: MailFormatError.headerInjection(field: "Subject")) {
            try message(subject: "Hi\r\nBcc: victim@example.org").rendered()
        }
        #expect(throws: MailFormatError.headerInjection(field: "Subject")) { try message(subject: "Hi\nX: y").rendered() }
        #expect(throws: MailFormatError.headerInjection(field: "From")) { try MailAddress(parsing: "A\r\nB <a@example.org>") }
        var m = try message()
        m.to.displayName = "Sam\rSmith"
        #expect(throws: MailFormatError.headerInjection(field: "To")) { try m.rendered() }
        m = try message()
        m.messageID = "x@y\r\nBcc: z"
        #expect(throws: MailFormatError.headerInjection(field: "Message-ID")) { try m.rendered() }
        m = try message()
        m.to.address = "a@b>, evil@example.org"
        #expect(throws: MailFormatError.invalidAddress(field: "To")) { try m.rendered() }
        #expect(throws: MailFormatError.invalidAddress(field: "RCPT TO")) { try SMTPCommand.rcptTo("x@y.org>\r\nRSET") }
        #expect(throws: MailFormatError.invalidAddress(field: "MAIL FROM")) { try SMTPCommand.mailFrom("no-at-sign") }
    }

    @Test func parsesAddresses() throws {
        #expect(
            try MailAddress(parsing: "\"Dr. Smith, MD\" <s@example.org>")
                == MailAddress(displayName: "Dr. Smith, MD", address: "s@example.org"))
        #expect(try MailAddress(parsing: "<s@example.org>") == MailAddress(address: "s@example.org"))
        #expect(MailAddress(displayName: "Dr. Smith, MD", address: "s@example.org").headerValue() == "\"Dr. Smith, MD\" <s@example.org>")
        #expect(MailAddress(displayName: "Riverside 2FA", address: "s@example.org").headerValue() == "Riverside 2FA <s@example.org>")
        #expect(!MailAddress.isValid("a b@example.org"))
        #expect(!MailAddress.isValid("a@"))
        #expect(MailAddress.isValid("first.last+tag@sub.example.org"))
    }

    @Test func formatsDatesPerRFC5322() {
        #expect(MIMEEncoding.rfc5322Date(Date(timeIntervalSince1970: 0)) == "Thu, 01 Jan 1970 00:00:00 +0000")
        #expect(MIMEEncoding.rfc5322Date(Date(timeIntervalSince1970: 951_782_400)) == "Tue, 29 Feb 2000 00:00:00 +0000")
        #expect(MIMEEncoding.rfc5322Date(Date(timeIntervalSince1970: 1_900_000_000.9)) == "Sun, 17 Mar 2030 17:46:40 +0000")
        #expect(MIMEEncoding.rfc5322Date(Date(timeIntervalSince1970: -1)) == "Wed, 31 Dec 1969 23:59:59 +0000")
    }

    @Test func quotedPrintableKeepsLinesShortAndEncodesTrailingSpace() {
        let lines = MIMEEncoding.quotedPrintableLines(String(repeating: "ab=", count: 60) + "\nend \n\ttab\t")
        #expect(lines.allSatisfy { $0.count <= 76 })
        #expect(lines.contains("end=20"))
        #expect(lines.last == "\ttab=09")
        #expect(
            MailReader.quotedPrintableBody(lines.joined(separator: "\r\n")) == String(repeating: "ab=", count: 60) + "\nend \n\ttab\t\n")
    }

    @Test func randomBoundariesDiffer() {
        let a = MIMEMessage.randomBoundary(), b = MIMEMessage.randomBoundary()
        #expect(a != b && a.hasPrefix("=_") && a.count == 34)
    }
}
