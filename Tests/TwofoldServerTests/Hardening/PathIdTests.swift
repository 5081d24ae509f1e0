import Foundation
import Testing
import VaporTesting

@testable import TwofoldServer

/// An id in an API path that is not a UUID names no record: the answer is the operation's documented 404, the same
/// as for a well-formed id that matches nothing (found by the contract tests, Tests/e2e/test_contract.py).
@Suite("Hardening: malformed ids in API paths")
struct PathIdTests {
    static let malformed = ["not-an-id", "null%2Cnull", "%C2%86", "0", "\(UUID().uuidString)x"]

    static func expectSameAsMissing(_ send: (String) async throws -> TestingHTTPResponse) async throws {
        let missing = try await send(UUID().uuidString)
        #expect(missing.status == .notFound, "\(missing.text)")
        for id in malformed {
            let response = try await send(id)
            #expect(response.status == .notFound, "\(id): \(response.text)")
            #expect(response.reason == missing.reason, "\(id): \(response.text)")
            #expect(response.headers.contentType?.subType == "json")
        }
    }

    @Test func ownFactorsAndBrowsers() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let (api, _, _) = try await APIClient.login(ctx)
            let password = ["password": Fixtures.password]
            try await Self.expectSameAsMissing {
                try await api.send(.PATCH, "/api/v1/me/factors/\($0)", json: ["nickname": "Phone", "password": Fixtures.password])
            }
            try await Self.expectSameAsMissing { try await api.send(.DELETE, "/api/v1/me/factors/\($0)", json: password) }
            try await Self.expectSameAsMissing { try await api.send(.POST, "/api/v1/me/factors/\($0)/activate", json: ["code": "123456"]) }
            try await Self.expectSameAsMissing { try await api.send(.DELETE, "/api/v1/me/browsers/\($0)", json: password) }
        }
    }

    @Test func pushSignInStatus() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Flows.enrollTOTP(ctx)
            let pending = try await Flows.halfSignedIn(ctx)
            try await Self.expectSameAsMissing { try await pending.send(.GET, "/api/v1/login/push/\($0)") }
        }
    }

    @Test func stepUps() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let ehr = APIClient(ctx, token: try await StepUpBindingTests.key(ctx, practice: practice, name: "EHR").key)
            try await Self.expectSameAsMissing { try await ehr.send(.GET, "/api/v1/step-up/\($0)") }
            try await Self.expectSameAsMissing { try await ehr.send(.POST, "/api/v1/step-up/\($0)/verify", json: ["code": "123456"]) }
            try await Self.expectSameAsMissing { try await ehr.send(.POST, "/api/v1/step-up/\($0)/push", json: [:]) }
            try await Self.expectSameAsMissing { try await ehr.send(.POST, "/api/v1/step-up/\($0)/webauthn/options") }
        }
    }
}
