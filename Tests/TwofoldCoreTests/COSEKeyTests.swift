import Crypto
import CryptoExtras
import Testing

@testable import TwofoldCore

@Suite("COSE credential keys")
struct COSEKeyTests {
    static let data = Array("authenticatorData ‖ SHA-256(clientDataJSON)".utf8)

    @Test func es256KeysVerifyDERSignatures() throws {
        let key = P256.Signing.PrivateKey()
        let point = Array(key.publicKey.x963Representation)
        let cose = CBORValue.map([
            (.int(1), .int(2)), (.int(3), .int(-7)), (.int(-1), .int(1)), (.int(-2), .bytes(Array(point[1..<33]))),
            (.int(-3), .bytes(Array(point[33...]))),
        ])
        let parsed = try COSEKey(try CBORDecoder().decode(cose.encoded))
        #expect(parsed.algorithm == -7)
        let signature = Array(try key.signature(for: Self.data).derRepresentation)
        #expect(parsed.isValidSignature(signature, for: Self.data))
        #expect(!parsed.isValidSignature(signature, for: Self.data + [0]))
        #expect(!parsed.isValidSignature(Array(signature.dropLast()), for: Self.data))
    }

    @Test func edDSAAndRS256KeysVerify() throws {
        let ed = Curve25519.Signing.PrivateKey()
        let edKey = try COSEKey(
            .map([(.int(1), .int(1)), (.int(3), .int(-8)), (.int(-1), .int(6)), (.int(-2), .bytes(Array(ed.publicKey.rawRepresentation)))]))
        #expect(edKey.isValidSignature(Array(try ed.signature(for: Self.data)), for: Self.data))
        #expect(!edKey.isValidSignature(Array(try ed.signature(for: Self.data + [1])), for: Self.data))

        let rsa = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let primitives = try rsa.publicKey.getKeyPrimitives()
        let rsaKey = try COSEKey(
            .map([
                (.int(1), .int(3)), (.int(3), .int(-257)), (.int(-1), .bytes(Array(primitives.modulus))),
                (.int(-2), .bytes(Array(primitives.publicExponent))),
            ]))
        let signature = try rsa.signature(for: Self.data, padding: .insecurePKCS1v1_5)
        #expect(rsaKey.isValidSignature(Array(signature.rawRepresentation), for: Self.data))
        #expect(!rsaKey.isValidSignature(Array(signature.rawRepresentation), for: Self.data + [2]))
    }

    @Test func malformedKeysAreRefusedWithAReason() {
        #expect(throws: COSEKey.Failure.notAMap) { try COSEKey(.array([])) }
        #expect(throws: COSEKey.Failure.missing("algorithm (3)")) { try COSEKey(.map([(.int(1), .int(2))])) }
        #expect(throws: COSEKey.Failure.unsupported("key type 2 with algorithm -35")) {
            try COSEKey(.map([(.int(1), .int(2)), (.int(3), .int(-35))]))
        }
        #expect(throws: COSEKey.Failure.invalidKey("P-256 coordinates are 32 bytes")) {
            try COSEKey(
                .map([(.int(1), .int(2)), (.int(3), .int(-7)), (.int(-1), .int(1)), (.int(-2), .bytes([1])), (.int(-3), .bytes([2]))]))
        }
        #expect(throws: COSEKey.Failure.invalidKey("the point is not on P-256")) {
            try COSEKey(
                .map([
                    (.int(1), .int(2)), (.int(3), .int(-7)), (.int(-1), .int(1)), (.int(-2), .bytes(Array(repeating: 1, count: 32))),
                    (.int(-3), .bytes(Array(repeating: 2, count: 32))),
                ]))
        }
    }

    @Test func encodingRoundTrips() throws {
        let value = CBORValue.map([
            (.text("fmt"), .text("none")), (.text("attStmt"), .map([])),
            (.int(-257), .array([.bool(true), .null, .int(70000), .int(-70000), .int(1 << 40)])),
        ])
        #expect(try CBORDecoder().decode(value.encoded) == value)
    }
}
