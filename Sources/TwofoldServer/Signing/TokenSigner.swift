import Fluent
import Foundation
import JWTKit
import TwofoldCore
import Vapor

/// The JWS algorithms Twofold signs with (RFC 7518 §3.3 and §3.4). RS256 is what many relying parties expect by
/// default; ES256 is smaller and faster, and signs step-up assertions.
enum SigningAlgorithm: String, Codable, Sendable, CaseIterable {
    case rs256 = "RS256"
    case es256 = "ES256"
}

/// Why a token was refused. The reasons name no part of the token.
enum TokenSignerError: AbortError, Equatable {
    case malformed(String)
    case unsupportedAlgorithm(String)
    case unknownKey(String)
    case badSignature

    var status: HTTPResponseStatus { .unauthorized }

    var reason: String {
        switch self {
        case .malformed(let why): "The token is malformed: \(why)."
        case .unsupportedAlgorithm(let alg): "The token is signed with \(alg); Twofold accepts only RS256 and ES256."
        case .unknownKey(let kid): "No key Twofold publishes has the id \(kid)."
        case .badSignature: "The token's signature does not verify."
        }
    }
}

/// A JWK Set (RFC 7517 §5) of public keys, as `/.well-known/jwks.json` serves it.
struct JSONWebKeySet: Content, Equatable {
    /// One public key: `n`, `e` for RSA, `crv`, `x`, `y` for EC; absent members are left out.
    struct Key: Content, Equatable {
        var kty: String
        var kid: String
        var use = "sig"
        var alg: String
        var n: String?
        var e: String?
        var crv: String?
        var x: String?
        var y: String?
    }

    var keys: [Key]
}

/// Signs and verifies Twofold's JWS tokens (id, access and logout tokens, step-up assertions) with jwt-kit, using the
/// keys of ``SigningKeyStore``.
struct TokenSigner: Sendable {
    let database: any Database
    let sealer: SecretSealer
    let now: Date

    init(database: any Database, sealer: SecretSealer, now: Date) {
        self.database = database
        self.sealer = sealer
        self.now = now
    }

    private var store: SigningKeyStore { SigningKeyStore(database: database, sealer: sealer, now: now) }

    /// Sorted keys and unescaped slashes: the compact form step-up assertions have always had.
    private static let serializer = DefaultJWTSerializer(
        jsonEncoder: {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            encoder.dateEncodingStrategy = .secondsSince1970
            return encoder
        }())

    /// Signs with the current key of `algorithm` (creating it on first use).
    /// - Parameters:
    ///   - payload: The claims.
    ///   - algorithm: RS256 or ES256.
    ///   - type: The header's `typ`, e.g. `at+jwt` for RFC 9068 access tokens or `logout+jwt`.
    /// - Returns: The compact JWS; its header carries `alg`, `kid` and `typ`.
    func sign(_ payload: some JWTPayload, algorithm: SigningAlgorithm, type: String = "JWT") async throws -> String {
        let key = try await store.current(algorithm)
        var header = JWTHeader()
        header.typ = type
        return try await Self.collection(with: key, publicOnly: false).sign(payload, kid: JWKIdentifier(string: key.kid), header: header)
    }

    /// Verifies the signature with the published key the header's `kid` names and decodes the payload.
    ///
    /// Claims (`exp`, `iss`, `aud`) are the caller's to check against its own clock; the payload's `verify(using:)`
    /// runs as the payload type defines it.
    /// - Throws: ``TokenSignerError`` for a malformed token, an algorithm other than RS256 or ES256 (never `none`, never
    ///   HS256), a `kid` that is not published or names a key of another algorithm, or a bad signature; whatever the
    ///   payload's `verify(using:)` throws.
    func verify<Payload: JWTPayload>(_ token: String, as _: Payload.Type) async throws -> Payload {
        let header = try Self.header(of: token)
        guard let algorithm = SigningAlgorithm(rawValue: header.alg) else { throw TokenSignerError.unsupportedAlgorithm(header.alg) }
        guard let kid = header.kid, let key = try await store.published(kid: kid), key.algorithm == algorithm
        else { throw TokenSignerError.unknownKey(header.kid ?? "(none)") }
        do {
            return try await Self.collection(with: key, publicOnly: true).verify(token, as: Payload.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            throw TokenSignerError.badSignature
        } catch let error as JWTError where error.errorType == .malformedToken {
            throw TokenSignerError.malformed("the payload is not the expected JSON")
        }
    }

    /// The published public keys of both algorithms (each created on first use), for `/.well-known/jwks.json`.
    func jwks() async throws -> JSONWebKeySet {
        for algorithm in SigningAlgorithm.allCases { _ = try await store.current(algorithm) }
        return JSONWebKeySet(keys: try await store.published().map { try $0.jwk() })
    }

    /// A key collection holding only `key` (only its public half to verify): jwt-kit falls back to a collection's
    /// default key when the header names an unknown `kid`, so the key is chosen here and the collection holds no other.
    private static func collection(with key: OpenedSigningKey, publicOnly: Bool) async -> JWTKeyCollection {
        let keys = JWTKeyCollection(defaultJWTSerializer: serializer)
        let kid = JWKIdentifier(string: key.kid)
        switch (key.material, publicOnly) {
        case (.rs256(let privateKey), false): await keys.add(rsa: privateKey, digestAlgorithm: .sha256, kid: kid, serializer: serializer)
        case (.rs256(let privateKey), true): await keys.add(rsa: privateKey.publicKey, digestAlgorithm: .sha256, kid: kid)
        case (.es256(let privateKey), false): await keys.add(ecdsa: privateKey, kid: kid, serializer: serializer)
        case (.es256(let privateKey), true): await keys.add(ecdsa: privateKey.publicKey, kid: kid)
        }
        return keys
    }

    private struct Header: Decodable {
        var alg: String
        var kid: String?
    }

    private static func header(of token: String) throws -> Header {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw TokenSignerError.malformed("expected three dot-separated parts") }
        guard let bytes = try? Base64URL.decode(String(parts[0])), let header = try? JSONDecoder().decode(Header.self, from: Data(bytes))
        else { throw TokenSignerError.malformed("the header is not base64url JSON with an alg") }
        return header
    }
}

extension Request {
    /// The token signer on this request's database and clock.
    var tokenSigner: TokenSigner { TokenSigner(database: db, sealer: twofold.sealer, now: now) }
}
