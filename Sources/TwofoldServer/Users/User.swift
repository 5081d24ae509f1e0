import Fluent
import Foundation

/// A provider or staff member of one practice.
final class User: Model, @unchecked Sendable {
    static let schema = "users"

    enum Role: String, Codable, CaseIterable, Sendable {
        case provider, staff
    }

    enum Permission: String, Codable, CaseIterable, Sendable {
        case manageAccounts = "manage_accounts"
    }

    @ID(key: .id) var id: UUID?

    // reference fields
    @Parent(key: "practice_id") var practice: Practice

    // data fields
    @Field(key: "username") var username: String
    /// Lower-cased username; unique across the server so sign-in needs no practice picker.
    @Field(key: "username_key") var usernameKey: String
    @Field(key: "first_name") var firstName: String
    @Field(key: "last_name") var lastName: String
    @Field(key: "email") var email: String
    /// When the owner confirmed `email` through a link (or, for addresses an administrator entered, when it was
    /// entered); nil means it is not verified and receives no password reset link.
    @OptionalField(key: "email_verified_at") var emailVerifiedAt: Date?
    /// A new address waiting for its confirmation link (Account › Profile, or an administrator's edit); `email`
    /// stays the verified one until then.
    @OptionalField(key: "pending_email") var pendingEmail: String?
    @OptionalField(key: "cell_phone") var cellPhone: String?
    @Field(key: "role") var role: Role
    @Field(key: "permissions") var permissions: [String]
    @Field(key: "password_hash") var passwordHash: String
    /// Set by an administrator: this user must use 2FA even when the practice does not require it.
    @Field(key: "two_factor_required") var twoFactorRequired: Bool
    @Field(key: "must_change_password") var mustChangePassword: Bool
    /// Recorded when the password is set (or at a sign-in that checked it): it is long enough to be the only factor
    /// (15 characters, not common). False for imported hashes and passwords set before the rule; turning 2FA off
    /// needs it, or the user would be left with a short password as their only factor.
    @Field(key: "password_single_factor_ok") var passwordMeetsSingleFactorMinimum: Bool
    /// For staff: the provider they mainly work for (shown in the staff list).
    @OptionalField(key: "primary_provider_id") var primaryProviderID: UUID?
    /// Designated EPCS access approver (21 CFR 1311.125(a)): may enter, approve and revoke EPCS permissions.
    @Field(key: "epcs_approver") var epcsApprover: Bool
    /// Recorded by the practice: this user holds a DEA registration (the second approver must, §1311.125(c)).
    @Field(key: "dea_registrant") var deaRegistrant: Bool

    // second-factor guessing counters (NIST SP 800-63B §5.2.2)
    @Field(key: "second_factor_failures") var secondFactorFailures: Int
    @OptionalField(key: "second_factor_last_failure_at") var secondFactorLastFailureAt: Date?

    @Timestamp(key: "created_at", on: .create) var createdAt: Date?
    @Timestamp(key: "updated_at", on: .update) var updatedAt: Date?

    init() {}

    init(
        id: UUID? = nil, practiceID: UUID, username: String, firstName: String, lastName: String,
        email: String, cellPhone: String?, role: Role, permissions: [Permission], passwordHash: String
    ) {
        self.id = id
        self.$practice.id = practiceID
        self.username = username
        self.usernameKey = User.key(for: username)
        self.firstName = firstName
        self.lastName = lastName
        self.email = email
        self.cellPhone = cellPhone
        self.role = role
        self.permissions = permissions.map(\.rawValue)
        self.passwordHash = passwordHash
        self.twoFactorRequired = false
        self.mustChangePassword = false
        self.passwordMeetsSingleFactorMinimum = false
        self.secondFactorFailures = 0
        self.epcsApprover = false
        self.deaRegistrant = false
    }

    static func key(for username: String) -> String {
        username.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
    }

    var fullName: String { "\(firstName) \(lastName)" }

    func has(_ permission: Permission) -> Bool { permissions.contains(permission.rawValue) }
}

/// Whether each password meets the single-factor minimum; unknown (false) for every password set before.
struct AddPasswordSingleFactorFlagToUser: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(User.schema).field("password_single_factor_ok", .bool, .required, .sql(.default(false))).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(User.schema).deleteField("password_single_factor_ok").update()
    }
}

struct AddPrimaryProviderToUser: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(User.schema).field("primary_provider_id", .uuid).update()
        try await database.sqlIndex(name: "users_practice_idx", on: User.schema, columns: ["practice_id", "last_name", "first_name"])
    }

    func revert(on database: any Database) async throws {
        try await database.schema(User.schema).deleteField("primary_provider_id").update()
    }
}

struct CreateUser: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(User.schema)
            .id()
            .field("practice_id", .uuid, .required, .references(Practice.schema, .id, onDelete: .restrict))
            .field("username", .string, .required)
            .field("username_key", .string, .required)
            .field("first_name", .string, .required)
            .field("last_name", .string, .required)
            .field("email", .string, .required)
            .field("cell_phone", .string)
            .field("role", .string, .required)
            .field("permissions", .array(of: .string), .required)
            .field("password_hash", .string, .required)
            .field("two_factor_required", .bool, .required)
            .field("must_change_password", .bool, .required)
            .field("second_factor_failures", .int, .required)
            .field("second_factor_last_failure_at", .datetime)
            .field("created_at", .datetime)
            .field("updated_at", .datetime)
            .unique(on: "username_key")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(User.schema).delete()
    }
}
