import Testing

@testable import TwofoldCore

@Suite("otpauth key URIs")
struct OTPAuthURITests {
    let secret = OTPSecret(bytes: Array("12345678901234567890".utf8))

    @Test func buildsEveryParameter() throws {
        let uri = OTPAuthURI(
            issuer: "Riverside Family Medicine", account: "dr.smith@example.org", secret: secret,
            parameters: try OTPParameters(algorithm: .sha256, digits: 8, period: 60)
        ).uri
        #expect(
            uri
                == "otpauth://totp/Riverside%20Family%20Medicine:dr.smith%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Riverside%20Family%20Medicine&algorithm=SHA256&digits=8&period=60"
        )
    }

    @Test func encodesColonsAndNonASCIIAndRoundTrips() throws {
        let original = OTPAuthURI(issuer: "Clínica Müller & Söhne: Nord", account: "a:b c", secret: secret)
        let uri: String = original.uri
        #expect(uri.hasPrefix("otpauth://totp/Cl%C3%ADnica%20M%C3%BCller%20%26%20S%C3%B6hne%3A%20Nord:a%3Ab%20c?"))
        #expect(uri.unicodeScalars.allSatisfy { $0.isASCII })
        let parsed = try OTPAuthURI(parsing: uri)
        #expect(parsed.issuer == original.issuer)
        #expect(parsed.account == original.account)
        #expect(parsed.secret.bytes == secret.bytes)
        #expect(parsed.parameters == .default)
    }

    @Test func acceptsLowerCaseAndMissingOptionalParameters() throws {
        let parsed = try OTPAuthURI(parsing: "otpauth://totp/alice?secret=gezdgnbvgy3tqojqgezdgnbvgy3tqojq")
        #expect(parsed.issuer == nil)
        #expect(parsed.account == "alice")
        #expect(parsed.parameters == .default)
    }

    @Test(arguments: [
        ("https://example.org/totp/x?secret=GEZDGNBVGY3TQOJQ", OTPAuthURIError.Code.notOTPAuth),
        ("otpauth://hotp/x?secret=GEZDGNBVGY3TQOJQ&counter=1", .unsupportedType),
        ("otpauth://totp/?secret=GEZDGNBVGY3TQOJQ", .missingLabel),
        ("otpauth://totp/x%ZZ?secret=GEZDGNBVGY3TQOJQ", .badEncoding),
        ("otpauth://totp/x?issuer=A", .missingSecret),
        ("otpauth://totp/x?secret=GEZD1", .invalidSecret),
        ("otpauth://totp/x?secret=GEZDGN", .invalidSecret),
        ("otpauth://totp/x?secret=GEZDGNBVGY3TQOJQ&algorithm=MD5", .invalidAlgorithm),
        ("otpauth://totp/x?secret=GEZDGNBVGY3TQOJQ&digits=9", .invalidDigits),
        ("otpauth://totp/x?secret=GEZDGNBVGY3TQOJQ&period=0", .invalidPeriod),
        ("otpauth://totp/A:x?secret=GEZDGNBVGY3TQOJQ&issuer=B", .issuerMismatch),
    ])
    func malformedURIsAreRefusedWithAReason(uri: String, code: OTPAuthURIError.Code) {
        do {
            _ = try OTPAuthURI(parsing: uri)
            Issue.record("expected \(code) for \(uri)")
        } catch let error as OTPAuthURIError {
            #expect(error.code == code)
            #expect(!error.reason.isEmpty)
        } catch { Issue.record("unexpected \(error)") }
    }
}
