import Foundation
import Testing
import VaporTesting

@testable import TwofoldServer

/// Multi-step flows many tests start from.
enum Flows {
    struct Enrolled {
        var client: APIClient
        var secret: String
        var recoveryCodes: [String]
        var factorID: String
    }

    /// Signs in (2FA off) and enrolls an authenticator app over the API.
    static func enrollTOTP(_ ctx: TestContext, username: String = "dr.smith") async throws -> Enrolled {
        let (client, _, _) = try await APIClient.login(ctx, username: username)
        let start = try await client.send(.POST, "/api/v1/me/factors/totp", json: ["password": Fixtures.password])
        #expect(start.status == .ok, "\(start.text)")
        let secret = try #require(start.json["secret"] as? String)
        let factorID = try #require(start.json["factorId"] as? String)
        let activate = try await client.send(
            .POST, "/api/v1/me/factors/\(factorID)/activate", json: ["code": try Fixtures.code(secret, at: ctx.clock.now)])
        #expect(activate.status == .ok, "\(activate.text)")
        let codes = activate.json["recoveryCodes"] as? [String] ?? []
        return Enrolled(client: client, secret: secret, recoveryCodes: codes, factorID: factorID)
    }

    /// Password step for a user who has a factor: returns the half-signed-in client.
    static func halfSignedIn(_ ctx: TestContext, username: String = "dr.smith") async throws -> APIClient {
        let (client, body, status) = try await APIClient.login(ctx, username: username)
        #expect(status == .ok)
        #expect(body["status"] as? String == "second_factor_required")
        return client
    }
}
