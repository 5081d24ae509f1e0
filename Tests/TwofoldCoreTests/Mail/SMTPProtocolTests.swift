import Foundation
import Testing

@testable import TwofoldCore

@Suite struct SMTPProtocolTests {
    /// A recorded EHLO reply of Postfix after STARTTLS.
    static let postfixEHLO =
        "250-mail.example-clinic.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
    /// Microsoft 365 before STARTTLS (smtp.office365.com:587).
    static let office365EHLO =
        "250-AM0PR02CA0001.outlook.office365.com Hello [203.0.113.7]\r\n250-SIZE 157286400\r\n250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n"

    @Test func parsesSingleAndMultiLineReplies() throws {
        let replies = try SMTPReplyParser.parseAll("220 mail.example.org ESMTP\r\n" + Self.postfixEHLO + "354\r\n")
        #expect(replies.count == 3)
        #expect(replies[0] == SMTPReply(code: 220, lines: ["mail.example.org ESMTP"]))
        #expect(replies[1].code == 250 && replies[1].lines.count == 11 && replies[1].lines.last == "CHUNKING")
        #expect(replies[2] == SMTPReply(code: 354, lines: [""]))
        #expect(replies[0].isPositive && !replies[0].isTransientFailure)
        #expect(SMTPReply(code: 421, lines: ["busy"]).isTransientFailure)
        #expect(SMTPReply(code: 535, lines: ["5.7.8 bad"]).isPermanentFailure)
        #expect(SMTPReply(code: 535, lines: ["5.7.8 bad", "more"]).description == "535 5.7.8 bad")
    }

    @Test func refusesMalformedLines() {
        for line in ["garbage", "25", "2500 text", "abc hello", "650 nope", "150 early", "250_weird", "", " 250 ok"] {
            var parser = SMTPReplyParser()
            #expect(throws: SMTPProtocolError.malformedReply(line)) { try parser.consume(line: line) }
        }
    }

    @Test func refusesAContinuationWithAnotherCode() throws {
        var parser = SMTPReplyParser()
        #expect(try parser.consume(line: "250-first") == nil)
        #expect(parser.isInsideReply)
        #expect(throws: SMTPProtocolError.inconsistentCode(expected: 250, got: 251)) { try parser.consume(line: "251 second") }
        #expect(throws: SMTPProtocolError.malformedReply("(the reply ended inside a multi-line reply)")) {
            try SMTPReplyParser.parseAll("250-a\r\n250-b\r\n")
        }
    }

    @Test func refusesEndlessReplies() throws {
        var parser = SMTPReplyParser()
        for _ in 1...SMTPReplyParser.maximumLines { _ = try parser.consume(line: "250-x") }
        #expect(throws: SMTPProtocolError.replyTooLong) { try parser.consume(line: "250-x") }
    }

    @Test func readsEHLOCapabilities() throws {
        let postfix = SMTPCapabilities(ehlo: try SMTPReplyParser.parseAll(Self.postfixEHLO)[0])
        #expect(!postfix.startTLS)
        #expect(postfix.authMechanisms == ["PLAIN", "LOGIN"])
        #expect(postfix.maximumSize == 10_240_000)
        #expect(postfix.eightBitMIME && postfix.smtpUTF8 && postfix.pipelining)
        let office = SMTPCapabilities(ehlo: try SMTPReplyParser.parseAll(Self.office365EHLO)[0])
        #expect(office.startTLS && office.authMechanisms.isEmpty && office.maximumSize == 157_286_400)
        // The old AUTH= form, lower case, SIZE without a limit, and the greeting line is never a keyword.
        let old = SMTPCapabilities(ehlo: SMTPReply(code: 250, lines: ["STARTTLS", "auth=login cram-md5", "size 0", "size"]))
        #expect(!old.startTLS)
        #expect(old.authMechanisms == ["LOGIN", "CRAM-MD5"])
        #expect(old.maximumSize == nil)
        #expect(SMTPCapabilities(ehlo: SMTPReply(code: 250, lines: ["x", "starttls"])).startTLS)
    }

    /// RFC 4616 and the common base64 of AUTH LOGIN.
    @Test func authenticationEncodings() {
        #expect(SMTPAuthentication.plain(username: "tim", password: "tanstaaftanstaaf") == "AHRpbQB0YW5zdGFhZnRhbnN0YWFm")
        #expect(
            SMTPAuthentication.plain(username: "jöhn", password: "pä ss")
                == Data([0] + Array("jöhn".utf8) + [0] + Array("pä ss".utf8)).base64EncodedString())
        let login = SMTPAuthentication.login(username: "user@example.org", password: "secret")
        #expect(login.username == "dXNlckBleGFtcGxlLm9yZw==")
        #expect(login.password == "c2VjcmV0")
    }

    @Test func buildsCommands() throws {
        #expect(try SMTPCommand.mailFrom("2fa@example.org", parameters: ["SIZE=100"]) == "MAIL FROM:<2fa@example.org> SIZE=100")
        #expect(try SMTPCommand.rcptTo("a@example.org") == "RCPT TO:<a@example.org>")
        #expect(SMTPCommand.ehlo("2fa.example-clinic.org") == "EHLO 2fa.example-clinic.org")
        #expect(SMTPCommand.ehlo("bad host\r\nQUIT") == "EHLO localhost")
    }

    @Test func dotStuffing() throws {
        let message = Array("Subject: x\r\n\r\n.\r\n..two\r\nmiddle . dot\r\n.end".utf8)
        let wire = SMTPDataEncoding.encode(message)
        #expect(String(decoding: wire, as: UTF8.self) == "Subject: x\r\n\r\n..\r\n...two\r\nmiddle . dot\r\n..end\r\n.\r\n")
        #expect(SMTPDataEncoding.decode(wire) == Array("Subject: x\r\n\r\n.\r\n..two\r\nmiddle . dot\r\n.end\r\n".utf8))
        // Bare LF and CR become CRLF, so a lone "\n.\n" cannot end the data early.
        #expect(String(decoding: SMTPDataEncoding.encode(Array("a\n.\nb\rc".utf8)), as: UTF8.self) == "a\r\n..\r\nb\r\nc\r\n.\r\n")
        #expect(String(decoding: SMTPDataEncoding.encode([]), as: UTF8.self) == "\r\n.\r\n")
        #expect(String(decoding: SMTPDataEncoding.encode(Array(".".utf8)), as: UTF8.self) == "..\r\n.\r\n")
        #expect(SMTPDataEncoding.decode(Array("no end".utf8)) == nil)
    }
}
