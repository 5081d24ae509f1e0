import Testing

@testable import TwofoldCore

@Suite("Base32 (RFC 4648)")
struct Base32Tests {
    /// RFC 4648 §10 test vectors (without padding on output).
    @Test(arguments: [
        ("", ""), ("f", "MY"), ("fo", "MZXQ"), ("foo", "MZXW6"), ("foob", "MZXW6YQ"), ("fooba", "MZXW6YTB"), ("foobar", "MZXW6YTBOI"),
    ])
    func rfc4648Section10(plain: String, encoded: String) throws {
        #expect(Base32.encode(Array(plain.utf8)) == encoded)
        #expect(try Base32.decode(encoded) == Array(plain.utf8))
    }

    @Test func decodingIsForgiving() throws {
        let expected = Array("foobar".utf8)
        #expect(try Base32.decode("mzxw6ytboi") == expected)
        #expect(try Base32.decode("MZXW 6YTB OI") == expected)
        #expect(try Base32.decode("MZXW-6YTB-OI") == expected)
        #expect(try Base32.decode("MZXW6YTBOI======") == expected)
    }

    @Test func badCharactersAreNamed() {
        do {
            _ = try Base32.decode("MZXW1YTB")
            Issue.record("expected an error")
        } catch let error as Base32Error {
            #expect(error.code == .invalidCharacter)
            #expect(error.reason.contains("'1'"))
            #expect(error.reason.contains("position 5"))
        } catch { Issue.record("unexpected \(error)") }
        #expect(throws: Base32Error.self) { try Base32.decode("MZ=XW") }
        #expect(throws: Base32Error.self) { try Base32.decode("MZXW6Y!B") }
    }

    @Test func impossibleLengthsAreRefused() {
        do {
            _ = try Base32.decode("MZX")
            Issue.record("expected an error")
        } catch let error as Base32Error {
            #expect(error.code == .invalidLength)
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func roundTripsRandomBytes() throws {
        for length in 0..<70 {
            let bytes = SecureRandom.bytes(length)
            #expect(try Base32.decode(Base32.encode(bytes)) == bytes)
        }
    }
}
