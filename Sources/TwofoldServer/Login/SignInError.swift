import Vapor

/// What can go wrong while signing in, in words a provider at a front desk can act on.
enum SignInError: AbortError, Equatable {
    case invalidCredentials
    case passwordThrottled(retryAfter: Int)
    case wrongCode
    case codeAlreadyUsed
    case wait(seconds: Int)
    case locked(minutes: Int)
    case lockedUntilReset
    case pendingSignInCancelled
    case wrongRecoveryCode
    case unknownFactor
    case malformedCode

    var status: HTTPResponseStatus {
        switch self {
        case .invalidCredentials, .wrongCode, .codeAlreadyUsed, .wrongRecoveryCode, .pendingSignInCancelled: .unauthorized
        case .passwordThrottled, .wait, .locked: .tooManyRequests
        case .lockedUntilReset: .forbidden
        case .unknownFactor, .malformedCode: .badRequest
        }
    }

    var reason: String {
        switch self {
        case .invalidCredentials: "The username or password is incorrect."
        case .passwordThrottled(let seconds): "Too many unsuccessful sign-in attempts. Try again in \(Self.duration(seconds))."
        case .wrongCode: "That code is not correct. Check the code and try again."
        case .codeAlreadyUsed: "That code has already been used. Wait for your app to show a new code, then enter it."
        case .wait(let seconds): "Too many wrong codes. Wait \(Self.duration(seconds)) before trying again."
        case .locked(let minutes):
            "Too many wrong codes: two-factor sign-in is locked for \(minutes) minutes. Try again later or contact your practice administrator."
        case .lockedUntilReset:
            "Two-factor sign-in is locked after too many wrong codes. Ask your practice administrator to reset your two-factor authentication."
        case .pendingSignInCancelled: "Too many wrong codes. For your security, sign in again with your password."
        case .wrongRecoveryCode: "That recovery code is not valid or has already been used."
        case .unknownFactor: "That sign-in method does not exist on your account. Choose one of your methods."
        case .malformedCode: "Enter the 6 to 8 digit code, digits only."
        }
    }

    var headers: HTTPHeaders {
        switch self {
        case .passwordThrottled(let seconds), .wait(let seconds): ["Retry-After": String(seconds)]
        case .locked(let minutes): ["Retry-After": String(minutes * 60)]
        default: [:]
        }
    }

    static func duration(_ seconds: Int) -> String {
        seconds < 90 ? "\(seconds) second\(seconds == 1 ? "" : "s")" : "\(Int((Double(seconds) / 60).rounded(.up))) minutes"
    }
}
