import Foundation
import Testing
import VaporTesting

@testable import TwofoldServer

@Suite("Password step")
struct PasswordStepTests {
    @Test func userWithoutFactorIsSignedInDirectly() async throws {
        try await withTestApp { ctx in
            // setup
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            // act
            let (client, body, status) = try await APIClient.login(ctx)
            // verify
            #expect(status == .ok)
            #expect(body["status"] as? String == "authenticated")
            let me = try await client.send(.GET, "/api/v1/me")
            #expect(me.json["username"] as? String == "dr.smith")
            #expect(me.json["twoFactorEnabled"] as? Bool == false)
        }
    }

    @Test func wrongPasswordAndUnknownUserGetTheSameAnswer() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let (_, wrong, wrongStatus) = try await APIClient.login(ctx, password: "not the password")
            let (_, unknown, unknownStatus) = try await APIClient.login(ctx, username: "nobody")
            #expect(wrongStatus == .unauthorized)
            #expect(unknownStatus == .unauthorized)
            #expect(wrong["reason"] as? String == unknown["reason"] as? String)
            #expect(wrong["reason"] as? String == "The username or password is incorrect.")
            #expect(wrong["token"] == nil)
        }
    }

    @Test func usernameIsCaseInsensitive() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice, username: "Dr.Jones")
            let (_, body, status) = try await APIClient.login(ctx, username: "DR.JONES")
            #expect(status == .ok)
            #expect(body["status"] as? String == "authenticated")
            await #expect(throws: (any Error).self) { _ = try await Fixtures.user(ctx, practice: practice, username: "dr.jones") }
        }
    }

    @Test func wrongPasswordsAreThrottledPerAccount() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            for _ in 0..<10 {
                let (_, _, status) = try await APIClient.login(ctx, password: "guess guess")
                #expect(status == .unauthorized)
            }
            // Even the right password is refused until the window ends.
            let blocked = try await APIClient(ctx).send(
                .POST, "/api/v1/login", json: ["username": "dr.smith", "password": Fixtures.password])
            #expect(blocked.status == .tooManyRequests)
            #expect(blocked.headers.first(name: "Retry-After") != nil)
            #expect(blocked.reason.contains("Too many unsuccessful sign-in attempts"))
            ctx.clock.advance(15 * 60 + 1)
            let (_, _, status) = try await APIClient.login(ctx)
            #expect(status == .ok)
        }
    }

    @Test func wrongPasswordsAreThrottledPerAddress() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            for index in 0..<100 {
                let (_, _, status) = try await APIClient.login(ctx, username: "user\(index)", password: "guess guess")
                #expect(status == .unauthorized)
            }
            let (_, _, status) = try await APIClient.login(ctx)
            #expect(status == .tooManyRequests)
        }
    }

    @Test func passwordsLongerThanBcryptReadsAreRefused() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let long = String(repeating: "a", count: 73)
            await #expect(throws: (any Error).self) {
                _ = try await AccountProvisioning(database: ctx.app.db, passwords: ctx.app.password.async, now: ctx.clock.now).createUser(
                    .init(
                        practiceID: practice.id!, username: "long", firstName: "L", lastName: "L", email: "l@example.org",
                        cellPhone: nil, role: .staff, permissions: [], password: long))
            }
        }
    }

    @Test func badJSONGetsAClearFourHundred() async throws {
        try await withTestApp { ctx in
            let missing = try await APIClient(ctx).send(.POST, "/api/v1/login", json: ["username": "x"])
            #expect(missing.status == .badRequest)
            #expect(missing.json["error"] as? Bool == true)
            #expect(!missing.reason.isEmpty)
            let wrongType = try await APIClient(ctx).send(.POST, "/api/v1/login", json: ["username": 5, "password": true])
            #expect(wrongType.status == .badRequest)
        }
    }
}
