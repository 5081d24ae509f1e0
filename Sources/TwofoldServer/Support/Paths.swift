import Foundation

/// Every page address of the web interface, used both to register routes and to build links and redirects.
enum WebPath {
    case home
    case login
    case logout
    case twoFactor
    case twoFactorSMS
    case recovery
    case setup
    case setupApp
    case setupAppFactor(UUID)
    case setupSMS
    case setupSMSFactor(UUID)
    case setupSMSResend(UUID)
    case setupPushStart
    case setupPasskey
    case twoFactorPasskey
    case loginPasskey
    case stepUpPasskey(UUID)
    case stepUpPasskeyOptions(UUID)
    case apiPasskeyRegistrationOptions
    case apiPasskeySignInOptions
    case setupPush(UUID)
    case setupPushStatus(UUID)
    case twoFactorPush(UUID)
    case stepUp(UUID)
    case recoveryCodesSaved
    case security
    case securityRecoveryCodes
    case securityDisable
    case securityBrowserRevoke(UUID)
    case securityFactorRemove(UUID)
    case securityFactorPrimary(UUID)
    case securityFactorRename(UUID)
    case securityFactorReportLost(UUID)
    case profile
    case password
    case styles
    case script
    case invitation(String)
    case forgotPassword
    case passwordReset(String)
    case emailConfirm(String)

    var string: String {
        switch self {
        case .home: "/"
        case .login: "/login"
        case .logout: "/logout"
        case .twoFactor: "/login/two-factor"
        case .twoFactorSMS: "/login/two-factor/sms"
        case .recovery: "/login/recovery"
        case .setup: "/account/security/setup"
        case .setupApp: "/account/security/setup/app"
        case .setupAppFactor(let id): "/account/security/setup/app/\(id.uuidString)"
        case .setupSMS: "/account/security/setup/sms"
        case .setupSMSFactor(let id): "/account/security/setup/sms/\(id.uuidString)"
        case .setupSMSResend(let id): "/account/security/setup/sms/\(id.uuidString)/resend"
        case .setupPushStart: "/account/security/setup/push"
        case .setupPasskey: "/account/security/setup/passkey"
        case .twoFactorPasskey: "/login/two-factor/passkey"
        case .loginPasskey: "/login/passkey"
        case .stepUpPasskey(let id): "/step-up/\(id.uuidString)/passkey"
        case .stepUpPasskeyOptions(let id): "/step-up/\(id.uuidString)/passkey/options"
        case .apiPasskeyRegistrationOptions: "/api/v1/me/factors/webauthn/options"
        case .apiPasskeySignInOptions: "/api/v1/login/webauthn/options"
        case .setupPush(let id): "/account/security/setup/push/\(id.uuidString)"
        case .setupPushStatus(let id): "/account/security/setup/push/\(id.uuidString)/status"
        case .twoFactorPush(let id): "/login/two-factor/push/\(id.uuidString)"
        case .stepUp(let id): "/step-up/\(id.uuidString)"
        case .recoveryCodesSaved: "/account/security/recovery-codes/saved"
        case .security: "/account/security"
        case .securityRecoveryCodes: "/account/security/recovery-codes"
        case .securityDisable: "/account/security/disable"
        case .securityBrowserRevoke(let id): "/account/security/browsers/\(id.uuidString)/revoke"
        case .securityFactorRemove(let id): "/account/security/factors/\(id.uuidString)/remove"
        case .securityFactorPrimary(let id): "/account/security/factors/\(id.uuidString)/primary"
        case .securityFactorRename(let id): "/account/security/factors/\(id.uuidString)/rename"
        case .securityFactorReportLost(let id): "/account/security/factors/\(id.uuidString)/report-lost"
        case .profile: "/account/profile"
        case .password: "/account/password"
        case .styles: "/assets/twofold.css"
        case .script: "/assets/twofold.js"
        case .invitation(let token): "/invite/\(token)"
        case .forgotPassword: "/login/forgot"
        case .passwordReset(let token): "/login/reset/\(token)"
        case .emailConfirm(let token): "/account/email/confirm/\(token)"
        }
    }
}
