import Fluent
import FluentSQL
import Foundation
import TwofoldCore

/// A provider's permission to sign controlled-substance prescriptions (21 CFR 1311.125): entered by one EPCS access
/// approver, approved by a second with a fresh second factor, revoked at once by one and confirmed by another.
final class EPCSGrant: Model, @unchecked Sendable {
    static let schema = "epcs_grants"

    enum Status: String, Codable, Sendable, CaseIterable {
        /// entered by the first approver; not usable yet
        case pendingApproval = "pending_approval"
        /// approved by a second approver: the prescriber may sign while the registration is current
        case active
        /// the second approver refused it
        case refused
        /// revoked (at once); ``EPCSGrant/revocationConfirmedBy`` records the second approver's confirmation
        case revoked
    }

    @ID(key: .id) var id: UUID?
    @Field(key: "practice_id") var practiceID: UUID
    @Parent(key: "user_id") var user: User
    @Field(key: "status") var status: Status
    @Field(key: "dea_number") var deaNumber: String
    /// The last day the DEA registration is valid (YYYY-MM-DD); from the next day the grant no longer signs.
    @Field(key: "dea_expires_on") var deaExpiresOn: String
    /// Comma-separated state codes the practitioner is authorised in.
    @Field(key: "states") var states: String
    @Field(key: "proofing_provider") var proofingProvider: String
    @Field(key: "proofing_date") var proofingDate: String
    @Field(key: "proofing_level") var proofingLevel: String
    @Field(key: "proofing_reference") var proofingReference: String
    @Field(key: "entered_by") var enteredBy: UUID
    @Field(key: "entered_at") var enteredAt: Date
    @OptionalField(key: "decided_by") var decidedBy: UUID?
    @OptionalField(key: "decided_at") var decidedAt: Date?
    @OptionalField(key: "revoked_by") var revokedBy: UUID?
    @OptionalField(key: "revoked_at") var revokedAt: Date?
    @OptionalField(key: "revocation_reason") var revocationReason: String?
    @OptionalField(key: "revocation_confirmed_by") var revocationConfirmedBy: UUID?
    @OptionalField(key: "revocation_confirmed_at") var revocationConfirmedAt: Date?

    init() {}

    init(
        practiceID: UUID, userID: UUID, deaNumber: String, deaExpiresOn: String, states: [String], proofing: EPCSProofing, enteredBy: UUID,
        now: Date
    ) {
        id = UUID()
        self.practiceID = practiceID
        $user.id = userID
        status = .pendingApproval
        self.deaNumber = deaNumber
        self.deaExpiresOn = deaExpiresOn
        self.states = states.joined(separator: ",")
        proofingProvider = proofing.provider
        proofingDate = proofing.date
        proofingLevel = proofing.level
        proofingReference = proofing.reference
        self.enteredBy = enteredBy
        enteredAt = now
    }

    var stateList: [String] { states.split(separator: ",").map(String.init) }

    /// Active, and the registration has not expired (compared as calendar days in UTC).
    func permitsSigning(now: Date) -> Bool {
        status == .active && !registrationExpired(now: now)
    }

    func registrationExpired(now: Date) -> Bool {
        EPCSDay.string(now) > deaExpiresOn
    }

    /// What an administrator sees: expiry shows even though the stored status is still active.
    func visibleStatus(now: Date) -> String {
        if status == .active, registrationExpired(now: now) { return "registration_expired" }
        if status == .revoked, revocationConfirmedAt == nil { return "revoked_awaiting_confirmation" }
        return status.rawValue
    }

    var shortID: String { String((id?.uuidString ?? "").prefix(8)) }
}

/// The identity-proofing record of the credential service provider (§1311.105): Twofold records it, it does not proof.
struct EPCSProofing: Codable, Sendable, Equatable {
    var provider: String
    var date: String
    var level: String
    var reference: String
}

/// Something the practice's EPCS approvers must see on their administration home (a lost device, a failed audit
/// verification), until one of them acknowledges it.
final class EPCSAlert: Model, @unchecked Sendable {
    static let schema = "epcs_alerts"

    @ID(key: .id) var id: UUID?
    @Field(key: "practice_id") var practiceID: UUID
    @Field(key: "kind") var kind: String
    @OptionalField(key: "subject_id") var subjectID: UUID?
    @Field(key: "message") var message: String
    @Field(key: "created_at") var createdAt: Date
    @OptionalField(key: "acknowledged_by") var acknowledgedBy: UUID?
    @OptionalField(key: "acknowledged_at") var acknowledgedAt: Date?

    init() {}

    init(practiceID: UUID, kind: String, subjectID: UUID?, message: String, now: Date) {
        id = UUID()
        self.practiceID = practiceID
        self.kind = kind
        self.subjectID = subjectID
        self.message = message
        createdAt = now
    }
}

/// An approver's review of one day's EPCS audit report (§1311.150(c)).
final class EPCSReportReview: Model, @unchecked Sendable {
    static let schema = "epcs_report_reviews"

    @ID(key: .id) var id: UUID?
    @Field(key: "practice_id") var practiceID: UUID
    /// YYYY-MM-DD (UTC)
    @Field(key: "day") var day: String
    @Field(key: "reviewed_by") var reviewedBy: UUID
    @Field(key: "reviewed_at") var reviewedAt: Date
    @Field(key: "incidents") var incidents: Int
    @Field(key: "note") var note: String

    init() {}

    init(practiceID: UUID, day: String, reviewedBy: UUID, incidents: Int, note: String, now: Date) {
        id = UUID()
        self.practiceID = practiceID
        self.day = day
        self.reviewedBy = reviewedBy
        reviewedAt = now
        self.incidents = incidents
        self.note = note
    }
}

