import Crypto
import CryptoExtras
import Foundation
import TwofoldCore

/// Checks a compact JWS against a JWK Set the way a relying party's library does, with swift-crypto alone (no
/// jwt-kit, no Twofold code): the header's `kid` picks the key, its `alg` must be the key's, RS256 is RSASSA-PKCS1-v1_5
/// with SHA-256 (RFC 7518 §3.3) and ES256 is ECDSA P-256 with the 64-byte r‖s signature (RFC 7518 §3.4).
enum IndependentJWS {
    enum Failure: Error, Equatable {
        case malformed
        case unknownKey
        case badSignature
    }

    struct Verified {
        var header: [String: Any]
        var payload: Data
    }

    static func verify(_ token: String, jwks: Data) throws -> Verified {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3,
            let headerBytes = try? Base64URL.decode(parts[0]),
            let header = try JSONSerialization.jsonObject(with: Data(headerBytes)) as? [String: Any],
            let alg = header["alg"] as? String, let kid = header["kid"] as? String,
            let payload = try? Base64URL.decode(parts[1]), let signature = try? Base64URL.decode(parts[2]),
            let set = try JSONSerialization.jsonObject(with: jwks) as? [String: Any], let keys = set["keys"] as? [[String: Any]]
        else { throw Failure.malformed }
        guard let jwk = keys.first(where: { $0["kid"] as? String == kid }), jwk["alg"] as? String == alg, jwk["use"] as? String == "sig"
        else { throw Failure.unknownKey }
        let signingInput = Array("\(parts[0]).\(parts[1])".utf8)
        let valid: Bool
        switch alg {
        case "ES256":
            guard jwk["kty"] as? String == "EC", jwk["crv"] as? String == "P-256",
                let x = try? Base64URL.decode(jwk["x"] as? String ?? ""), let y = try? Base64URL.decode(jwk["y"] as? String ?? ""),
                let key = try? P256.Signing.PublicKey(x963Representation: [0x04] + x + y)
            else { throw Failure.malformed }
            guard let ecdsa = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { throw Failure.badSignature }
            valid = key.isValidSignature(ecdsa, for: signingInput)
        case "RS256":
            guard jwk["kty"] as? String == "RSA",
                let n = try? Base64URL.decode(jwk["n"] as? String ?? ""), let e = try? Base64URL.decode(jwk["e"] as? String ?? ""),
                let key = try? _RSA.Signing.PublicKey(n: n, e: e)
            else { throw Failure.malformed }
            valid = key.isValidSignature(
                _RSA.Signing.RSASignature(rawRepresentation: signature), for: SHA256.hash(data: signingInput),
                padding: .insecurePKCS1v1_5)
        default:
            throw Failure.unknownKey
        }
        guard valid else { throw Failure.badSignature }
        return Verified(header: header, payload: Data(payload))
    }
}
