import Fluent
import Foundation

/// One second factor of a user: an authenticator app, a phone for SMS codes, a push device, or a passkey / security key.
final class Factor: Model, @unchecked Sendable {
    static let schema = "factors"

    enum Kind: String, Codable, CaseIterable, Sendable {
        case totp, sms, push, webauthn

        var displayName: String {
            switch self {
            case .totp: "Authenticator app"
            case .sms: "Text message"
            case .push: "Push notification device"
            case .webauthn: "Passkey or security key"
            }
        }
    }

    enum Status: String, Codable, Sendable {
        case pending, active
    }

    @ID(key: .id) var id: UUID?

    // reference fields
    @Parent(key: "user_id") var user: User

    // data fields
    @Field(key: "kind") var kind: Kind
    @Field(key: "status") var status: Status
    @Field(key: "nickname") var nickname: String
    @Field(key: "is_primary") var isPrimary: Bool
    /// The TOTP key, sealed with the server's key (AES-256-GCM) and bound to this factor's id.
    @OptionalField(key: "sealed_secret") var sealedSecret: Data?
    @Field(key: "digits") var digits: Int
    @Field(key: "algorithm") var algorithm: String
    @Field(key: "period") var period: Int
    @OptionalField(key: "phone") var phone: String?
    /// The last TOTP time step accepted; a step at or below it is a replay.
    @OptionalField(key: "last_used_step") var lastUsedStep: Int64?
    /// A push device's P-256 public key (x9.63 form), set when the device enrolls; a passkey's COSE public key.
    @OptionalField(key: "public_key") var publicKey: Data?
    /// SHA-256 of a push device's one-time enrollment token; cleared once used.
    @OptionalField(key: "enrollment_token_hash") var enrollmentTokenHash: String?
    @OptionalField(key: "enrollment_expires_at") var enrollmentExpiresAt: Date?
    /// A passkey's credential id (base64url), unique across the server.
    @OptionalField(key: "credential_id") var credentialID: String?
    /// A passkey's signature counter as last seen; 0 for authenticators that do not count.
    @OptionalField(key: "sign_count") var signCount: Int64?
    /// How the browser can reach the passkey ("internal,hybrid"), passed back as a hint at sign-in.
    @OptionalField(key: "transports") var transports: String?
    @OptionalField(key: "aaguid") var aaguid: String?
    /// The passkey may be synced to other devices (backup eligible) and currently is (backed up).
    @OptionalField(key: "backup_eligible") var backupEligible: Bool?
    @OptionalField(key: "backed_up") var backedUp: Bool?
    /// "packed/basic", "none/none"…: the attestation the authenticator gave at registration.
    @OptionalField(key: "attestation") var attestation: String?
    /// The session that started this enrollment. Only that session, if it is at the enrollment stage, is signed in
    /// when the factor becomes active; every other enrollment-stage session of the user ends then.
    @OptionalField(key: "enrollment_session_id") var enrollmentSessionID: UUID?
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?
    @OptionalField(key: "activated_at") var activatedAt: Date?
    @OptionalField(key: "last_used_at") var lastUsedAt: Date?

    init() {}

    init(id: UUID = UUID(), userID: UUID, kind: Kind, nickname: String, digits: Int = 6, algorithm: String = "SHA1", period: Int = 30) {
        self.id = id
        self.$user.id = userID
        self.kind = kind
        self.status = .pending
        self.nickname = nickname
        self.isPrimary = false
        self.digits = digits
        self.algorithm = algorithm
        self.period = period
    }

    /// A short public id shown in lists ("Active — TOTP 3F9A2C1B"), never a secret.
    var shortID: String {
        String((id?.uuidString ?? "").replacingOccurrences(of: "-", with: "").prefix(8))
    }
}

struct CreateFactor: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Factor.schema)
            .id()
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("kind", .string, .required)
            .field("status", .string, .required)
            .field("nickname", .string, .required)
            .field("is_primary", .bool, .required)
            .field("sealed_secret", .data)
            .field("digits", .int, .required)
            .field("algorithm", .string, .required)
            .field("period", .int, .required)
            .field("phone", .string)
            .field("last_used_step", .int64)
            .field("created_at", .datetime)
            .field("activated_at", .datetime)
            .field("last_used_at", .datetime)
            .create()
        try await database.sqlIndex(name: "factors_user_idx", on: Factor.schema, columns: ["user_id"])
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Factor.schema).delete()
    }
}

struct AddPushDeviceToFactor: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Factor.schema).field("public_key", .data).update()
        try await database.schema(Factor.schema).field("enrollment_token_hash", .string).update()
        try await database.schema(Factor.schema).field("enrollment_expires_at", .datetime).update()
        try await database.sqlIndex(name: "factors_enrollment_idx", on: Factor.schema, columns: ["enrollment_token_hash"])
    }

    func revert(on database: any Database) async throws {
        for field in ["public_key", "enrollment_token_hash", "enrollment_expires_at"] {
            try await database.schema(Factor.schema).deleteField(.key(.init(stringLiteral: field))).update()
        }
    }
}

struct AddPasskeyToFactor: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Factor.schema).field("credential_id", .string).update()
        try await database.schema(Factor.schema).field("sign_count", .int64).update()
        try await database.schema(Factor.schema).field("transports", .string).update()
        try await database.schema(Factor.schema).field("aaguid", .string).update()
        try await database.schema(Factor.schema).field("backup_eligible", .bool).update()
        try await database.schema(Factor.schema).field("backed_up", .bool).update()
        try await database.schema(Factor.schema).field("attestation", .string).update()
        try await database.sqlIndex(name: "factors_credential_idx", on: Factor.schema, columns: ["credential_id"], unique: true)
    }

    func revert(on database: any Database) async throws {
        for field in ["credential_id", "sign_count", "transports", "aaguid", "backup_eligible", "backed_up", "attestation"] {
            try await database.schema(Factor.schema).deleteField(.key(.init(stringLiteral: field))).update()
        }
    }
}

struct AddEnrollmentSessionToFactor: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Factor.schema).field("enrollment_session_id", .uuid).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Factor.schema).deleteField("enrollment_session_id").update()
    }
}

extension Factor {
    /// The kinds of a user's active factors (one small query: the kind column only).
    static func activeKinds(of userID: UUID, on db: any Database) async throws -> Set<Kind> {
        Set(try await Factor.query(on: db).filter(\.$user.$id == userID).filter(\.$status == .active).unique().all(\.$kind))
    }
}
