import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("SMS senders")
struct SMSSenderTests {
    @Test func twilioSenderPostsTheExactMessagesRequest() async throws {
        let fake = try await FakeHTTPServer.start(status: .created)
        let settings = TwofoldConfiguration.TwilioSettings(
            accountSID: "AC0123456789abcdef", authToken: "s3cret-token", fromNumber: "+15550001111",
            apiBaseURL: "http://127.0.0.1:\(fake.port)")
        do {
            try await withTestApp(smsSender: .twilio(settings)) { ctx in
                let practice = try await Fixtures.practice(ctx)
                _ = try await Fixtures.user(ctx, practice: practice)
                let (client, _, _) = try await APIClient.login(ctx)
                let start = try await client.send(.POST, "/api/v1/me/factors/sms", json: ["password": Fixtures.password])
                #expect(start.status == .ok)
                let factorID = try #require(start.json["factorId"] as? String)
                let request = try #require(fake.requests.first)
                #expect(request.method == .POST)
                #expect(request.path == "/2010-04-01/Accounts/AC0123456789abcdef/Messages.json")
                #expect(request.headers.basicAuthorization?.username == "AC0123456789abcdef")
                #expect(request.headers.basicAuthorization?.password == "s3cret-token")
                #expect(request.headers.contentType == .urlEncodedForm)
                let form = Self.parseForm(request.body)
                #expect(form["To"] == "+15551234567")
                #expect(form["From"] == "+15550001111")
                let body = try #require(form["Body"])
                #expect(body.contains("Riverside Family Medicine"))
                let code = String(body.prefix(6))
                #expect(try await client.send(.POST, "/api/v1/me/factors/\(factorID)/activate", json: ["code": code]).status == .ok)
                #expect(try await OutboxMessage.query(on: ctx.app.db).count() == 0)
            }
        } catch {
            await fake.stop()
            throw error
        }
        await fake.stop()
    }

    @Test func webhookSenderSignsTheJSONBody() async throws {
        let fake = try await FakeHTTPServer.start(status: .ok)
        let settings = TwofoldConfiguration.WebhookSettings(
            url: "http://127.0.0.1:\(fake.port)/sms", signingSecret: "0123456789abcdef-signing")
        do {
            try await withTestApp(smsSender: .webhook(settings)) { ctx in
                let practice = try await Fixtures.practice(ctx)
                _ = try await Fixtures.user(ctx, practice: practice)
                let (client, _, _) = try await APIClient.login(ctx)
                #expect(try await client.send(.POST, "/api/v1/me/factors/sms", json: ["password": Fixtures.password]).status == .ok)
                let request = try #require(fake.requests.first)
                #expect(request.path == "/sms")
                #expect(request.headers.contentType == .json)
                let timestamp = try #require(request.headers.first(name: "X-Twofold-Timestamp"))
                #expect(timestamp == String(Int(ctx.clock.now.timeIntervalSince1970)))
                let signature = try #require(request.headers.first(name: "X-Twofold-Signature"))
                #expect(
                    signature
                        == WebhookSender.signature(secret: settings.signingSecret, timestamp: timestamp, body: Data(request.body.utf8)))
                let payload = try JSONSerialization.jsonObject(with: Data(request.body.utf8)) as? [String: Any]
                #expect(payload?["to"] as? String == "+15551234567")
                #expect((payload?["body"] as? String)?.contains("sign-in code") == true)
            }
        } catch {
            await fake.stop()
            throw error
        }
        await fake.stop()
    }

    @Test func failingSenderGivesAClearMessageAndLeavesNoHalfMadeFactor() async throws {
        let fake = try await FakeHTTPServer.start(status: .internalServerError)
        let settings = TwofoldConfiguration.WebhookSettings(
            url: "http://127.0.0.1:\(fake.port)/sms", signingSecret: "0123456789abcdef-signing")
        do {
            try await withTestApp(smsSender: .webhook(settings)) { ctx in
                let practice = try await Fixtures.practice(ctx)
                _ = try await Fixtures.user(ctx, practice: practice)
                let (client, _, _) = try await APIClient.login(ctx)
                let start = try await client.send(.POST, "/api/v1/me/factors/sms", json: ["password": Fixtures.password])
                #expect(start.status == .serviceUnavailable)
                #expect(start.reason.contains("could not send the text message"))
                #expect(try await Factor.query(on: ctx.app.db).count() == 0)
                #expect(try await SMSCode.query(on: ctx.app.db).count() == 0)
                #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "sms.failed").count() == 1)
            }
        } catch {
            await fake.stop()
            throw error
        }
        await fake.stop()
    }

    @Test func unreachableSenderIsHandledToo() async throws {
        let settings = TwofoldConfiguration.WebhookSettings(url: "http://127.0.0.1:9/sms", signingSecret: "0123456789abcdef-signing")
        try await withTestApp(smsSender: .webhook(settings)) { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let (client, _, _) = try await APIClient.login(ctx)
            let response = try await client.send(.POST, "/api/v1/me/factors/sms", json: ["password": Fixtures.password])
            #expect(response.status == .serviceUnavailable)
        }
    }

    static func parseForm(_ body: String) -> [String: String] {
        var result: [String: String] = [:]
        for pair in body.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
            }
            if parts.count == 2 { result[parts[0]] = parts[1] }
        }
        return result
    }
}
