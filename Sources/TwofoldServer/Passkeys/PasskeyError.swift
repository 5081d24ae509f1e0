import TwofoldCore
import Vapor

enum PasskeyError: AbortError, Equatable {
    case notAllowed
    case passwordlessOff
    case noPasskeys
    case challengeUnknown
    case invalidCredential
    case rejected(WebAuthnError)
    case unknownCredential
    case alreadyRegistered
    case cloned
    case alreadySignedIn

    var status: HTTPResponseStatus {
        switch self {
        case .notAllowed, .passwordlessOff: .forbidden
        case .noPasskeys, .alreadyRegistered, .alreadySignedIn: .conflict
        case .challengeUnknown, .invalidCredential: .badRequest
        case .rejected(.malformed): .badRequest
        case .rejected, .unknownCredential, .cloned: .unauthorized
        }
    }

    var reason: String {
        switch self {
        case .notAllowed: "Your practice does not allow passkeys or security keys. Choose another method."
        case .passwordlessOff: "Passwordless sign-in is not turned on for this practice. Sign in with your username and password."
        case .noPasskeys: "There is no passkey or security key on this account. Choose another method."
        case .challengeUnknown:
            "This passkey request has expired or was already used (each lasts \(Int(TwofoldPolicy.standard.passkeys.challengeLifetime / 60)) minutes and works once). Try again."
        case .invalidCredential: "Send the credential as the JSON that PublicKeyCredential.toJSON() produces."
        case .rejected(let error): "The passkey was not accepted. \(error.description)"
        case .unknownCredential:
            "That passkey is not registered with Twofold for this account (it may have been removed). Use another method."
        case .alreadyRegistered: "That passkey or security key is already registered."
        case .cloned:
            "This security key's signature counter went backwards, which can mean it was copied, so Twofold refused it. Use another method and tell your administrator."
        case .alreadySignedIn: "You are already signed in."
        }
    }
}
