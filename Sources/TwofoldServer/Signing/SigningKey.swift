import Crypto
import CryptoExtras
import Fluent
import Foundation
import JWTKit
import SQLKit
import TwofoldCore

/// A key that signs Twofold's tokens (step-up assertions, id, access and logout tokens). The private key is sealed at
/// rest. Per algorithm the newest key that is not retired signs; a rotation retires the previous one, which stays
/// published at `/.well-known/jwks.json` for ``SigningKeyStore/publishedAfterRetirement`` so that every token it
/// signed can still be verified until it expires.
final class SigningKey: Model, @unchecked Sendable {
    static let schema = "signing_keys"

    // managed fields
    @ID(key: .id) var id: UUID?
    @Field(key: "created_at") var createdAt: Date
    @OptionalField(key: "retired_at") var retiredAt: Date?

    // data fields
    @Field(key: "kid") var kid: String
    @Field(key: "alg") var algorithm: SigningAlgorithm
    @Field(key: "sealed_private_key") var sealedPrivateKey: Data

    init() {}

    init(kid: String, algorithm: SigningAlgorithm, sealedPrivateKey: Data, createdAt: Date) {
        id = UUID()
        self.kid = kid
        self.algorithm = algorithm
        self.sealedPrivateKey = sealedPrivateKey
        self.createdAt = createdAt
    }

    /// What the sealed private key is bound to. ES256 keys keep the context they were sealed under before RS256
    /// existed; RS256 keys are bound to their algorithm too.
    static func sealingContext(kid: String, algorithm: SigningAlgorithm) -> [UInt8] {
        switch algorithm {
        case .es256: Array("signing-key:\(kid)".utf8)
        case .rs256: Array("signing-key:\(kid):RS256".utf8)
        }
    }
}

struct CreateSigningKey: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(SigningKey.schema)
            .id()
            .field("kid", .string, .required)
            .field("sealed_private_key", .data, .required)
            .field("created_at", .datetime, .required)
            .unique(on: "kid")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(SigningKey.schema).delete()
    }
}

/// Signing keys of more than one algorithm, and retirement instead of "the newest two are published". Every key
/// before this migration is ES256; all but the newest count as retired when their successor was created.
struct AddAlgorithmAndRetirementToSigningKey: AsyncMigration {
    private struct Row: Decodable {
        var id: UUID
        var created_at: Date
    }

    func prepare(on database: any Database) async throws {
        try await database.schema(SigningKey.schema).field("alg", .string, .required, .sql(.default("ES256"))).update()
        try await database.schema(SigningKey.schema).field("retired_at", .datetime).update()
        let sql = database.sql
        let rows = try await sql.select().columns("id", "created_at").from(SigningKey.schema)
            .orderBy("created_at", .descending).orderBy("kid", .descending).all(decoding: Row.self)
        for (newer, older) in zip(rows, rows.dropFirst()) {
            try await sql.update(SigningKey.schema).set("retired_at", to: newer.created_at).where("id", .equal, older.id).run()
        }
    }

    func revert(on database: any Database) async throws {
        try await database.schema(SigningKey.schema).deleteField("retired_at").update()
        try await database.schema(SigningKey.schema).deleteField("alg").update()
    }
}

/// An opened signing key: its id, algorithm and private half.
struct OpenedSigningKey: Sendable {
    enum Material: Sendable {
        case rs256(JWTKit.Insecure.RSA.PrivateKey)
        case es256(ES256PrivateKey)
    }

    var kid: String
    var algorithm: SigningAlgorithm
    var material: Material
    var createdAt: Date
    var retiredAt: Date?

    /// The public half as a JWK (RFC 7517 §4, RFC 7518 §6.2 and §6.3).
    func jwk() throws -> JSONWebKeySet.Key {
        switch material {
        case .rs256(let key):
            let (modulus, exponent) = try key.publicKey.getKeyPrimitives()
            return .init(
                kty: "RSA", kid: kid, alg: algorithm.rawValue, n: Base64URL.encode(Array(modulus)), e: Base64URL.encode(Array(exponent)))
        case .es256(let key):
            guard let point = key.publicKey.parameters else { throw TokenSignerError.malformed("the EC key has no coordinates") }
            return .init(kty: "EC", kid: kid, alg: algorithm.rawValue, crv: "P-256", x: point.x, y: point.y)
        }
    }
}

/// Loading, creating, rotating and pruning the signing keys.
struct SigningKeyStore {
    let database: any Database
    let sealer: SecretSealer
    let now: Date

    /// How long a retired key stays published: far longer than any token it signed lives (access tokens at most
    /// 15 minutes, id tokens and step-up assertions 5 minutes), so a relying party that cached the JWKS before a
    /// rotation, or holds a token signed just before it, still finds the key.
    static let publishedAfterRetirement: TimeInterval = 24 * 60 * 60

    /// The RSA modulus size of new RS256 keys.
    static let rsaKeySize = _RSA.Signing.KeySize.bits2048

