import Fluent
import SQLKit
import TwofoldCore
import Vapor

/// The fingerprint of the key that seals the database's secrets, recorded at first start, so an instance with
/// another key (a second server that generated its own `twofold.key`) refuses to start instead of answering 500s.
enum SealingKeyCheck {
    static let table = "sealing_key_check"

    /// Records this instance's key on a database that has none; accepts the recorded key, or a previous key that the
    /// current one replaces (and then records the current key); refuses anything else.
    /// - Throws: ``ConfigurationError`` naming the key id the database expects and the one this instance has.
    static func verify(database: any Database, sealer: SecretSealer, now: Date, logger: Logger) async throws {
        let current = sealer.currentFingerprint
        if try await recorded(on: database) == nil {
            try await refuseForeignSecrets(database: database, sealer: sealer)
            try await database.sql.raw(
                """
                INSERT INTO \(ident: table) (id, key_id, recorded_at) VALUES (1, \(bind: current), \(bind: now)) ON CONFLICT (id) DO NOTHING
                """
            ).run()
        }
        guard let expected = try await recorded(on: database) else {
            throw ConfigurationError(problems: ["the sealing key check in the database could not be recorded; run `twofold migrate`"])
        }
        if expected == current { return }
        guard sealer.openingFingerprints.contains(expected) else {
            throw ConfigurationError(problems: [mismatch(expected: expected, actual: current)])
        }
        try await database.sql.raw(
            """
            UPDATE \(ident: table) SET key_id = \(bind: current), recorded_at = \(bind: now) WHERE id = 1 AND key_id = \(bind: expected)
            """
        ).run()
        logger.notice(
            "The sealing key changed from key id \(expected) to \(current); keep the old key in TWOFOLD_PREVIOUS_SECRET_KEYS until every secret is sealed again."
        )
    }

    static func mismatch(expected: String, actual: String) -> String {
        """
        this database's secrets are sealed with the key with id \(expected), but this instance's key has id \(actual) \
        (and TWOFOLD_PREVIOUS_SECRET_KEYS does not hold key \(expected)). Every instance that shares a database needs the same key: \
        set TWOFOLD_SECRET_KEY on this instance to the key of the instance that created the database (its TWOFOLD_SECRET_KEY, \
        or the twofold.key file in its data directory). To change keys, set the new key in TWOFOLD_SECRET_KEY and the old one in \
        TWOFOLD_PREVIOUS_SECRET_KEYS.
        """
    }

    private static func recorded(on database: any Database) async throws -> String? {
        try await database.sql.raw("SELECT key_id FROM \(ident: table) WHERE id = 1").first(decoding: Row.self)?.key_id
    }

    /// A database from before this check has no record: refuse to record a key that did not seal its secrets.
    private static func refuseForeignSecrets(database: any Database, sealer: SecretSealer) async throws {
        let blobs = try await database.sql.raw("SELECT sealed_secret FROM \(ident: Factor.schema) WHERE sealed_secret IS NOT NULL LIMIT 20")
            .all(decoding: SealedRow.self).compactMap(\.sealed_secret)
        guard let foreign = blobs.first(where: { !sealer.hasKey(for: Array($0)) }) else { return }
        let keyID = foreign.count >= 5 ? Digest.hex(Array(foreign[1..<5])) : "?"
        throw ConfigurationError(problems: [
            """
            this database's secrets are sealed with a key (blob key id \(keyID)) that this instance's key (id \(sealer.currentFingerprint)) \
            is not; set TWOFOLD_SECRET_KEY to the key of the instance that created the database (its TWOFOLD_SECRET_KEY, or the \
            twofold.key file in its data directory), or add it to TWOFOLD_PREVIOUS_SECRET_KEYS.
            """
        ])
    }

    private struct Row: Decodable { var key_id: String }
    private struct SealedRow: Decodable { var sealed_secret: Data? }
}

/// The table behind ``SealingKeyCheck``: one row, id 1.
struct CreateSealingKeyCheck: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(SealingKeyCheck.table)
            .field("id", .int, .identifier(auto: false))
            .field("key_id", .string, .required)
            .field("recorded_at", .datetime, .required)
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(SealingKeyCheck.table).delete()
    }
}
