/// How strongly a sign-in proved the user's identity, as OpenID Connect's `acr` claim and `acr_values` parameter
/// carry it. Levels are ordered: a request for one level is satisfied by it and by every stronger level.
public enum AssuranceLevel: Int, Comparable, Sendable, CaseIterable {
    /// A password alone, or a password in a remembered browser.
    case password = 1
    /// A password and a second factor: authenticator code, text-message code, push approval or recovery code.
    case twoFactor = 2
    /// A passkey or security key (origin-bound, so a look-alike site cannot relay it), with or without a password.
    case phishingResistant = 3

    public var acr: String {
        switch self {
        case .password: "urn:twofold:acr:password"
        case .twoFactor: "urn:twofold:acr:2fa"
        case .phishingResistant: "urn:twofold:acr:phishing-resistant"
        }
    }

    /// Reads an `acr` value; well-known synonyms are accepted (`mfa`, `phr`, `phrh`).
    public init?(acr: String) {
        switch acr {
        case Self.password.acr, "pwd", "1": self = .password
        case Self.twoFactor.acr, "mfa", "2": self = .twoFactor
        case Self.phishingResistant.acr, "phr", "phrh", "3": self = .phishingResistant
        default: return nil
        }
    }

    /// The weakest level that satisfies a space-separated `acr_values` list (the relying party's preference order
    /// is immaterial: any listed level is acceptable, so the weakest listed one is what must be met).
    /// Unknown values are ignored; nil when none is known.
    public static func required(byACRValues values: String) -> AssuranceLevel? {
        values.split(separator: " ").compactMap { AssuranceLevel(acr: String($0)) }.min()
    }

    public static func < (lhs: AssuranceLevel, rhs: AssuranceLevel) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// The way one sign-in happened, turned into RFC 8176 `amr` values and an ``AssuranceLevel``.
public struct AuthenticationContext: Equatable, Sendable {
    public enum SecondFactor: String, Sendable {
        case totp, sms, push, recoveryCode = "recovery_code", webauthn
    }

    public var password: Bool
    public var secondFactor: SecondFactor?
    /// For a passkey: the key is device-bound (not backup-eligible), so `hwk` rather than `swk`.
    public var deviceBoundKey: Bool

    public init(password: Bool, secondFactor: SecondFactor?, deviceBoundKey: Bool = false) {
        self.password = password
        self.secondFactor = secondFactor
        self.deviceBoundKey = deviceBoundKey
    }

    /// RFC 8176 method references. A remembered browser adds nothing: its sign-in shows `pwd` alone.
    public var amr: [String] {
        var methods: [String] = password ? ["pwd"] : []
        switch secondFactor {
        case .totp?, .recoveryCode?: methods.append("otp")
        case .sms?: methods.append("sms")
        case .push?: methods += ["swk", "user"]
        case .webauthn?: methods += [deviceBoundKey ? "hwk" : "swk", "user"]
        case nil: break
        }
        if level >= .twoFactor { methods.append("mfa") }
        return methods
    }

    public var level: AssuranceLevel {
        switch secondFactor {
        case .webauthn?: .phishingResistant
        case .some: password ? .twoFactor : .password
        case nil: .password
        }
    }
}
