import Foundation
import TwofoldCore

/// The settings an administrator chooses for their practice, as one value: what ``Practice`` stores, what the API's
/// `GET`/`PATCH /api/v1/practice` and the practice settings page show and change, what is validated (with the bounds
/// of ``TwofoldPolicy/PracticeSettings``) and what the settings-change audit entry lists. ``fields`` is the one list of
/// them that the model mapping and the audit diff read; EPCS settings have their own page (``EPCSService/Settings``).
struct PracticeSettings: Equatable, Sendable, Encodable {
    var name: String
    var mandatoryTwoFactor: Bool
    var rememberBrowserDays: Int
    var inactivityMinutes: Int
    var otpDigits: Int
    var allowSMS: Bool
    var allowTOTP: Bool
    var allowPush: Bool
    var allowPasskeys: Bool
    var allowPasswordless: Bool
    var refuseClonedPasskeys: Bool
    var sessionLifetimeHours: Int
    var accessTokenMinutes: Int
    var refreshTokenDays: Int
    var resetRequiresSecondFactor: Bool
    /// Lockouts and administrators' actions on accounts are also emailed here; nil: nowhere.
    var notificationCopyAddress: String?

    /// A new practice's settings.
    static func defaults(name: String, mandatoryTwoFactor: Bool = false, policy: TwofoldPolicy.PracticeSettings) -> PracticeSettings {
        PracticeSettings(
            name: name, mandatoryTwoFactor: mandatoryTwoFactor, rememberBrowserDays: policy.rememberBrowserDays.default,
            inactivityMinutes: policy.inactivityMinutes.default, otpDigits: policy.otpDigits.default, allowSMS: true, allowTOTP: true,
            allowPush: true, allowPasskeys: true, allowPasswordless: false, refuseClonedPasskeys: true,
            sessionLifetimeHours: policy.sessionLifetimeHours.default, accessTokenMinutes: policy.accessTokenMinutes.default,
            refreshTokenDays: policy.refreshTokenDays.default, resetRequiresSecondFactor: true, notificationCopyAddress: nil)
    }

    // MARK: the list of fields

    /// One setting: its API and form name, its database column (also the key in the audit entry), and how to read,
    /// write and show it.
    struct Field: Sendable {
        let name: String
        let column: String
        let read: @Sendable (Practice, inout PracticeSettings) -> Void
        let write: @Sendable (PracticeSettings, Practice) -> Void
        let describe: @Sendable (PracticeSettings) -> String
        let same: @Sendable (PracticeSettings, PracticeSettings) -> Bool
    }

    private static func field<Value: Equatable & Sendable>(
        _ name: String, _ column: String, _ settings: WritableKeyPath<PracticeSettings, Value> & Sendable,
        _ model: ReferenceWritableKeyPath<Practice, Value> & Sendable, describe: @escaping @Sendable (Value) -> String = { "\($0)" },
        same: @escaping @Sendable (Value, Value) -> Bool = { $0 == $1 }
    ) -> Field {
        Field(
            name: name, column: column,
            read: { practice, values in values[keyPath: settings] = practice[keyPath: model] },
            write: { values, practice in practice[keyPath: model] = values[keyPath: settings] },
            describe: { describe($0[keyPath: settings]) },
            same: { same($0[keyPath: settings], $1[keyPath: settings]) })
    }

