import Fluent
import FluentSQL
import Foundation
import TwofoldCore

/// A medical practice: its users, its 2FA policy and its settings.
final class Practice: Model, @unchecked Sendable {
    static let schema = "practices"

    @ID(key: .id) var id: UUID?

    // data fields
    @Field(key: "name") var name: String
    @Field(key: "mandatory_two_factor") var mandatoryTwoFactor: Bool
    @Field(key: "remember_browser_days") var rememberBrowserDays: Int
    @Field(key: "inactivity_minutes") var inactivityMinutes: Int
    @Field(key: "otp_digits") var otpDigits: Int
    @Field(key: "allow_sms") var allowSMS: Bool
    @Field(key: "allow_totp") var allowTOTP: Bool
    @Field(key: "allow_push") var allowPush: Bool
    @Field(key: "allow_passkeys") var allowPasskeys: Bool
    /// Passkeys (discoverable, user-verified) may sign in without a password from the sign-in page.
    @Field(key: "allow_passwordless") var allowPasswordless: Bool
    /// Refuse a passkey whose signature counter went backwards (a possible clone) instead of only flagging it.
    @Field(key: "refuse_cloned_passkeys") var refuseClonedPasskeys: Bool
    /// A session ends this many hours after sign-in however busy it is (NIST SP 800-63B AAL2 reauthentication).
    @Field(key: "session_lifetime_hours") var sessionLifetimeHours: Int
    /// Lifetime of the access tokens applications receive (OpenID Connect), within ``TwofoldPolicy/PracticeSettings/accessTokenMinutes``.
    @Field(key: "oidc_access_token_minutes") var accessTokenMinutes: Int
    /// Lifetime of refresh tokens, within ``TwofoldPolicy/PracticeSettings/refreshTokenDays``; each use rotates the token.
    @Field(key: "oidc_refresh_token_days") var refreshTokenDays: Int
    /// The hard tokens that count for EPCS signing (comma-separated ``EPCS/Token`` names).
    @Field(key: "epcs_tokens") var epcsTokens: String
    /// When not empty, only security keys of these AAGUIDs count for EPCS (e.g. FIPS 140 validated models).
    @Field(key: "epcs_security_key_aaguids") var epcsSecurityKeyAAGUIDs: String
    /// Grants approved outside these hours (UTC, start inclusive, end exclusive) or at weekends are flagged.
    @Field(key: "epcs_working_hours_start") var epcsWorkingHoursStart: Int
    @Field(key: "epcs_working_hours_end") var epcsWorkingHoursEnd: Int
    /// A password reset (emailed link) also needs a current code from the user's second factor, when they have one.
    @Field(key: "reset_requires_second_factor") var resetRequiresSecondFactor: Bool
    /// Lockouts and administrators' actions on accounts are also emailed here (security notifications); nil: nowhere.
    @OptionalField(key: "notification_copy_address") var notificationCopyAddress: String?
    @Timestamp(key: "created_at", on: .create) var createdAt: Date?

    init() {}

    /// A new practice with the policy's default settings (``PracticeSettings/defaults(name:mandatoryTwoFactor:policy:)``).
    init(
        id: UUID? = nil, name: String, mandatoryTwoFactor: Bool = false,
        policy: TwofoldPolicy.PracticeSettings = TwofoldPolicy.standard.practice
    ) {
        self.id = id
        // Assigned one by one: a key-path write reads the field first, and these are not initialised yet.
        let settings = PracticeSettings.defaults(name: name, mandatoryTwoFactor: mandatoryTwoFactor, policy: policy)
        self.name = settings.name
        self.mandatoryTwoFactor = settings.mandatoryTwoFactor
        self.rememberBrowserDays = settings.rememberBrowserDays
        self.inactivityMinutes = settings.inactivityMinutes
        self.otpDigits = settings.otpDigits
        self.allowSMS = settings.allowSMS
        self.allowTOTP = settings.allowTOTP
        self.allowPush = settings.allowPush
        self.allowPasskeys = settings.allowPasskeys
        self.allowPasswordless = settings.allowPasswordless
        self.refuseClonedPasskeys = settings.refuseClonedPasskeys
        self.sessionLifetimeHours = settings.sessionLifetimeHours
        self.accessTokenMinutes = settings.accessTokenMinutes
        self.refreshTokenDays = settings.refreshTokenDays
        self.resetRequiresSecondFactor = settings.resetRequiresSecondFactor
        self.notificationCopyAddress = settings.notificationCopyAddress
        self.epcsTokens = EPCSDefaults.tokens
        self.epcsSecurityKeyAAGUIDs = ""
        self.epcsWorkingHoursStart = policy.epcsWorkingHoursStart.default
        self.epcsWorkingHoursEnd = policy.epcsWorkingHoursEnd.default
    }

    /// The settings an administrator chooses (all but EPCS's), as one value.
    var settings: PracticeSettings {
        get { PracticeSettings(self) }
        set { newValue.apply(to: self) }
    }
}

struct CreatePractice: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Practice.schema)
            .id()
            .field("name", .string, .required)
            .field("mandatory_two_factor", .bool, .required)
            .field("remember_browser_days", .int, .required)
            .field("inactivity_minutes", .int, .required)
            .field("otp_digits", .int, .required)
            .field("allow_sms", .bool, .required)
            .field("allow_totp", .bool, .required)
            .field("created_at", .datetime)
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Practice.schema).delete()
    }
}

struct AddAllowPushToPractice: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Practice.schema).field("allow_push", .bool, .required, .sql(.default(true))).update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Practice.schema).deleteField("allow_push").update()
    }
}

struct AddPasskeySettingsToPractice: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Practice.schema).field("allow_passkeys", .bool, .required, .sql(.default(true))).update()
        try await database.schema(Practice.schema).field("allow_passwordless", .bool, .required, .sql(.default(false))).update()
        try await database.schema(Practice.schema).field("refuse_cloned_passkeys", .bool, .required, .sql(.default(true))).update()
    }

    func revert(on database: any Database) async throws {
        for field in ["allow_passkeys", "allow_passwordless", "refuse_cloned_passkeys"] {
            try await database.schema(Practice.schema).deleteField(.key(.init(stringLiteral: field))).update()
        }
    }
}

struct AddSessionLifetimeToPractice: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(Practice.schema)
            .field("session_lifetime_hours", .int, .required, .sql(.default(TwofoldPolicy.standard.practice.sessionLifetimeHours.default)))
            .update()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Practice.schema).deleteField("session_lifetime_hours").update()
    }
}
