import Crypto

/// A P-256 public key as a JSON Web Key (RFC 7517), as published at `/.well-known/jwks.json`.
public struct JSONWebKey: Codable, Equatable, Sendable {
    public var kty = "EC"
    public var crv = "P-256"
    public var x: String
    public var y: String
    public var kid: String
    public var use = "sig"
    public var alg = "ES256"

    public init(publicKey: P256.Signing.PublicKey, kid: String) {
        // x9.63 form: 0x04 ‖ X (32 bytes) ‖ Y (32 bytes)
        let point = Array(publicKey.x963Representation)
        x = Base64URL.encode(point[1..<33])
        y = Base64URL.encode(point[33..<65])
        self.kid = kid
    }

    /// The key this JWK describes.
    public func publicKey() throws -> P256.Signing.PublicKey {
        guard kty == "EC", crv == "P-256" else { throw JWSError.malformed("the key is not an EC P-256 key") }
        let xBytes = try Base64URL.decode(x)
        let yBytes = try Base64URL.decode(y)
        guard xBytes.count == 32, yBytes.count == 32 else { throw JWSError.malformed("the key's coordinates are not 32 bytes") }
        return try P256.Signing.PublicKey(x963Representation: [0x04] + xBytes + yBytes)
    }
}

/// A JWK Set.
public struct JSONWebKeySet: Codable, Equatable, Sendable {
    public var keys: [JSONWebKey]

    public init(keys: [JSONWebKey]) {
        self.keys = keys
    }
}