    static let fields: [Field] = [
        field("name", "name", \.name, \.name),
        field("mandatoryTwoFactor", "mandatory_two_factor", \.mandatoryTwoFactor, \.mandatoryTwoFactor),
        field("rememberBrowserDays", "remember_browser_days", \.rememberBrowserDays, \.rememberBrowserDays),
        field("inactivityMinutes", "inactivity_minutes", \.inactivityMinutes, \.inactivityMinutes),
        field("otpDigits", "otp_digits", \.otpDigits, \.otpDigits),
        field("allowSMS", "allow_sms", \.allowSMS, \.allowSMS),
        field("allowTOTP", "allow_totp", \.allowTOTP, \.allowTOTP),
        field("allowPush", "allow_push", \.allowPush, \.allowPush),
        field("allowPasskeys", "allow_passkeys", \.allowPasskeys, \.allowPasskeys),
        field("allowPasswordless", "allow_passwordless", \.allowPasswordless, \.allowPasswordless),
        field("refuseClonedPasskeys", "refuse_cloned_passkeys", \.refuseClonedPasskeys, \.refuseClonedPasskeys),
        field("sessionLifetimeHours", "session_lifetime_hours", \.sessionLifetimeHours, \.sessionLifetimeHours),
        field("accessTokenMinutes", "oidc_access_token_minutes", \.accessTokenMinutes, \.accessTokenMinutes),
        field("refreshTokenDays", "oidc_refresh_token_days", \.refreshTokenDays, \.refreshTokenDays),
        field("resetRequiresSecondFactor", "reset_requires_second_factor", \.resetRequiresSecondFactor, \.resetRequiresSecondFactor),
        field(
            "notificationCopyAddress", "notification_copy_address", \.notificationCopyAddress, \.notificationCopyAddress,
            describe: { $0 ?? "none" }, same: { $0?.lowercased() == $1?.lowercased() }),
    ]

    // MARK: the model

    init(
        name: String, mandatoryTwoFactor: Bool, rememberBrowserDays: Int, inactivityMinutes: Int, otpDigits: Int, allowSMS: Bool,
        allowTOTP: Bool, allowPush: Bool, allowPasskeys: Bool, allowPasswordless: Bool, refuseClonedPasskeys: Bool,
        sessionLifetimeHours: Int, accessTokenMinutes: Int, refreshTokenDays: Int, resetRequiresSecondFactor: Bool,
        notificationCopyAddress: String?
    ) {
        self.name = name
        self.mandatoryTwoFactor = mandatoryTwoFactor
        self.rememberBrowserDays = rememberBrowserDays
        self.inactivityMinutes = inactivityMinutes
        self.otpDigits = otpDigits
        self.allowSMS = allowSMS
        self.allowTOTP = allowTOTP
        self.allowPush = allowPush
        self.allowPasskeys = allowPasskeys
        self.allowPasswordless = allowPasswordless
        self.refuseClonedPasskeys = refuseClonedPasskeys
        self.sessionLifetimeHours = sessionLifetimeHours
        self.accessTokenMinutes = accessTokenMinutes
        self.refreshTokenDays = refreshTokenDays
        self.resetRequiresSecondFactor = resetRequiresSecondFactor
        self.notificationCopyAddress = notificationCopyAddress
    }

    /// The settings a practice holds.
    init(_ practice: Practice) {
        var values = PracticeSettings.defaults(name: "", policy: TwofoldPolicy.standard.practice)
        for field in Self.fields { field.read(practice, &values) }
        self = values
    }

    /// Writes every setting into `practice` (not saved).
    func apply(to practice: Practice) {
        for field in Self.fields { field.write(self, practice) }
    }

    /// The audit entry's details for a change from `old` to these settings: column → "old → new", changed fields only.
    func changes(from old: PracticeSettings) -> [String: String] {
        var changed: [String: String] = [:]
        for field in Self.fields where !field.same(old, self) {
            changed[field.column] = "\(field.describe(old)) → \(field.describe(self))"
        }
        return changed
    }

    // MARK: validation

