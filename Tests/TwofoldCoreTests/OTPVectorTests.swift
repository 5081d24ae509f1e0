import Foundation
import Testing

@testable import TwofoldCore

@Suite("HOTP and TOTP test vectors")
struct OTPVectorTests {
    static let sha1Seed = Array("12345678901234567890".utf8)
    static let sha256Seed = Array("12345678901234567890123456789012".utf8)
    static let sha512Seed = Array("1234567890123456789012345678901234567890123456789012345678901234".utf8)

    /// RFC 4226 Appendix D: HOTP values for counters 0–9 with the 20-byte ASCII seed.
    @Test(
        arguments: Array(zip(0..<10, ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"])))
    func rfc4226AppendixD(counter: Int, expected: String) {
        #expect(HOTP(secret: OTPSecret(bytes: Self.sha1Seed)).code(counter: UInt64(counter)) == expected)
    }

    /// RFC 4226 Appendix D: the truncated 31-bit values behind those codes.
    @Test func rfc4226TruncatedValues() {
        let hotp = HOTP(secret: OTPSecret(bytes: Self.sha1Seed))
        let expected: [UInt32] = [
            1284755224, 1094287082, 137359152, 1726969429, 1640338314, 868254676, 1918287922, 82162583, 673399871, 645520489,
        ]
        for (counter, value) in expected.enumerated() {
            #expect(HOTP.truncate(hotp.mac(counter: UInt64(counter))) == value)
        }
    }

    struct Vector: Sendable, CustomStringConvertible {
        var time: TimeInterval
        var algorithm: OTPAlgorithm
        var code: String
        var description: String { "\(Int(time)) \(algorithm.rawValue) \(code)" }
    }

    /// RFC 6238 Appendix B: all 18 vectors (8 digits, 30-second steps).
    static let rfc6238: [Vector] = [
        (59, "94287082", "46119246", "90693936"), (1111111109, "07081804", "68084774", "25091201"),
        (1111111111, "14050471", "67062674", "99943326"), (1234567890, "89005924", "91819424", "93441116"),
        (2000000000, "69279037", "90698825", "38618901"), (20000000000, "65353130", "77737706", "47863826"),
    ].flatMap { time, sha1, sha256, sha512 in
        [
            Vector(time: time, algorithm: .sha1, code: sha1), Vector(time: time, algorithm: .sha256, code: sha256),
            Vector(time: time, algorithm: .sha512, code: sha512),
        ]
    }

    @Test(arguments: rfc6238)
    func rfc6238AppendixB(vector: Vector) throws {
        let seed =
            switch vector.algorithm {
            case .sha1: Self.sha1Seed
            case .sha256: Self.sha256Seed
            case .sha512: Self.sha512Seed
            }
        let totp = TOTP(secret: OTPSecret(bytes: seed), parameters: try OTPParameters(algorithm: vector.algorithm, digits: 8))
        let date = Date(timeIntervalSince1970: vector.time)
        #expect(totp.code(at: date) == vector.code)
        #expect(totp.verify(vector.code, at: date) == totp.timeStep(at: date))
    }
}

@Suite("TOTP verification")
struct TOTPVerificationTests {
    let secret = OTPSecret(bytes: Array("12345678901234567890".utf8))
    let now = Date(timeIntervalSince1970: 1_700_000_015)

    @Test func acceptsOneStepEitherWayAndReturnsTheStep() {
        let totp = TOTP(secret: secret)
        let step = totp.timeStep(at: now)
        #expect(totp.verify(totp.code(forStep: step - 1), at: now) == step - 1)
        #expect(totp.verify(totp.code(forStep: step), at: now) == step)
        #expect(totp.verify(totp.code(forStep: step + 1), at: now) == step + 1)
        #expect(totp.verify(totp.code(forStep: step - 2), at: now) == nil)
        #expect(totp.verify(totp.code(forStep: step + 2), at: now) == nil)
        #expect(totp.verify(totp.code(forStep: step - 2), at: now, window: 2) == step - 2)
    }

    @Test func rejectsMalformedCodes() {
        let totp = TOTP(secret: secret)
        let code = totp.code(at: now)
        #expect(totp.verify(String(code.dropLast()), at: now) == nil)
        #expect(totp.verify(code + "0", at: now) == nil)
        #expect(totp.verify("12a456", at: now) == nil)
        #expect(totp.verify("", at: now) == nil)
        #expect(totp.verify("１２３４５６", at: now) == nil)
    }

    @Test(arguments: [6, 7, 8])
    func digitCounts(digits: Int) throws {
        let totp = TOTP(secret: secret, parameters: try OTPParameters(digits: digits))
        #expect(totp.code(at: now).count == digits)
        #expect(totp.verify(totp.code(at: now), at: now) != nil)
    }

    @Test func sixtySecondPeriod() throws {
        let totp = TOTP(secret: secret, parameters: try OTPParameters(period: 60))
        #expect(totp.timeStep(at: now) == 1_700_000_015 / 60)
        #expect(totp.secondsRemaining(at: now) == 60 - (1_700_000_015 % 60))
    }

    @Test func invalidSettingsAreRefused() {
        #expect(throws: OTPError.self) { try OTPParameters(digits: 5) }
        #expect(throws: OTPError.self) { try OTPParameters(digits: 9) }
        #expect(throws: OTPError.self) { try OTPParameters(period: 0) }
        do {
            _ = try OTPParameters(digits: 10)
            Issue.record("expected an error")
        } catch let error as OTPError {
            #expect(error.code == .invalidDigits)
        } catch { Issue.record("unexpected \(error)") }
    }

    @Test func generatedSecretsHaveTheRecommendedLength() {
        #expect(OTPSecret.generate(for: .sha1).bytes.count == 20)
        #expect(OTPSecret.generate(for: .sha256).bytes.count == 32)
        #expect(OTPSecret.generate(for: .sha512).bytes.count == 64)
        #expect(OTPSecret.generate().bytes != OTPSecret.generate().bytes)
        #expect("\(OTPSecret.generate())" == "OTPSecret(redacted)")
    }
}
