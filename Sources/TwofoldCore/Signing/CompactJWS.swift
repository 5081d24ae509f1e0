import Crypto
import Foundation

/// Why a compact JWS was refused.
public enum JWSError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    case unsupportedAlgorithm(String)
    case unknownKey(String)
    case badSignature

    public var description: String {
        switch self {
        case .malformed(let reason): "The token is malformed: \(reason)."
        case .unsupportedAlgorithm(let alg): "The token uses \(alg); only ES256 is accepted."
        case .unknownKey(let kid): "No published key has the id \(kid)."
        case .badSignature: "The token's signature does not verify."
        }
    }
}

/// Compact JWS (RFC 7515) signed with ES256: ECDSA P-256 over SHA-256, the signature as the raw 64-byte r‖s.
public enum CompactJWS {
    public struct Header: Codable, Equatable, Sendable {
        public var alg: String
        public var kid: String
        public var typ: String?

        public init(alg: String = "ES256", kid: String, typ: String? = "JWT") {
            self.alg = alg
            self.kid = kid
            self.typ = typ
        }
    }

    private static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// Signs `claims` with `key` under the key id `kid`.
    public static func sign<Claims: Encodable>(_ claims: Claims, key: P256.Signing.PrivateKey, kid: String) throws -> String {
        let header = Base64URL.encode(Array(try encoder.encode(Header(kid: kid))))
        let payload = Base64URL.encode(Array(try encoder.encode(claims)))
        let signingInput = header + "." + payload
        let signature = try key.signature(for: Array(signingInput.utf8))
        return signingInput + "." + Base64URL.encode(Array(signature.rawRepresentation))
    }

    /// Checks the signature of `token` against the key its header names and returns the header and payload bytes.
    /// Claims such as `exp` are the caller's to check.
    public static func verify(_ token: String, keys: [String: P256.Signing.PublicKey]) throws -> (header: Header, payload: [UInt8]) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw JWSError.malformed("expected three dot-separated parts") }
        guard let headerBytes = try? Base64URL.decode(String(parts[0])),
              let header = try? JSONDecoder().decode(Header.self, from: Data(headerBytes))
        else { throw JWSError.malformed("the header is not base64url JSON") }
        guard header.alg == "ES256" else { throw JWSError.unsupportedAlgorithm(header.alg) }
        guard let key = keys[header.kid] else { throw JWSError.unknownKey(header.kid) }
        guard let payload = try? Base64URL.decode(String(parts[1])) else { throw JWSError.malformed("the payload is not base64url") }
        guard let signatureBytes = try? Base64URL.decode(String(parts[2])),
              let signature = try? P256.Signing.ECDSASignature(rawRepresentation: signatureBytes)
        else { throw JWSError.malformed("the signature is not a 64-byte ES256 signature") }
        guard key.isValidSignature(signature, for: Array("\(parts[0]).\(parts[1])".utf8)) else { throw JWSError.badSignature }
        return (header, payload)
    }
}
