import Crypto
import CryptoExtras

/// A credential public key in COSE form (RFC 9052/9053), for the three algorithms WebAuthn authenticators use.
public enum COSEKey: Sendable {
    case es256(P256.Signing.PublicKey)
    case edDSA(Curve25519.Signing.PublicKey)
    case rs256(_RSA.Signing.PublicKey)

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case notAMap
        case missing(String)
        case unsupported(String)
        case invalidKey(String)

        public var description: String {
            switch self {
            case .notAMap: "The credential public key is not a COSE key map."
            case .missing(let field): "The COSE key has no \(field)."
            case .unsupported(let what): "The COSE key uses \(what); Twofold accepts ES256, EdDSA (Ed25519) and RS256."
            case .invalidKey(let why): "The COSE key is not a valid public key: \(why)."
            }
        }
    }

    /// COSE algorithm identifiers.
    public static let es256Algorithm: Int64 = -7
    public static let edDSAAlgorithm: Int64 = -8
    public static let rs256Algorithm: Int64 = -257

    public init(_ value: CBORValue) throws {
        guard case .map = value else { throw Failure.notAMap }
        guard let kty = value[1]?.integer else { throw Failure.missing("key type (1)") }
        guard let alg = value[3]?.integer else { throw Failure.missing("algorithm (3)") }
        func bytes(_ label: Int64, _ name: String) throws -> [UInt8] {
            guard case .bytes(let bytes)? = value[label] else { throw Failure.missing(name) }
            return bytes
        }
        switch (kty, alg) {
        case (2, Self.es256Algorithm):
            guard value[-1]?.integer == 1 else { throw Failure.unsupported("an elliptic curve other than P-256") }
            let x = try bytes(-2, "x coordinate (-2)")
            let y = try bytes(-3, "y coordinate (-3)")
            guard x.count == 32, y.count == 32 else { throw Failure.invalidKey("P-256 coordinates are 32 bytes") }
            do { self = .es256(try P256.Signing.PublicKey(x963Representation: [0x04] + x + y)) } catch {
                throw Failure.invalidKey("the point is not on P-256")
            }
        case (1, Self.edDSAAlgorithm):
            guard value[-1]?.integer == 6 else { throw Failure.unsupported("an OKP curve other than Ed25519") }
            let x = try bytes(-2, "public key (-2)")
            do { self = .edDSA(try Curve25519.Signing.PublicKey(rawRepresentation: x)) } catch {
                throw Failure.invalidKey("an Ed25519 key is 32 bytes")
            }
        case (3, Self.rs256Algorithm):
            let n = try bytes(-1, "modulus (-1)")
            let e = try bytes(-2, "exponent (-2)")
            do { self = .rs256(try _RSA.Signing.PublicKey(n: n, e: e)) } catch {
                throw Failure.invalidKey("RSA keys must have at least 2048 bits")
            }
        default:
            throw Failure.unsupported("key type \(kty) with algorithm \(alg)")
        }
    }

    public var algorithm: Int64 {
        switch self {
        case .es256: Self.es256Algorithm
        case .edDSA: Self.edDSAAlgorithm
        case .rs256: Self.rs256Algorithm
        }
    }

    /// Checks an assertion or attestation signature over `data` (WebAuthn: authenticatorData ‖ SHA-256(clientDataJSON)).
    /// ES256 signatures are ASN.1 DER, as authenticators produce them.
    public func isValidSignature(_ signature: [UInt8], for data: [UInt8]) -> Bool {
        switch self {
        case .es256(let key):
            guard let ecdsa = try? P256.Signing.ECDSASignature(derRepresentation: signature) else { return false }
            return key.isValidSignature(ecdsa, for: data)
        case .edDSA(let key):
            return key.isValidSignature(signature, for: data)
        case .rs256(let key):
            return key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: data, padding: .insecurePKCS1v1_5)
        }
    }
}
