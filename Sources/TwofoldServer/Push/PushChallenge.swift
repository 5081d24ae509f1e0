import Fluent
import Foundation

/// A request to approve a sign-in or a step-up on a push device, with a two-digit number to match.
final class PushChallenge: Model, @unchecked Sendable {
    static let schema = "push_challenges"

    enum Purpose: String, Codable, Sendable {
        case signIn = "sign_in"
        case stepUp = "step_up"
        /// A second EPCS approver's step (approving a grant, confirming a revocation).
        case epcsApproval = "epcs_approval"
    }

    enum Status: String, Codable, Sendable {
        case pending, approved, denied
    }

    @ID(key: .id) var id: UUID?
    @Parent(key: "user_id") var user: User
    @Parent(key: "factor_id") var factor: Factor
    @Field(key: "practice_id") var practiceID: UUID
    @Field(key: "purpose") var purpose: Purpose
    /// The half-signed-in session this challenge may complete (sign-in only).
    @OptionalField(key: "session_id") var sessionID: UUID?
    /// The step-up this challenge confirms (step-up only).
    @OptionalField(key: "step_up_id") var stepUpID: UUID?
    /// The EPCS grant and the approver's step (`approve_grant`, `confirm_revocation`) this challenge confirms.
    @OptionalField(key: "epcs_grant_id") var epcsGrantID: UUID?
    @OptionalField(key: "epcs_action") var epcsAction: String?
    @Field(key: "number") var number: Int
    /// False for a sign-in from a terminal that cannot show the number (a VPN asking over RADIUS): the device shows
    /// the device, client and address instead, and approving needs no number.
    @Field(key: "number_required") var numberRequired: Bool
    @Field(key: "status") var status: Status
    @Field(key: "ip") var ip: String
    @Field(key: "user_agent") var userAgent: String
    /// What is being approved, shown on the device: the practice, and for step-up the action summary.
    @Field(key: "summary") var summary: String
    @Field(key: "fraud_reported") var fraudReported: Bool
    @Field(key: "created_at") var createdAt: Date
    @Field(key: "expires_at") var expiresAt: Date
    @OptionalField(key: "answered_at") var answeredAt: Date?
    @OptionalField(key: "consumed_at") var consumedAt: Date?

    init() {}

    init(
        user: User, factor: Factor, practiceID: UUID, purpose: Purpose, summary: String, ip: String, userAgent: String, now: Date,
        lifetime: TimeInterval
    ) throws {
        id = UUID()
        $user.id = try user.requireID()
        $factor.id = try factor.requireID()
        self.practiceID = practiceID
        self.purpose = purpose
        number = Int.random(in: 10...99)
        numberRequired = true
        status = .pending
        self.ip = ip
        self.userAgent = userAgent
        self.summary = summary
        fraudReported = false
        createdAt = now
        expiresAt = now.addingTimeInterval(lifetime)
    }

    /// The state as clients see it: a pending challenge past its time is expired.
    func visibleStatus(now: Date) -> String {
        status == .pending && now >= expiresAt ? "expired" : status.rawValue
    }
}

struct CreatePushChallenge: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(PushChallenge.schema)
            .id()
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("factor_id", .uuid, .required, .references(Factor.schema, .id, onDelete: .cascade))
            .field("practice_id", .uuid, .required)
            .field("purpose", .string, .required)
            .field("session_id", .uuid)
            .field("step_up_id", .uuid)
            .field("number", .int, .required)
            .field("status", .string, .required)
            .field("ip", .string, .required)
            .field("user_agent", .string, .required)
            .field("summary", .string, .required)
            .field("fraud_reported", .bool, .required)
            .field("created_at", .datetime, .required)
            .field("expires_at", .datetime, .required)
            .field("answered_at", .datetime)
            .field("consumed_at", .datetime)
            .create()
        try await database.sqlIndex(name: "push_challenges_factor_idx", on: PushChallenge.schema, columns: ["factor_id", "status"])
    }

    func revert(on database: any Database) async throws {
        try await database.schema(PushChallenge.schema).delete()
    }
}

/// Nonces of signed device requests, kept for the timestamp window so a captured request cannot be replayed.
struct CreateDeviceNonce: AsyncMigration {
    static let schema = "device_nonces"

    func prepare(on database: any Database) async throws {
        try await database.schema(Self.schema)
            .field("factor_id", .uuid, .required, .references(Factor.schema, .id, onDelete: .cascade))
            .field("nonce", .string, .required)
            .field("seen_at", .datetime, .required)
            .unique(on: "factor_id", "nonce")
            .create()
        try await database.sqlIndex(name: "device_nonces_seen_idx", on: Self.schema, columns: ["seen_at"])
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Self.schema).delete()
    }
}

struct AddNumberRequiredToPushChallenge: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(PushChallenge.schema).field("number_required", .bool, .required, .sql(.default(true))).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(PushChallenge.schema).deleteField("number_required").update()
    }
}

struct AddEPCSApprovalToPushChallenge: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(PushChallenge.schema).field("epcs_grant_id", .uuid).update()
        try await database.schema(PushChallenge.schema).field("epcs_action", .string).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(PushChallenge.schema).deleteField("epcs_grant_id").update()
        try await database.schema(PushChallenge.schema).deleteField("epcs_action").update()
    }
}
