import Fluent
import Foundation
import Testing
import VaporTesting

@testable import TwofoldServer

/// Every administration route and API path, walked as four kinds of unwelcome caller.
@Suite("Administration: tenancy and permissions")
struct AdminAccessTests {
    struct Endpoint: CustomStringConvertible, Sendable {
        var method: HTTPMethod
        var path: @Sendable (UUID) -> String
        var api: Bool
        var takesUserID: Bool
        var description: String { "\(method) \(path(UUID(uuidString: "00000000-0000-0000-0000-000000000000")!))" }
    }

    static let endpoints: [Endpoint] = [
        .init(method: .GET, path: { _ in "/admin/staff" }, api: false, takesUserID: false),
        .init(method: .GET, path: { _ in "/admin/staff/new" }, api: false, takesUserID: false),
        .init(method: .POST, path: { _ in "/admin/staff" }, api: false, takesUserID: false),
        .init(method: .GET, path: { "/admin/staff/\($0)" }, api: false, takesUserID: true),
        .init(method: .GET, path: { "/admin/staff/\($0)/edit" }, api: false, takesUserID: true),
        .init(method: .POST, path: { "/admin/staff/\($0)/edit" }, api: false, takesUserID: true),
        .init(method: .GET, path: { "/admin/staff/\($0)/delete" }, api: false, takesUserID: true),
        .init(method: .POST, path: { "/admin/staff/\($0)/delete" }, api: false, takesUserID: true),
        .init(method: .GET, path: { "/admin/staff/\($0)/two-factor/setup" }, api: false, takesUserID: true),
        .init(method: .POST, path: { "/admin/staff/\($0)/two-factor/setup" }, api: false, takesUserID: true),
        .init(method: .POST, path: { "/admin/staff/\($0)/two-factor/disable" }, api: false, takesUserID: true),
        .init(method: .GET, path: { _ in "/admin/practice" }, api: false, takesUserID: false),
        .init(method: .POST, path: { _ in "/admin/practice" }, api: false, takesUserID: false),
        .init(method: .GET, path: { _ in "/admin/api-keys" }, api: false, takesUserID: false),
        .init(method: .POST, path: { _ in "/admin/api-keys" }, api: false, takesUserID: false),
        .init(method: .POST, path: { "/admin/api-keys/\($0)/revoke" }, api: false, takesUserID: true),
        .init(method: .GET, path: { _ in "/admin/radius" }, api: false, takesUserID: false),
        .init(method: .POST, path: { _ in "/admin/radius" }, api: false, takesUserID: false),
        .init(method: .POST, path: { "/admin/radius/\($0)/revoke" }, api: false, takesUserID: true),
        .init(method: .GET, path: { _ in "/admin/audit" }, api: false, takesUserID: false),
        .init(method: .GET, path: { _ in "/admin/audit.csv" }, api: false, takesUserID: false),
        .init(method: .GET, path: { _ in "/api/v1/practice" }, api: true, takesUserID: false),
        .init(method: .PATCH, path: { _ in "/api/v1/practice" }, api: true, takesUserID: false),
        .init(method: .GET, path: { _ in "/api/v1/practice/users" }, api: true, takesUserID: false),
        .init(method: .POST, path: { "/api/v1/practice/users/\($0)/two-factor/setup" }, api: true, takesUserID: true),
        .init(method: .POST, path: { "/api/v1/practice/users/\($0)/two-factor/disable" }, api: true, takesUserID: true),
        .init(method: .GET, path: { _ in "/api/v1/practice/audit" }, api: true, takesUserID: false),
    ]

    struct World {
        var victim: User
        var otherAdmin: APIClient
        var staff: APIClient
        var halfSignedIn: APIClient
    }