/// Calendar days as EPCS records them: UTC, YYYY-MM-DD.
enum EPCSDay {
    static var calendar: Calendar {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar
    }

    static func string(_ date: Date) -> String {
        let parts = calendar.dateComponents([.year, .month, .day], from: date)
        return String(format: "%04d-%02d-%02d", parts.year ?? 0, parts.month ?? 0, parts.day ?? 0)
    }

    /// The start of the day, or nil when `text` is not a real YYYY-MM-DD date.
    static func start(_ text: String) -> Date? {
        let parts = text.split(separator: "-")
        guard text.count == 10, parts.count == 3, let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
            (1900...9999).contains(year), parts[0].count == 4, parts[1].count == 2, parts[2].count == 2
        else { return nil }
        guard let date = calendar.date(from: DateComponents(year: year, month: month, day: day)), string(date) == text else { return nil }
        return date
    }

    /// The first day of a YYYY-MM month, and the first day of the next.
    static func month(_ text: String) -> (start: Date, end: Date)? {
        guard text.count == 7, let start = start(text + "-01"), let end = calendar.date(byAdding: .month, value: 1, to: start) else {
            return nil
        }
        return (start, end)
    }
}

struct CreateEPCSTables: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(EPCSGrant.schema)
            .id()
            .field("practice_id", .uuid, .required, .references(Practice.schema, .id, onDelete: .cascade))
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("status", .string, .required)
            .field("dea_number", .string, .required)
            .field("dea_expires_on", .string, .required)
            .field("states", .string, .required)
            .field("proofing_provider", .string, .required)
            .field("proofing_date", .string, .required)
            .field("proofing_level", .string, .required)
            .field("proofing_reference", .string, .required)
            .field("entered_by", .uuid, .required)
            .field("entered_at", .datetime, .required)
            .field("decided_by", .uuid)
            .field("decided_at", .datetime)
            .field("revoked_by", .uuid)
            .field("revoked_at", .datetime)
            .field("revocation_reason", .string)
            .field("revocation_confirmed_by", .uuid)
            .field("revocation_confirmed_at", .datetime)
            .create()
        try await database.schema(EPCSAlert.schema)
            .id()
            .field("practice_id", .uuid, .required, .references(Practice.schema, .id, onDelete: .cascade))
            .field("kind", .string, .required)
            .field("subject_id", .uuid)
            .field("message", .string, .required)
            .field("created_at", .datetime, .required)
            .field("acknowledged_by", .uuid)
            .field("acknowledged_at", .datetime)
            .create()
        try await database.schema(EPCSReportReview.schema)
            .id()
            .field("practice_id", .uuid, .required, .references(Practice.schema, .id, onDelete: .cascade))
            .field("day", .string, .required)
            .field("reviewed_by", .uuid, .required)
            .field("reviewed_at", .datetime, .required)
            .field("incidents", .int, .required)
            .field("note", .string, .required)
            .unique(on: "practice_id", "day")
            .create()
        // At most one grant per prescriber waits for approval or is active: a second entry must not race past the check.
        if let sql = database as? any SQLDatabase {
            try await sql.raw(
                "CREATE UNIQUE INDEX epcs_grants_one_open ON epcs_grants (user_id) WHERE status IN ('pending_approval', 'active')"
            ).run()
            try await sql.raw("CREATE INDEX epcs_grants_practice ON epcs_grants (practice_id, status)").run()
        }
        try await database.schema(User.schema)
            .field("epcs_approver", .bool, .required, .sql(.default(false)))
            .update()
        try await database.schema(User.schema)
            .field("dea_registrant", .bool, .required, .sql(.default(false)))
            .update()
        try await database.schema(Practice.schema)
            .field("epcs_tokens", .string, .required, .sql(.default(EPCSDefaults.tokens)))
            .update()
        try await database.schema(Practice.schema)
            .field("epcs_security_key_aaguids", .string, .required, .sql(.default("")))
            .update()
        try await database.schema(Practice.schema)
            .field(
                "epcs_working_hours_start", .int, .required, .sql(.default(TwofoldPolicy.standard.practice.epcsWorkingHoursStart.default))
            )
            .update()
        try await database.schema(Practice.schema)
            .field("epcs_working_hours_end", .int, .required, .sql(.default(TwofoldPolicy.standard.practice.epcsWorkingHoursEnd.default)))
            .update()
        try await database.schema(StepUpChallenge.schema)
            .field("epcs_grant_id", .uuid)
            .update()
        try await database.schema(StepUpChallenge.schema)
            .field("attestation_hash", .string)
            .update()
        try await database.schema(StepUpChallenge.schema)
            .field("knowledge_verified_at", .datetime)
            .update()
    }

    func revert(on database: any Database) async throws {
        for field in ["epcs_grant_id", "attestation_hash", "knowledge_verified_at"] {
            try await database.schema(StepUpChallenge.schema).deleteField(.key(.init(stringLiteral: field))).update()
        }
        for field in ["epcs_tokens", "epcs_security_key_aaguids", "epcs_working_hours_start", "epcs_working_hours_end"] {
            try await database.schema(Practice.schema).deleteField(.key(.init(stringLiteral: field))).update()
        }
        for field in ["epcs_approver", "dea_registrant"] {
            try await database.schema(User.schema).deleteField(.key(.init(stringLiteral: field))).update()
        }
        try await database.schema(EPCSReportReview.schema).delete()
        try await database.schema(EPCSAlert.schema).delete()
        try await database.schema(EPCSGrant.schema).delete()
    }
}

enum EPCSDefaults {
    /// Push devices and authenticator apps count out of the box; security keys once trust anchors are configured.
    static let tokens = "push,totp,security_key"
}
