import Fluent
import Foundation

/// A request from integrating software for a fresh second factor before one sensitive action.
final class StepUpChallenge: Model, @unchecked Sendable {
    static let schema = "step_ups"

    enum Status: String, Codable, Sendable {
        /// waiting for the user
        case pending
        /// the user proved a factor; the assertion has not been collected yet
        case verified
        /// the assertion was handed out (at most once)
        case completed
        /// too many wrong codes, or denied on the device
        case cancelled
    }

    @ID(key: .id) var id: UUID?
    @Field(key: "practice_id") var practiceID: UUID
    @Parent(key: "user_id") var user: User
    @Field(key: "api_key_id") var apiKeyID: UUID
    @Field(key: "action_type") var actionType: String
    @Field(key: "summary") var summary: String
    @Field(key: "action_hash") var actionHash: String
    @Field(key: "status") var status: Status
    @OptionalField(key: "amr") var amr: String?
    @OptionalField(key: "auth_time") var authTime: Date?
    @Field(key: "failed_attempts") var failedAttempts: Int
    @Field(key: "created_at") var createdAt: Date
    /// For an EPCS signing: the prescriber's active grant, the hash of the attestation shown, and when the
    /// prescriber's password (the knowledge factor) was checked for this step-up.
    @OptionalField(key: "epcs_grant_id") var epcsGrantID: UUID?
    @OptionalField(key: "attestation_hash") var attestationHash: String?
    @OptionalField(key: "knowledge_verified_at") var knowledgeVerifiedAt: Date?
    @Field(key: "expires_at") var expiresAt: Date

    init() {}

    init(
        practiceID: UUID, userID: UUID, apiKeyID: UUID, actionType: String, summary: String, actionHash: String, now: Date,
        lifetime: TimeInterval
    ) {
        id = UUID()
        self.practiceID = practiceID
        $user.id = userID
        self.apiKeyID = apiKeyID
        self.actionType = actionType
        self.summary = summary
        self.actionHash = actionHash
        status = .pending
        failedAttempts = 0
        createdAt = now
        expiresAt = now.addingTimeInterval(lifetime)
    }

    var isEPCS: Bool { actionType == StepUpChallenge.epcsActionType }
    static let epcsActionType = "epcs"

    func visibleStatus(now: Date) -> String {
        (status == .pending || status == .verified) && now >= expiresAt ? "expired" : status.rawValue
    }
}

struct CreateStepUpChallenge: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(StepUpChallenge.schema)
            .id()
            .field("practice_id", .uuid, .required)
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("api_key_id", .uuid, .required)
            .field("action_type", .string, .required)
            .field("summary", .string, .required)
            .field("action_hash", .string, .required)
            .field("status", .string, .required)
            .field("amr", .string)
            .field("auth_time", .datetime)
            .field("failed_attempts", .int, .required)
            .field("created_at", .datetime, .required)
            .field("expires_at", .datetime, .required)
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(StepUpChallenge.schema).delete()
    }
}
