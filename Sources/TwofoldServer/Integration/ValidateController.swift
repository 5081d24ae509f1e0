import Fluent
import TwofoldAPI
import TwofoldCore
import Vapor

/// `POST /api/v1/validate`: one call for a VPN, remote-desktop gateway or PAM module to check a user's code,
/// under the sign-in rules (single-use steps, guessing limits, audit) and without revealing whether a user exists.
struct ValidateController: RouteCollection {
    /// How long a username may be (also stated in `openapi.yaml`).
    static let usernameLength = 1...128

    func boot(routes: any RoutesBuilder) throws {
        routes.grouped(APIKeyGuard()).on(.POST, APIPath.validate, body: .collect(maxSize: "4kb"), use: validate)
    }

    @Sendable func validate(req: Request) async throws -> API.ValidationResult {
        guard let key = req.apiKey else { throw Abort(.unauthorized) }
        let body = try req.apiBody(API.ValidateRequest.self)
        guard Self.usernameLength.contains(body.username.count) else {
            throw Abort(
                .badRequest,
                reason: "username must be \(Self.usernameLength.lowerBound) to \(Self.usernameLength.upperBound) characters.")
        }
        guard let code = SecondFactorCheck.normalize(body.code) else { throw Abort(.badRequest, reason: "code must be 6 to 8 digits.") }
        // Queued to the database's writer, which judges it under ``SecondFactorCheck``'s rules in a batch with the
        // verifications that arrive alongside it.
        let accepted = try await req.application.verificationWriter.verify(
            VerificationWriter.Item(
                context: req.serviceContext, practiceID: key.$practice.id, apiKeyID: try key.requireID(), apiKeyName: key.name,
                usernameKey: User.key(for: body.username), code: code))
        return API.ValidationResult(result: accepted ? .accept : .reject)
    }
}

extension API.ValidateRequest: Content {}
extension API.ValidationResult: Content {}
