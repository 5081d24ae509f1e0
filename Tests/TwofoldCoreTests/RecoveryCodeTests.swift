import Foundation
import Testing

@testable import TwofoldCore

@Suite("Recovery codes")
struct RecoveryCodeTests {
    @Test func tenDistinctReadableCodesOfAtLeastFiftyBits() {
        let codes = RecoveryCode.generateSet()
        #expect(codes.count == 10)
        #expect(Set(codes.map(\.value)).count == 10)
        for code in codes {
            #expect(code.value.range(of: #"^[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}$"#, options: .regularExpression) != nil)
            #expect(!code.value.contains { "1ilo".contains($0) })
        }
        let bits = Double(RecoveryCode.length) * log2(Double(RecoveryCode.symbols.count))
        #expect(bits >= 50)
        #expect(RecoveryCode.symbols.count == 32)
        #expect("\(codes[0])" == "RecoveryCode(redacted)")
    }

    @Test func hashesAreSaltedAndMatchNormalisedInput() throws {
        let code = RecoveryCode.generateSet(count: 1)[0]
        let first = code.hashed()
        let second = code.hashed()
        #expect(first.salt != second.salt)
        #expect(first.digest != second.digest)
        #expect(!first.encoded.contains(code.value))
        let stored = try #require(HashedRecoveryCode(encoded: first.encoded))
        #expect(stored.matches(code.value))
        #expect(stored.matches(code.value.uppercased()))
        #expect(stored.matches(code.value.replacingOccurrences(of: "-", with: " ")))
        #expect(!stored.matches(RecoveryCode.generateSet(count: 1)[0].value))
        #expect(!stored.matches(""))
    }

    @Test func normalisationReadsTheLetterOAsZero() {
        #expect(RecoveryCode.normalize("ABCD-EFGH-JK0M") == "abcdefghjk0m")
        #expect(RecoveryCode.normalize("abcd-efgh-jkom") == "abcdefghjk0m")
        #expect(RecoveryCode.normalize("abcd-efgh-jk1m") == nil)
        #expect(RecoveryCode.normalize("abcd-efgh") == nil)
    }

    @Test func malformedStoredFormsAreRejected() {
        #expect(HashedRecoveryCode(encoded: "") == nil)
        #expect(HashedRecoveryCode(encoded: "v2$abc$def") == nil)
        #expect(HashedRecoveryCode(encoded: "v1$!!$??") == nil)
    }
}

@Suite("Sealing secrets at rest")
struct SealingTests {
    let key = SealingKey.generate()
    let plaintext = Array("a TOTP key of twenty".utf8)

    @Test func roundTripsAndCarriesTheKeyID() throws {
        let sealer = SecretSealer(current: key)
        let blob = try sealer.seal(plaintext, context: [1, 2, 3])
        #expect(blob[0] == 1)
        #expect(Array(blob[1..<5]) == key.id)
        #expect(blob.count == 1 + 4 + 12 + plaintext.count + 16)
        #expect(try sealer.open(blob, context: [1, 2, 3]) == plaintext)
        #expect(try sealer.seal(plaintext) != (try sealer.seal(plaintext)))
    }

    @Test func tamperingWrongContextAndUnknownKeysAreDetected() throws {
        let sealer = SecretSealer(current: key)
        let blob = try sealer.seal(plaintext, context: [7])
        for index in [5, 17, blob.count - 1] {
            var tampered = blob
            tampered[index] ^= 0x01
            #expect(Self.code { try sealer.open(tampered, context: [7]) } == .authenticationFailed)
        }
        #expect(Self.code { try sealer.open(blob, context: [8]) } == .authenticationFailed)
        #expect(Self.code { try SecretSealer(current: .generate()).open(blob, context: [7]) } == .unknownKey)
        #expect(Self.code { try sealer.open([1, 2, 3], context: [7]) } == .malformed)
    }

    @Test func previousKeysStillOpenAndAskForResealing() throws {
        let old = SealingKey.generate()
        let blob = try SecretSealer(current: old).seal(plaintext)
        let rotated = SecretSealer(current: key, previous: [old])
        #expect(try rotated.open(blob) == plaintext)
        #expect(rotated.needsResealing(blob))
        #expect(!rotated.needsResealing(try rotated.seal(plaintext)))
    }

    @Test func keysMustBeThirtyTwoBytesOfBase64() throws {
        #expect(Self.code { _ = try SealingKey(rawKey: [0, 1, 2]) } == .invalidKeyLength)
        #expect(Self.code { _ = try SealingKey(base64: "not base64!") } == .invalidKeyEncoding)
        let copy = try SealingKey(base64: key.base64)
        #expect(copy.id == key.id)
    }

    static func code(_ body: () throws -> Any) -> SealingError.Code? {
        do { _ = try body() } catch let error as SealingError { return error.code } catch { return nil }
        return nil
    }
}

@Suite("Constant-time comparison and randomness")
struct PrimitivesTests {
    @Test func constantTimeEquality() {
        #expect(ConstantTime.equals("123456", "123456"))
        #expect(!ConstantTime.equals("123456", "123457"))
        #expect(!ConstantTime.equals("123456", "1234567"))
        #expect(!ConstantTime.equals("", "0"))
        #expect(ConstantTime.equals([UInt8](), [UInt8]()))
    }

    @Test func randomDigitsAreDigitsAndSpreadOut() {
        var counts = [Character: Int]()
        for _ in 0..<2000 {
            let code = SecureRandom.digits(6)
            #expect(code.count == 6 && code.allSatisfy(\.isNumber))
            for digit in code { counts[digit, default: 0] += 1 }
        }
        #expect(counts.count == 10)
        #expect(counts.values.allSatisfy { $0 > 900 && $0 < 1500 })
    }

    @Test func tokensAreURLSafeAndUnique() {
        let token = SecureRandom.token()
        #expect(token.count == 43)
        #expect(token.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
        #expect(SecureRandom.token() != token)
    }
}
