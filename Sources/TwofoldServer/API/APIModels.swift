import Foundation
import Vapor

/// A second factor as the JSON API shows it; never includes a key.
struct FactorDTO: Content {
    var id: UUID
    var shortId: String
    var kind: String
    var nickname: String
    var primary: Bool
    var status: String
    var createdAt: Date?
    var lastUsedAt: Date?
    var phone: String?
    /// Passkeys: whether the passkey can be synced to other devices, and its authenticator model (AAGUID).
    var synced: Bool?
    var aaguid: String?
    /// In the user's own factor list: whether the practice counts this device as a hard token for EPCS signing
    /// (21 CFR 1311.115, 1311.116).
    var epcsEligible: Bool?

    init(_ factor: Factor) {
        id = factor.id!
        shortId = factor.shortID
        kind = factor.kind.rawValue
        nickname = factor.nickname
        primary = factor.isPrimary
        status = factor.status.rawValue
        createdAt = factor.createdAt
        lastUsedAt = factor.lastUsedAt
        phone = factor.phone.map(SMSCodeService.maskedPhone)
        synced = factor.kind == .webauthn ? (factor.backupEligible ?? false) : nil
        aaguid = factor.kind == .webauthn ? factor.aaguid : nil
    }

    init(_ factor: Factor, epcsEligible: Bool) {
        self.init(factor)
        self.epcsEligible = epcsEligible
    }
}

struct LoginRequest: Content {
    var username: String
    var password: String
    /// The token from an earlier `rememberBrowser: true` verification, to skip the second factor.
    var rememberToken: String?
}

struct LoginResponse: Content {
    var status: String
    var token: String
    var factors: [FactorDTO]
    var smsAvailable: Bool
    var rememberBrowserDays: Int
}

struct VerifyRequest: Content {
    var code: String
    var factorId: UUID?
    var rememberBrowser: Bool?
}

struct AuthenticatedResponse: Content {
    var status = "authenticated"
    /// The session's new bearer token: the token from `POST /api/v1/login` stops working once the second factor passes.
    var token: String?
    var rememberToken: String?
    var recoveryCodesLeft: Int?
}

struct CodeRequest: Content {
    var code: String
}

struct SMSSentResponse: Content {
    var sentTo: String
    var expiresInSeconds: Int
}

struct MeResponse: Content {
    struct PracticeSummary: Content {
        var id: UUID
        var name: String
    }

    var id: UUID
    var username: String
    var firstName: String
    var lastName: String
    var email: String
    var cellPhone: String?
    var role: String
    var permissions: [String]
    var practice: PracticeSummary
    var stage: String
    var twoFactorEnabled: Bool
    var twoFactorRequired: Bool
    var recoveryCodesLeft: Int
}

struct PasswordRequest: Content {
    var password: String?
}

struct NewFactorRequest: Content {
    var password: String?
    var nickname: String?
}

struct TOTPEnrollmentResponse: Content {
    var factorId: UUID
    var otpauthURI: String
    var secret: String
    var qrSVG: String
}

struct SMSEnrollmentResponse: Content {
    var factorId: UUID
    var sentTo: String
}

struct ActivationResponse: Content {
    var factor: FactorDTO
    var recoveryCodes: [String]?
    /// Set when this enrollment finished a sign-in: the session's new bearer token (the old one no longer works).
    var token: String?

    init(_ activation: FactorService.Activation) {
        factor = FactorDTO(activation.factor)
        recoveryCodes = activation.recoveryCodes?.map(\.value)
        token = activation.sessionToken
    }
}

struct FactorPatchRequest: Content {
    var nickname: String?
    var primary: Bool?
    var password: String?
}

struct RecoveryCodesResponse: Content {
    var recoveryCodes: [String]
}

struct RemoveFactorRequest: Content {
    var password: String?
    /// Needed only to remove the last method (which turns 2FA off): a current code or a recovery code.
    var code: String?
}

struct DisableRequest: Content {
    var password: String?
    var code: String
}

struct BrowserDTO: Content {
    var id: UUID
    var browser: String
    var createdAt: Date?
    var lastUsedAt: Date?
    var lastIP: String
    var expiresAt: Date
}