    static func world(_ ctx: TestContext) async throws -> World {
        let riverside = try await Fixtures.practice(ctx)
        let lakeside = try await Fixtures.practice(ctx, name: "Lakeside Pediatrics")
        let victim = try await Fixtures.user(ctx, practice: riverside, username: "victim")
        _ = try await Fixtures.user(ctx, practice: riverside, username: "admin.a", admin: true)
        _ = try await Fixtures.user(ctx, practice: lakeside, username: "admin.b", admin: true)
        _ = try await Fixtures.user(ctx, practice: riverside, username: "plain.staff", role: .staff)
        _ = try await Fixtures.user(ctx, practice: riverside, username: "half")
        _ = try await Flows.enrollTOTP(ctx, username: "half")
        return World(
            victim: victim,
            otherAdmin: try await APIClient.login(ctx, username: "admin.b").0,
            staff: try await APIClient.login(ctx, username: "plain.staff").0,
            halfSignedIn: try await Flows.halfSignedIn(ctx, username: "half"))
    }

    static func body(_ endpoint: Endpoint) -> [String: any Sendable]? {
        guard endpoint.method != .GET else { return nil }
        // The JSON API refuses fields an operation does not take, so each operation gets only its own; the pages ignore extras.
        guard endpoint.api else {
            return [
                "adminPassword": Fixtures.password, "rememberBrowserDays": 14, "firstName": "X", "lastName": "Y", "email": "x@example.org",
            ]
        }
        if endpoint.method == .PATCH { return ["adminPassword": Fixtures.password, "rememberBrowserDays": 14] }
        return ["adminPassword": Fixtures.password]
    }

    @Test func anotherPracticesAdminGetsNotFoundForIDsAndSeesOnlyTheirOwnPractice() async throws {
        try await withTestApp { ctx in
            let world = try await Self.world(ctx)
            for endpoint in Self.endpoints {
                let response = try await world.otherAdmin.send(endpoint.method, endpoint.path(world.victim.id!), json: Self.body(endpoint))
                if endpoint.takesUserID {
                    #expect(response.status == .notFound, "\(endpoint) → \(response.status) \(response.text)")
                } else {
                    #expect(!response.text.contains("victim"), "\(endpoint) leaked another practice's user")
                    #expect(!response.text.contains("Riverside"), "\(endpoint) leaked another practice")
                }
            }
            // nothing happened to the victim
            let victim = try #require(try await User.find(world.victim.id, on: ctx.app.db))
            #expect(victim.twoFactorRequired == false)
            let riverside = try #require(try await Practice.find(victim.$practice.id, on: ctx.app.db))
            #expect(riverside.mandatoryTwoFactor == false)
        }
    }

    @Test func staffWithoutManageAccountsIsForbidden() async throws {
        try await withTestApp { ctx in
            let world = try await Self.world(ctx)
            for endpoint in Self.endpoints {
                let response = try await world.staff.send(endpoint.method, endpoint.path(world.victim.id!), json: Self.body(endpoint))
                #expect(response.status == .forbidden, "\(endpoint) → \(response.status)")
            }
        }
    }

    @Test func signedOutClientsAreSentToSignIn() async throws {
        try await withTestApp { ctx in
            let world = try await Self.world(ctx)
            for endpoint in Self.endpoints {
                let response = try await APIClient(ctx).send(endpoint.method, endpoint.path(world.victim.id!), json: Self.body(endpoint))
                if endpoint.api {
                    #expect(response.status == .unauthorized, "\(endpoint) → \(response.status)")
                } else if endpoint.method == .GET {
                    #expect(response.status == .seeOther && response.location == "/login", "\(endpoint) → \(response.status)")
                } else {
                    // a form post without a session fails the CSRF check before anything else
                    #expect(response.status == .forbidden, "\(endpoint) → \(response.status)")
                }
            }
        }
    }

    @Test func halfSignedInClientsReachNoAdministration() async throws {
        try await withTestApp { ctx in
            let world = try await Self.world(ctx)
            for endpoint in Self.endpoints {
                let response = try await world.halfSignedIn.send(
                    endpoint.method, endpoint.path(world.victim.id!), json: Self.body(endpoint))
                if endpoint.api {
                    #expect(response.status == .unauthorized, "\(endpoint) → \(response.status)")
                } else {
                    #expect(response.location == "/login/two-factor", "\(endpoint) → \(response.status)")
                }
            }
        }
    }
}
