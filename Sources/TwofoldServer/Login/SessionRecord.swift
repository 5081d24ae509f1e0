import Fluent
import Foundation
import TwofoldCore

/// A sign-in session. The cookie or bearer token is random; only its SHA-256 is stored.
final class SessionRecord: Model, @unchecked Sendable {
    static let schema = "sessions"

    /// Sign-in as a state machine: password done → second factor (or enrollment) → signed in.
    enum Stage: String, Codable, Sendable {
        case secondFactor = "second_factor"
        case enrollment
        case signedIn = "signed_in"
    }

    enum Channel: String, Codable, Sendable {
        case web, api
    }

    @ID(key: .id) var id: UUID?
    @Parent(key: "user_id") var user: User
    @Field(key: "token_hash") var tokenHash: String
    @Field(key: "stage") var stage: Stage
    @Field(key: "channel") var channel: Channel
    @Field(key: "csrf_token") var csrfToken: String
    /// Wrong codes entered during this pending sign-in; at the limit the sign-in is cancelled.
    @Field(key: "failed_attempts") var failedAttempts: Int
    @OptionalField(key: "reauthenticated_at") var reauthenticatedAt: Date?
    @Field(key: "ip") var ip: String
    @Field(key: "user_agent") var userAgent: String
    /// When the user last proved who they are in this session (OpenID Connect `auth_time`).
    @OptionalField(key: "auth_time") var authTime: Date?
    /// How they did (RFC 8176 values, space-separated) and the resulting assurance (``AuthenticationContext``).
    @OptionalField(key: "amr") var amr: String?
    @OptionalField(key: "acr") var acr: String?
    @Field(key: "created_at") var createdAt: Date
    @Field(key: "last_seen_at") var lastSeenAt: Date

    init() {}

    init(userID: UUID, tokenHash: String, stage: Stage, channel: Channel, csrfToken: String, ip: String, userAgent: String, now: Date) {
        self.$user.id = userID
        self.tokenHash = tokenHash
        self.stage = stage
        self.channel = channel
        self.csrfToken = csrfToken
        self.failedAttempts = 0
        self.reauthenticatedAt = now
        self.ip = ip
        self.userAgent = userAgent
        self.createdAt = now
        self.lastSeenAt = now
    }
}

extension SessionRecord {
    /// Records how the user just proved who they are (OpenID Connect `auth_time`, `amr`, `acr`).
    func recordAuthentication(_ context: AuthenticationContext, at time: Date) {
        authTime = time
        amr = context.amr.joined(separator: " ")
        acr = context.level.acr
    }

    /// The assurance of this session's last authentication; a session from before it was recorded counts as password only.
    var assurance: AssuranceLevel { acr.flatMap(AssuranceLevel.init(acr:)) ?? .password }
}

struct CreateSession: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(SessionRecord.schema)
            .id()
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("token_hash", .string, .required)
            .field("stage", .string, .required)
            .field("channel", .string, .required)
            .field("csrf_token", .string, .required)
            .field("failed_attempts", .int, .required)
            .field("reauthenticated_at", .datetime)
            .field("ip", .string, .required)
            .field("user_agent", .string, .required)
            .field("created_at", .datetime, .required)
            .field("last_seen_at", .datetime, .required)
            .unique(on: "token_hash")
            .create()
        try await database.sqlIndex(name: "sessions_user_idx", on: SessionRecord.schema, columns: ["user_id"])
    }

    func revert(on database: any Database) async throws {
        try await database.schema(SessionRecord.schema).delete()
    }
}
