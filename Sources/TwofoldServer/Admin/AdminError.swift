import Vapor

/// What an administrator can run into, with what to do about it.
enum AdminError: AbortError, Equatable {
    case notAllowed
    case userNotFound
    case noCellPhone(name: String)
    case ownTwoFactor
    case ownAccount
    case invalid(String)

    var status: HTTPResponseStatus {
        switch self {
        case .notAllowed: .forbidden
        case .userNotFound: .notFound
        case .noCellPhone, .ownTwoFactor, .ownAccount: .conflict
        case .invalid: .badRequest
        }
    }

    var reason: String {
        switch self {
        case .notAllowed: "This page is for practice administrators. Ask someone with the Manage Accounts permission."
        case .userNotFound: "There is no such user in your practice."
        case .noCellPhone(let name):
            "\(name) has no cell phone number on file. Add one to their account first (Edit), then set up two-factor authentication."
        case .ownTwoFactor: "To turn off your own two-factor authentication, use Account › Security; it asks for a current code."
        case .ownAccount: "You cannot delete your own account. Ask another administrator."
        case .invalid(let reason): reason
        }
    }
}
