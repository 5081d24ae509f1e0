import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// A practice ready for EPCS: two EPCS access approvers (administrators with authenticator apps; the second is a
/// DEA registrant) and a prescriber with an authenticator app, all signed in over the API.
struct EPCSHarness {
    static let deaNumber = "AB1234563"
    static let otherDEANumber = "BS7654329"
    static let badCheckDigit = "AB1234564"
    static let action: [String: any Sendable] = [
        "type": "epcs", "summary": "Oxycodone 5 mg tablet, #20, 1 every 6 hours as needed for pain",
        "hash": "4f1c2e0b7a6d5c4b3a29181706f5e4d3c2b1a09f8e7d6c5b4a39281706f5e4d3",
    ]

    let ctx: TestContext
    let practice: Practice
    /// Enters grants; not a DEA registrant.
    let first: Flows.Enrolled
    let firstUser: User
    /// Approves grants; a DEA registrant.
    let second: Flows.Enrolled
    let secondUser: User
    /// dr.smith, the prescriber.
    let prescriber: Flows.Enrolled
    let prescriberUser: User

    var firstClient: APIClient { first.client }
    var secondClient: APIClient { second.client }

    /// Sets the practice up. With `designate: false` the approvers are not designated yet.
    static func make(_ ctx: TestContext, designate: Bool = true, prescriberHasTOTP: Bool = true) async throws -> EPCSHarness {
        let practice = try await Fixtures.practice(ctx)
        let firstUser = try await Fixtures.user(ctx, practice: practice, username: "approver.one", admin: true)
        let secondUser = try await Fixtures.user(ctx, practice: practice, username: "approver.two", admin: true)
        let prescriberUser = try await Fixtures.user(ctx, practice: practice, username: "dr.smith")
        let first = try await Flows.enrollTOTP(ctx, username: "approver.one")
        let second = try await Flows.enrollTOTP(ctx, username: "approver.two")
        let prescriber =
            prescriberHasTOTP
            ? try await Flows.enrollTOTP(ctx, username: "dr.smith")
            : Flows.Enrolled(client: try await APIClient.login(ctx, username: "dr.smith").0, secret: "", recoveryCodes: [], factorID: "")
        let harness = EPCSHarness(
            ctx: ctx, practice: practice, first: first, firstUser: firstUser, second: second, secondUser: secondUser,
            prescriber: prescriber, prescriberUser: prescriberUser)
        if designate {
            try await harness.designate(firstUser, approver: true, registrant: false)
            try await harness.designate(secondUser, approver: true, registrant: true)
        }
        // Codes used while enrolling are spent: the next codes come from the next time step.
        ctx.clock.advance(30)
        return harness
    }

    /// An administrator designates an approver (approver one acts, as any administrator may).
    func designate(_ user: User, approver: Bool, registrant: Bool, by client: APIClient? = nil) async throws {
        let response = try await (client ?? firstClient).send(
            .PUT, "/api/v1/practice/users/\(try user.requireID())/epcs/approver",
            json: [
                "approver": approver, "deaRegistrant": registrant, "adminPassword": Fixtures.password,
            ])
        #expect(response.status == .ok, "\(response.text)")
        #expect(response.json["approver"] as? Bool == approver)
        #expect(response.json["deaRegistrant"] as? Bool == registrant)
    }

    /// A day relative to the test clock, YYYY-MM-DD (UTC).
    func day(_ days: Int) -> String {
        EPCSDay.string(ctx.clock.now.addingTimeInterval(TimeInterval(days) * 86_400))
    }

    func grantBody(deaNumber: String = EPCSHarness.deaNumber, expiresInDays: Int = 365, states: [String] = ["NY", "NJ"]) -> [String:
        any Sendable]
    {
        [
            "deaNumber": deaNumber, "deaExpiresOn": day(expiresInDays), "states": states,
            "proofing": ["provider": "ID.me", "date": day(-30), "level": "IAL2", "reference": "IDME-2030-0042"] as [String: any Sendable],
            "adminPassword": Fixtures.password,
        ]
    }

    /// The first step, by `client` (approver one unless told): returns the answer.
    func enter(for user: User? = nil, by client: APIClient? = nil, body: [String: any Sendable]? = nil) async throws -> TestingHTTPResponse
    {
        try await (client ?? firstClient).send(
            .POST, "/api/v1/practice/users/\(try (user ?? prescriberUser).requireID())/epcs/grants", json: body ?? grantBody())
    }

    /// The second step: `client` approves with a fresh code from `secret` at the clock's current time.
    func approve(_ grantID: String, by client: APIClient? = nil, secret: String? = nil) async throws -> TestingHTTPResponse {
        try await (client ?? secondClient).send(
            .POST, "/api/v1/practice/epcs/grants/\(grantID)/approve",
            json: ["code": try Fixtures.code(secret ?? second.secret, at: ctx.clock.now)])
    }

    /// Enters a grant with approver one and approves it with approver two; returns the grant id.
    @discardableResult
    func grant(_ user: User? = nil, body: [String: any Sendable]? = nil) async throws -> String {
        let entered = try await enter(for: user, body: body)
        #expect(entered.status == .created, "\(entered.text)")
        #expect(entered.json["status"] as? String == "pending_approval")
        let grantID = try #require(entered.json["grantId"] as? String)
        ctx.clock.advance(30)
        let approved = try await approve(grantID)
        #expect(approved.status == .ok, "\(approved.text)")
        #expect(approved.json["status"] as? String == "active")
        return grantID
    }

    func grants() async throws -> [[String: Any]] {
        let response = try await firstClient.send(.GET, "/api/v1/practice/epcs/grants")
        #expect(response.status == .ok, "\(response.text)")
        return response.json["grants"] as? [[String: Any]] ?? []
    }

    func grantRow(_ id: String) async throws -> [String: Any] {
        try #require(try await grants().first { $0["id"] as? String == id })
    }

    // MARK: step-up

    func apiKey() async throws -> String {
        try await APIKeyService(database: ctx.app.db, now: ctx.clock.now).create(practiceID: try practice.requireID(), name: "EHR").key
    }

    func startStepUp(key: String, username: String = "dr.smith", action: [String: any Sendable] = EPCSHarness.action) async throws
        -> TestingHTTPResponse
    {
        try await APIClient(ctx, token: key).send(.POST, "/api/v1/step-up", json: ["username": username, "action": action])
    }

    func events(_ type: AuditEventType) async throws -> [AuditEvent] {
        try await AuditEvent.query(on: ctx.app.db).filter(\.$event == type.rawValue).sort(\.$seq).all()
    }

    static func details(_ event: AuditEvent) -> [String: String] {
        (try? JSONDecoder().decode([String: String].self, from: Data(event.details.utf8))) ?? [:]
    }

    /// A 6-digit code none of the secret's accepted time steps (now and one either side) shows.
    func wrongCode(_ secret: String) throws -> String {
        let accepted = try [-30.0, 0, 30].map { try Fixtures.code(secret, at: ctx.clock.now.addingTimeInterval($0)) }
        return ["000000", "111111", "222222", "333333"].first { !accepted.contains($0) }!
    }

    /// Signs `username` in again with password and a code (advancing to a fresh time step first).
    func signIn(_ username: String, secret: String) async throws -> APIClient {
        ctx.clock.advance(30)
        let client = try await Flows.halfSignedIn(ctx, username: username)
        let verified = try await client.send(.POST, "/api/v1/login/verify", json: ["code": try Fixtures.code(secret, at: ctx.clock.now)])
        #expect(verified.status == .ok, "\(verified.text)")
        return client
    }
}