    /// The key of `algorithm` that signs now; the first use of an algorithm creates its key.
    func current(_ algorithm: SigningAlgorithm) async throws -> OpenedSigningKey {
        if let newest = try await SigningKey.query(on: database).filter(\.$algorithm == algorithm).filter(\.$retiredAt == nil)
            .sort(\.$createdAt, .descending).sort(\.$kid, .descending).first()
        {
            return try open(newest)
        }
        return try await create(algorithm)
    }

    /// Makes a new key of `algorithm` that signs at once, and retires the keys of that algorithm that signed before.
    /// - Returns: The new key and the ids of the keys it retired.
    func rotate(_ algorithm: SigningAlgorithm) async throws -> (key: OpenedSigningKey, retired: [String]) {
        let created = try await create(algorithm)
        let previous = try await SigningKey.query(on: database).filter(\.$algorithm == algorithm).filter(\.$retiredAt == nil)
            .filter(\.$kid != created.kid).all()
        try await SigningKey.query(on: database).filter(\.$algorithm == algorithm).filter(\.$retiredAt == nil)
            .filter(\.$kid != created.kid).set(\.$retiredAt, to: now).update()
        return (created, previous.map(\.kid))
    }

    /// The keys whose public halves are published, of both algorithms: the ones that sign and the ones retired less
    /// than ``publishedAfterRetirement`` ago. Per algorithm (in ``SigningAlgorithm/allCases`` order), newest first.
    func published() async throws -> [OpenedSigningKey] {
        try await publishedRecords().map(open)
    }

    /// The published key with this id, if there is one.
    func published(kid: String) async throws -> OpenedSigningKey? {
        guard let record = try await publishedQuery().filter(\.$kid == kid).first() else { return nil }
        return try open(record)
    }

    /// Deletes the keys that are no longer published.
    /// - Returns: The ids of the deleted keys.
    @discardableResult
    static func prune(on database: any Database, now: Date) async throws -> [String] {
        let cutoff = now.addingTimeInterval(-publishedAfterRetirement)
        let expired = try await SigningKey.query(on: database).filter(\.$retiredAt <= cutoff).all()
        try await SigningKey.query(on: database).filter(\.$retiredAt <= cutoff).delete()
        return expired.map(\.kid)
    }

    private func publishedQuery() -> QueryBuilder<SigningKey> {
        let cutoff = now.addingTimeInterval(-Self.publishedAfterRetirement)
        return SigningKey.query(on: database).group(.or) { $0.filter(\.$retiredAt == nil).filter(\.$retiredAt > cutoff) }
    }

    private func publishedRecords() async throws -> [SigningKey] {
        let records = try await publishedQuery().sort(\.$createdAt, .descending).sort(\.$kid, .descending).all()
        return SigningAlgorithm.allCases.flatMap { algorithm in records.filter { $0.algorithm == algorithm } }
    }

    private func create(_ algorithm: SigningAlgorithm) async throws -> OpenedSigningKey {
        // A key id that sorts by time and is unique across instances.
        let kid = String(Int64(now.timeIntervalSince1970)) + "-" + SecureRandom.token(byteCount: 6)
        let material: OpenedSigningKey.Material
        let privateBytes: [UInt8]
        switch algorithm {
        case .es256:
            let key = P256.Signing.PrivateKey()
            privateBytes = Array(key.rawRepresentation)
            material = .es256(try ES256PrivateKey(backing: key))
        case .rs256:
            let key = try _RSA.Signing.PrivateKey(keySize: Self.rsaKeySize)
            privateBytes = Array(key.derRepresentation)
            material = .rs256(try JWTKit.Insecure.RSA.PrivateKey(backing: key))
        }
        let sealed = try sealer.seal(privateBytes, context: SigningKey.sealingContext(kid: kid, algorithm: algorithm))
        try await SigningKey(kid: kid, algorithm: algorithm, sealedPrivateKey: Data(sealed), createdAt: now).create(on: database)
        return OpenedSigningKey(kid: kid, algorithm: algorithm, material: material, createdAt: now, retiredAt: nil)
    }

    private func open(_ record: SigningKey) throws -> OpenedSigningKey {
        let raw = try sealer.open(
            Array(record.sealedPrivateKey), context: SigningKey.sealingContext(kid: record.kid, algorithm: record.algorithm))
        let material: OpenedSigningKey.Material =
            switch record.algorithm {
            case .es256: .es256(try ES256PrivateKey(backing: P256.Signing.PrivateKey(rawRepresentation: raw)))
            case .rs256: .rs256(try JWTKit.Insecure.RSA.PrivateKey(backing: _RSA.Signing.PrivateKey(derRepresentation: raw)))
            }
        return OpenedSigningKey(
            kid: record.kid, algorithm: record.algorithm, material: material, createdAt: record.createdAt,
            retiredAt: record.retiredAt)
    }
}
