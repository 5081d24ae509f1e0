import Fluent
import Foundation
import SQLKit
import TwofoldCore

/// A WebAuthn challenge Twofold issued: random (32 bytes), bound to what it is for, used once, answerable for the
/// policy's ``TwofoldPolicy/Passkeys/challengeLifetime`` (`lifetime`, from the application's policy).
/// Only its SHA-256 is stored; the browser echoes the challenge back inside clientDataJSON.
final class WebAuthnChallenge: Model, @unchecked Sendable {
    static let schema = "webauthn_challenges"

    enum Purpose: String, Codable, Sendable {
        case registration, secondFactor = "second_factor", passwordless, stepUp = "step_up"
    }

    @ID(key: .id) var id: UUID?
    @Field(key: "challenge_hash") var challengeHash: String
    @Field(key: "purpose") var purpose: Purpose
    @OptionalField(key: "user_id") var userID: UUID?
    /// The sign-in session (registration, second factor) or step-up request the challenge belongs to.
    @OptionalField(key: "context_id") var contextID: UUID?
    @Field(key: "user_verification") var userVerificationRequired: Bool
    @Field(key: "expires_at") var expiresAt: Date
    @OptionalField(key: "used_at") var usedAt: Date?

    init() {}

    init(
        challenge: [UInt8], purpose: Purpose, userID: UUID?, contextID: UUID?, userVerificationRequired: Bool, now: Date,
        lifetime: TimeInterval
    ) {
        self.id = UUID()
        self.challengeHash = Self.hash(challenge)
        self.purpose = purpose
        self.userID = userID
        self.contextID = contextID
        self.userVerificationRequired = userVerificationRequired
        self.expiresAt = now.addingTimeInterval(lifetime)
    }

    static func hash(_ challenge: [UInt8]) -> String {
        TwofoldCore.Digest.hex(TwofoldCore.Digest.sha256(challenge))
    }

    private struct Row: Decodable { var id: UUID }

    /// Marks the challenge used and returns it, or nil when it is unknown, expired or already used.
    /// One conditional UPDATE, so two racing requests cannot both use it.
    static func consume(_ challenge: [UInt8], purpose: Purpose, now: Date, on database: any Database) async throws -> WebAuthnChallenge? {
        let row = try await database.sql.raw(
            """
            UPDATE \(ident: schema) SET used_at = \(bind: now)
            WHERE challenge_hash = \(bind: hash(challenge)) AND purpose = \(bind: purpose.rawValue) AND used_at IS NULL AND expires_at > \(bind: now)
            RETURNING id
            """
        ).first(decoding: Row.self)
        guard let row else { return nil }
        return try await WebAuthnChallenge.find(row.id, on: database)
    }

    /// Drops challenges that ended more than an hour ago.
    static func prune(now: Date, on database: any Database) async throws {
        try await WebAuthnChallenge.query(on: database).filter(\.$expiresAt < now.addingTimeInterval(-3600)).delete()
    }
}

struct CreateWebAuthnChallenge: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(WebAuthnChallenge.schema)
            .id()
            .field("challenge_hash", .string, .required)
            .field("purpose", .string, .required)
            .field("user_id", .uuid)
            .field("context_id", .uuid)
            .field("user_verification", .bool, .required)
            .field("expires_at", .datetime, .required)
            .field("used_at", .datetime)
            .create()
        try await database.sqlIndex(
            name: "webauthn_challenges_hash_idx", on: WebAuthnChallenge.schema, columns: ["challenge_hash"], unique: true)
    }

    func revert(on database: any Database) async throws {
        try await database.schema(WebAuthnChallenge.schema).delete()
    }
}
