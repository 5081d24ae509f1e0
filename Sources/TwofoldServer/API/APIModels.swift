import Foundation
import TwofoldAPI
import Vapor

// The API's bodies are the types generated from openapi.yaml (`API.…`); these build them from the models.

extension API.Factor: Content {}
extension API.LoginRequest: Content {}
extension API.LoginResponse: Content {}
extension API.VerifyCodeRequest: Content {}
extension API.AuthenticatedResponse: Content {}
extension API.CodeRequest: Content {}
extension API.SMSSent: Content {}
extension API.Me: Content {}
extension API.PasswordConfirmation: Content {}
extension API.AdminPasswordConfirmation: Content {}
extension API.NewFactorRequest: Content {}
extension API.TOTPEnrollment: Content {}
extension API.SMSEnrollment: Content {}
extension API.PushEnrollment: Content {}
extension API.Activation: Content {}
extension API.UpdateFactorRequest: Content {}
extension API.RecoveryCodes: Content {}
extension API.DeleteFactorRequest: Content {}
extension API.DisableTwoFactorRequest: Content {}
extension API.Browser: Content {}
extension API.StartPushSignInRequest: Content {}
extension API.PushStarted: Content {}
extension API.PushSignInStatus: Content {}
extension API.PasskeySignedIn: Content {}
extension API.ForgotPasswordRequest: Content {}
extension API.ForgotPasswordAccepted: Content {}
extension API.ResetPasswordRequest: Content {}
extension API.PasswordResetSent: Content {}
extension API.UsersPage: Content {}
extension API.CreateUserRequest: Content {}
extension API.CreatedUser: Content {}
extension API.Invitation: Content {}
extension API.Application: Content {}
extension API.CreateApplicationRequest: Content {}
extension API.UpdateApplicationRequest: Content {}
extension API.ApplicationSecret: Content {}
extension API.CreateStepUpRequest: Content {}
extension API.StepUpCreated: Content {}
extension API.VerifyStepUpRequest: Content {}
extension API.StepUpAssertion: Content {}
extension API.PushStepUpRequest: Content {}
extension API.StepUpPush: Content {}

extension API.Factor {
    /// A second factor as the JSON API shows it; never includes a key.
    init(_ factor: TwofoldServer.Factor) throws {
        self.init(
            id: try factor.requireID().uuidString, shortId: factor.shortID, kind: try .documented(factor.kind.rawValue),
            nickname: factor.nickname, primary: factor.isPrimary, status: try .documented(factor.status.rawValue),
            createdAt: factor.createdAt, lastUsedAt: factor.lastUsedAt, phone: factor.phone.map(SMSCodeService.maskedPhone),
            synced: factor.kind == .webauthn ? (factor.backupEligible ?? false) : nil,
            aaguid: factor.kind == .webauthn ? factor.aaguid : nil)
    }

    /// In the user's own factor list: whether the practice counts this device as a hard token for EPCS signing
    /// (21 CFR 1311.115, 1311.116).
    init(_ factor: TwofoldServer.Factor, epcsEligible: Bool) throws {
        try self.init(factor)
        self.epcsEligible = epcsEligible
    }
}

extension API.Activation {
    init(_ activation: FactorService.Activation) throws {
        self.init(
            factor: try API.Factor(activation.factor), recoveryCodes: activation.recoveryCodes?.map(\.value),
            token: activation.sessionToken)
    }
}

extension API.Browser {
    init(_ browser: RememberedBrowser) throws {
        self.init(
            id: try browser.requireID().uuidString, browser: browser.userAgent, createdAt: browser.createdAt,
            lastUsedAt: browser.lastUsedAt, lastIP: browser.lastIP, expiresAt: browser.expiresAt)
    }
}

extension API.Invitation {
    init(_ invitation: TwofoldServer.Invitation) {
        self.init(expiresAt: invitation.expiresAt, sentCount: invitation.sentCount)
    }
}

extension API.Application {
    /// `secret` only in the answer to a create: shown this once (absent for a public client).
    init(_ client: OIDCClient, secret: String? = nil) throws {
        self.init(
            clientId: client.clientID, name: client.name, _type: client.isPublic ? ._public : .confidential, enabled: client.enabled,
            redirectUris: client.redirectURIs, postLogoutRedirectUris: client.postLogoutRedirectURIs,
            backchannelLogoutUri: client.backchannelLogoutURI, startUrl: client.startURL,
            idTokenAlg: try .documented(client.idTokenAlgorithm),
            allowOfflineAccess: client.allowOfflineAccess, createdAt: client.createdAt, updatedAt: client.updatedAt, clientSecret: secret)
    }
}
