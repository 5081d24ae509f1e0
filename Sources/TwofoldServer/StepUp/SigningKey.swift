import Crypto
import Fluent
import Foundation
import TwofoldCore

/// A P-256 key that signs step-up assertions. The private key is sealed at rest; the newest key signs, and the
/// newest two are published at `/.well-known/jwks.json` so assertions signed just before a rotation still verify.
final class SigningKey: Model, @unchecked Sendable {
    static let schema = "signing_keys"

    @ID(key: .id) var id: UUID?
    @Field(key: "kid") var kid: String
    @Field(key: "sealed_private_key") var sealedPrivateKey: Data
    @Field(key: "created_at") var createdAt: Date

    init() {}

    init(kid: String, sealedPrivateKey: Data, createdAt: Date) {
        id = UUID()
        self.kid = kid
        self.sealedPrivateKey = sealedPrivateKey
        self.createdAt = createdAt
    }

    static func sealingContext(kid: String) -> [UInt8] {
        Array("signing-key:\(kid)".utf8)
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

/// Loading, creating and rotating the assertion signing keys.
struct SigningKeyStore {
    let database: any Database
    let sealer: SecretSealer
    let now: Date

    /// How many of the newest keys are published.
    static let publishedCount = 2

    /// The key that signs now; the first call on a new database creates it.
    func current() async throws -> (kid: String, key: P256.Signing.PrivateKey) {
        if let newest = try await SigningKey.query(on: database).sort(\.$createdAt, .descending).sort(\.$kid, .descending).first() {
            return (newest.kid, try open(newest))
        }
        return try await create()
    }

    /// Makes a new signing key; the previous one stays published until the next rotation.
    @discardableResult
    func create() async throws -> (kid: String, key: P256.Signing.PrivateKey) {
        let key = P256.Signing.PrivateKey()
        // A key id that sorts by time and is unique across instances.
        let kid = String(Int64(now.timeIntervalSince1970)) + "-" + SecureRandom.token(byteCount: 6)
        let sealed = try sealer.seal(Array(key.rawRepresentation), context: SigningKey.sealingContext(kid: kid))
        try await SigningKey(kid: kid, sealedPrivateKey: Data(sealed), createdAt: now).create(on: database)
        return (kid, key)
    }

    /// The published public keys, newest first.
    func published() async throws -> [JSONWebKey] {
        try await SigningKey.query(on: database).sort(\.$createdAt, .descending).sort(\.$kid, .descending)
            .range(..<Self.publishedCount).all()
            .map { JSONWebKey(publicKey: try open($0).publicKey, kid: $0.kid) }
    }

    /// Deletes keys that are no longer published.
    func pruneUnpublished() async throws -> Int {
        let all = try await SigningKey.query(on: database).sort(\.$createdAt, .descending).sort(\.$kid, .descending).all()
        let old = all.dropFirst(Self.publishedCount)
        for key in old { try await key.delete(on: database) }
        return old.count
    }

    private func open(_ record: SigningKey) throws -> P256.Signing.PrivateKey {
        let raw = try sealer.open(Array(record.sealedPrivateKey), context: SigningKey.sealingContext(kid: record.kid))
        return try P256.Signing.PrivateKey(rawRepresentation: raw)
    }
}
