import Vapor

enum PushError: AbortError, Equatable {
    case notAllowed
    case noDevice
    case enrollmentInvalid(minutes: Int)
    case malformedKey
    case badProof
    case deviceUnknown
    case deviceRejected(String)
    case replayedRequest
    case challengeNotFound
    case challengeClosed
    case wrongNumber
    case tooManyChallenges
    case notApproved(String)

    var status: HTTPResponseStatus {
        switch self {
        case .notAllowed: .forbidden
        case .noDevice, .challengeNotFound: .notFound
        case .enrollmentInvalid, .deviceUnknown, .deviceRejected, .replayedRequest, .badProof: .unauthorized
        case .malformedKey: .badRequest
        case .challengeClosed, .notApproved: .conflict
        case .wrongNumber: .unprocessableEntity
        case .tooManyChallenges: .tooManyRequests
        }
    }

    var reason: String {
        switch self {
        case .notAllowed: "Your practice does not allow push notification devices. Choose another method."
        case .noDevice: "There is no active push device on this account. Choose another method."
        case .enrollmentInvalid(let minutes):
            "This enrollment link is not valid: it was used already or is older than \(minutes) minutes. Start the set-up again."
        case .malformedKey: "publicKey must be an uncompressed P-256 public key (65 bytes, base64url)."
        case .badProof: "The enrollment proof does not verify with the public key sent."
        case .deviceUnknown: "This device is not enrolled (or was removed). Enroll it again."
        case .deviceRejected(let why): why
        case .replayedRequest: "This signed request was already used; every request needs a new nonce."
        case .challengeNotFound: "There is no such push request."
        case .challengeClosed: "This push request was already answered or has expired."
        case .wrongNumber:
            "The number does not match the one shown in the browser, so the request was refused. If you did not start this sign-in, report it."
        case .tooManyChallenges: "Too many push requests in a short time. Wait a few minutes or use another method."
        case .notApproved(let status): "The push request is \(status), not approved."
        }
    }
}
