import Fluent
import Foundation
import Testing
import VaporTesting

@testable import TwofoldServer

@Suite("Text-message codes")
struct SMSTests {
    /// A user whose only factor is SMS, enrolled over the API.
    static func enrollSMS(_ ctx: TestContext) async throws -> APIClient {
        let (client, _, _) = try await APIClient.login(ctx)
        let start = try await client.send(.POST, "/api/v1/me/factors/sms", json: ["password": Fixtures.password])
        #expect(start.status == .ok, "\(start.text)")
        #expect(start.json["sentTo"] as? String == "•••4567")
        let factorID = try #require(start.json["factorId"] as? String)
        let code = try #require(try await Fixtures.latestOutboxCode(ctx))
        let activate = try await client.send(.POST, "/api/v1/me/factors/\(factorID)/activate", json: ["code": code])
        #expect(activate.status == .ok, "\(activate.text)")
        return client
    }

    @Test func smsSignInWithACodeFromTheOutbox() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Self.enrollSMS(ctx)
            ctx.clock.advance(31)
            let client = try await Flows.halfSignedIn(ctx)
            let send = try await client.send(.POST, "/api/v1/login/sms")
            #expect(send.status == .ok)
            #expect(send.json["expiresInSeconds"] as? Int == 600)
            let code = try #require(try await Fixtures.latestOutboxCode(ctx))
            #expect(code.count == 6 && code.allSatisfy(\.isNumber))
            let message = try #require(try await OutboxMessage.query(on: ctx.app.db).sort(\.$createdAt, .descending).first())
            #expect(message.body.contains("Riverside Family Medicine"))
            #expect(!message.body.contains("http"))
            #expect(try await client.send(.POST, "/api/v1/login/verify", json: ["code": code]).status == .ok)
            // single use
            ctx.clock.advance(31)
            let again = try await Flows.halfSignedIn(ctx)
            #expect(try await again.send(.POST, "/api/v1/login/verify", json: ["code": code]).status == .unauthorized)
        }
    }

    @Test func codesExpireAfterTenMinutes() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Self.enrollSMS(ctx)
            ctx.clock.advance(31)
            let client = try await Flows.halfSignedIn(ctx)
            #expect(try await client.send(.POST, "/api/v1/login/sms").status == .ok)
            let code = try #require(try await Fixtures.latestOutboxCode(ctx))
            ctx.clock.advance(10 * 60 + 1)
            let late = try await client.send(.POST, "/api/v1/login/verify", json: ["code": code])
            #expect(late.status == .unauthorized)
        }
    }

    @Test func sendingIsLimitedPerThirtySecondsAndPerHour() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Self.enrollSMS(ctx) // one send
            let client = try await Flows.halfSignedIn(ctx)
            let tooSoon = try await client.send(.POST, "/api/v1/login/sms")
            #expect(tooSoon.status == .tooManyRequests)
            #expect(tooSoon.reason.contains("Wait"))
            for _ in 0..<4 {
                ctx.clock.advance(31)
                #expect(try await client.send(.POST, "/api/v1/login/sms").status == .ok)
            }
            ctx.clock.advance(31)
            let hourly = try await client.send(.POST, "/api/v1/login/sms")
            #expect(hourly.status == .tooManyRequests)
            #expect(try await OutboxMessage.query(on: ctx.app.db).count() == 5)
            ctx.clock.advance(3600)
            // the pending sign-in has gone idle meanwhile; a new one may send again
            let later = try await Flows.halfSignedIn(ctx)
            #expect(try await later.send(.POST, "/api/v1/login/sms").status == .ok)
        }
    }

    /// The profile's cell phone (typed by an administrator, or imported) was never confirmed: it is not a factor.
    @Test func profilePhoneIsNoFactorForAnAuthenticatorAppUser() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Flows.enrollTOTP(ctx)
            let (half, body, _) = try await APIClient.login(ctx)
            #expect(body["smsAvailable"] as? Bool == false)
            let refused = try await half.send(.POST, "/api/v1/login/sms")
            #expect(refused.status == .badRequest)
            #expect(refused.reason.contains("not set up text messages"))
            #expect(try await OutboxMessage.query(on: ctx.app.db).count() == 0)
        }
    }

    @Test func noCellPhoneGivesAClearMessage() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice, cell: nil)
            _ = try await Flows.enrollTOTP(ctx)
            let client = try await Flows.halfSignedIn(ctx)
            let response = try await client.send(.POST, "/api/v1/login/sms")
            #expect(response.status == .badRequest)
            #expect(response.reason.contains("not set up text messages"))
        }
    }
}