    /// What is wrong with these settings under `policy`, each problem naming its field and what is allowed; empty when valid.
    func problems(policy: TwofoldPolicy.PracticeSettings) -> [String] {
        var problems: [String] = []
        func check(_ value: Int, _ bounded: Bounded<Int>, _ label: String, _ field: String, _ unit: String, note: String = "") {
            guard !bounded.contains(value) else { return }
            problems.append("\(label) must be \(bounded.lowerBound) to \(bounded.upperBound) \(unit)\(note) (\(field), not \(value))")
        }
        if !policy.nameLength.contains(name.count) {
            problems.append(
                "the practice name must be \(policy.nameLength.lowerBound) to \(policy.nameLength.upperBound) characters (name)")
        }
        check(
            rememberBrowserDays, policy.rememberBrowserDays, "remembering a browser", "rememberBrowserDays", "days",
            note: ", 0 turns it off")
        check(inactivityMinutes, policy.inactivityMinutes, "the inactivity timeout", "inactivityMinutes", "minutes")
        check(sessionLifetimeHours, policy.sessionLifetimeHours, "the session lifetime", "sessionLifetimeHours", "hours")
        check(accessTokenMinutes, policy.accessTokenMinutes, "the access token lifetime", "accessTokenMinutes", "minutes")
        check(refreshTokenDays, policy.refreshTokenDays, "the refresh token lifetime", "refreshTokenDays", "days")
        if !policy.otpDigits.contains(otpDigits) {
            let choices = policy.otpDigits.range.map(String.init)
            let listed = choices.count > 1 ? choices.dropLast().joined(separator: ", ") + " or " + choices.last! : choices.joined()
            problems.append("codes must have \(listed) digits (otpDigits, not \(otpDigits))")
        }
        if !allowSMS && !allowTOTP && !allowPush && !allowPasskeys {
            problems.append("allow at least one method (authenticator app, text message, push device or passkey)")
        }
        return problems
    }
}

extension PracticeSettings {
    /// A change to some settings (the API's `PATCH` body, the settings form): nil leaves a setting as it is.
    struct Patch: Sendable {
        var name: String?
        var mandatoryTwoFactor: Bool?
        var rememberBrowserDays: Int?
        var inactivityMinutes: Int?
        var otpDigits: Int?
        var allowSMS: Bool?
        var allowTOTP: Bool?
        var allowPush: Bool?
        var allowPasskeys: Bool?
        var allowPasswordless: Bool?
        var refuseClonedPasskeys: Bool?
        var sessionLifetimeHours: Int?
        var accessTokenMinutes: Int?
        var refreshTokenDays: Int?
        var resetRequiresSecondFactor: Bool?
        /// An email address, or an empty string to remove it.
        var notificationCopyAddress: String?

        /// `current` with this change made (the name trimmed, the copy address normalised), and what could not be taken
        /// (a copy address that is not an email address); bounds are checked by ``PracticeSettings/problems(policy:)``.
        func applied(to current: PracticeSettings) -> (settings: PracticeSettings, problems: [String]) {
            var next = current
            var problems: [String] = []
            if let name { next.name = name.trimmingCharacters(in: .whitespaces) }
            if let mandatoryTwoFactor { next.mandatoryTwoFactor = mandatoryTwoFactor }
            if let rememberBrowserDays { next.rememberBrowserDays = rememberBrowserDays }
            if let inactivityMinutes { next.inactivityMinutes = inactivityMinutes }
            if let otpDigits { next.otpDigits = otpDigits }
            if let allowSMS { next.allowSMS = allowSMS }
            if let allowTOTP { next.allowTOTP = allowTOTP }
            if let allowPush { next.allowPush = allowPush }
            if let allowPasskeys { next.allowPasskeys = allowPasskeys }
            if let allowPasswordless { next.allowPasswordless = allowPasswordless }
            if let refuseClonedPasskeys { next.refuseClonedPasskeys = refuseClonedPasskeys }
            if let sessionLifetimeHours { next.sessionLifetimeHours = sessionLifetimeHours }
            if let accessTokenMinutes { next.accessTokenMinutes = accessTokenMinutes }
            if let refreshTokenDays { next.refreshTokenDays = refreshTokenDays }
            if let resetRequiresSecondFactor { next.resetRequiresSecondFactor = resetRequiresSecondFactor }
            if let raw = notificationCopyAddress?.trimmingCharacters(in: .whitespacesAndNewlines) {
                if raw.isEmpty {
                    next.notificationCopyAddress = nil
                } else if let valid = ProfileService.validEmail(raw) {
                    next.notificationCopyAddress = valid
                } else {
                    problems.append("the notification copy address must be a valid email address or empty (notificationCopyAddress)")
                }
            }
            return (next, problems)
        }
    }
}
