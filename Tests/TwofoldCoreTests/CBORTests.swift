import Testing

@testable import TwofoldCore

@Suite("CBOR decoding for WebAuthn")
struct CBORTests {
    static func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    /// Examples from RFC 8949 Appendix A that WebAuthn data can contain.
    @Test(arguments: [
        ("00", CBORValue.unsigned(0)), ("17", .unsigned(23)), ("1818", .unsigned(24)), ("1903e8", .unsigned(1000)),
        ("1a000f4240", .unsigned(1_000_000)), ("1bffffffffffffffff", .unsigned(UInt64.max)),
        ("20", .negative(0)), ("3863", .negative(99)), ("3903e7", .negative(999)),
        ("40", .bytes([])), ("4401020304", .bytes([1, 2, 3, 4])), ("60", .text("")), ("6161", .text("a")),
        ("6449455446", .text("IETF")), ("62c3bc", .text("ü")), ("f4", .bool(false)), ("f5", .bool(true)), ("f6", .null), ("f7", .undefined),
        ("80", .array([])), ("83010203", .array([.unsigned(1), .unsigned(2), .unsigned(3)])),
        ("8301820203820405", .array([.unsigned(1), .array([.unsigned(2), .unsigned(3)]), .array([.unsigned(4), .unsigned(5)])])),
        ("a201020304", .map([(.unsigned(1), .unsigned(2)), (.unsigned(3), .unsigned(4))])),
        ("a26161016162820203", .map([(.text("a"), .unsigned(1)), (.text("b"), .array([.unsigned(2), .unsigned(3)]))])),
    ])
    func rfc8949Examples(encoded: String, expected: CBORValue) throws {
        #expect(try CBORDecoder().decode(Self.hex(encoded)) == expected)
    }

    @Test func coseKeyLookupsAndIntegers() throws {
        // {1: 2, 3: -7, -1: 1, -2: h'01', -3: h'02'} — the shape of an EC2 P-256 COSE key
        let key = try CBORDecoder().decode(Self.hex("a5010203262001214101224102"))
        #expect(key[1]?.integer == 2)
        #expect(key[3]?.integer == -7)
        #expect(key[-1]?.integer == 1)
        #expect(key[-2] == .bytes([1]))
        #expect(key[-3] == .bytes([2]))
        #expect(key["fmt"] == nil)
    }

    @Test func prefixDecodingReportsTheLengthUsed() throws {
        let (value, length) = try CBORDecoder().decodePrefix(Self.hex("a10102") + [0xaa, 0xbb])
        #expect(value == .map([(.unsigned(1), .unsigned(2))]))
        #expect(length == 3)
        #expect(throws: CBORError.trailingBytes(2)) { try CBORDecoder().decode(Self.hex("a10102") + [0xaa, 0xbb]) }
    }

    @Test(arguments: [
        ("", CBORError.truncated), ("18", .truncated), ("4401", .truncated),
        ("83 0102".replacingOccurrences(of: " ", with: ""), .truncated),
        ("5f", .unsupported("indefinite lengths")), ("9f", .unsupported("indefinite lengths")),
        ("f93c00", .unsupported("floating-point numbers")), ("c11a514b67b0", .unsupported("tags")),
        ("62c328", .invalidUTF8), ("a201020103", .duplicateKey), ("1c", .unsupported("reserved additional information 28")),
        ("5bffffffffffffffff", .tooLong(Int.max)), ("9a00100000", .tooManyItems(1_048_576)),
    ])
    func malformedInputIsRefusedWithAReason(encoded: String, expected: CBORError) {
        #expect(throws: expected) { try CBORDecoder().decode(Self.hex(encoded)) }
    }

    @Test func depthIsLimited() {
        let deep = [UInt8](repeating: 0x81, count: 40) + [0x00]
        #expect(throws: CBORError.tooDeep) { try CBORDecoder().decode(deep) }
        let ok = [UInt8](repeating: 0x81, count: 10) + [0x00]
        #expect((try? CBORDecoder().decode(ok)) != nil)
    }

    /// Thousands of random and mutated inputs: every one decodes or is refused with a CBORError, never a crash.
    @Test func randomAndMutatedInputsNeverCrash() {
        var generator = SystemRandomNumberGenerator()
        let seeds: [[UInt8]] = [
            Self.hex("a26161016162820203"), Self.hex("8301820203820405"), Self.hex("a5010203262001214101224102"),
            Self.hex("a363666d74646e6f6e656761747453746d74a068617574684461746158250102"),
        ]
        var decoded = 0
        var refused = 0
        for round in 0..<20_000 {
            var input: [UInt8]
            if round % 2 == 0 {
                input = (0..<Int.random(in: 0...48, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            } else {
                input = seeds[round % seeds.count]
                for _ in 0..<Int.random(in: 1...4, using: &generator) where !input.isEmpty {
                    switch Int.random(in: 0...2, using: &generator) {
                    case 0: input[Int.random(in: 0..<input.count, using: &generator)] = UInt8.random(in: 0...255, using: &generator)
                    case 1: input.removeLast(Int.random(in: 0...min(3, input.count), using: &generator))
                    default:
                        input.insert(UInt8.random(in: 0...255, using: &generator), at: Int.random(in: 0...input.count, using: &generator))
                    }
                }
            }
            do {
                _ = try CBORDecoder().decodePrefix(input)
                decoded += 1
            } catch is CBORError {
                refused += 1
            } catch {
                Issue.record("unexpected error \(error) for \(input)")
            }
        }
        #expect(decoded + refused == 20_000)
        #expect(decoded > 0 && refused > 0)
    }
}
