import Foundation
import Testing
import VaporTesting

@testable import TwofoldServer

@Suite("Health, readiness and metrics")
struct MetricsTests {
    @Test func healthAndReadiness() async throws {
        try await withTestApp { ctx in
            let health = try await ctx.app.testing().sendRequest(.GET, "/health")
            #expect(health.status == .ok)
            let ready = try await ctx.app.testing().sendRequest(.GET, "/ready")
            #expect(ready.status == .ok)
            #expect(ready.json["status"] as? String == "ready")
            try await ctx.app.db.sql.raw("DELETE FROM _fluent_migrations WHERE name LIKE '%CreateAPIKey%'").run()
            let pending = try await ctx.app.testing().sendRequest(.GET, "/ready")
            #expect(pending.status == .serviceUnavailable)
            #expect(pending.json["reason"] as? String == "database migrations are pending; run `twofold migrate`")
        }
    }

    @Test func requestsVerificationsSMSAndLockoutsAreCounted() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            ctx.clock.advance(30)
            let client = try await Flows.halfSignedIn(ctx)
            _ = try await client.send(.POST, "/api/v1/login/verify", json: ["code": "000000"])
            _ = try await client.send(.POST, "/api/v1/login/verify", json: ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now)])
            _ = try await client.send(.POST, "/api/v1/me/factors/sms", json: ["password": Fixtures.password])
            let metrics = try await ctx.app.testing().sendRequest(.GET, "/metrics")
            #expect(metrics.status == .ok)
            #expect(metrics.headers.contentType?.subType == "plain")
            let text = metrics.body.string
            #expect(text.contains(#"twofold_http_requests_total{route="/api/v1/login/verify",method="POST",status="200"} 1"#))
            #expect(text.contains(#"twofold_http_requests_total{route="/api/v1/login/verify",method="POST",status="401"} 1"#))
            #expect(text.contains(#"twofold_verifications_total{kind="totp",outcome="accept"} 1"#))
            #expect(text.contains(#"twofold_verifications_total{kind="totp",outcome="reject"} 1"#))
            #expect(text.contains(#"twofold_sms_total{outcome="sent"} 1"#))
            #expect(text.contains("twofold_http_request_duration_seconds_bucket"))
            #expect(!text.contains("dr.smith"))
        }
    }

    @Test func metricsTokenIsRequiredWhenConfigured() async throws {
        try await withTestApp(metricsToken: "0123456789abcdef-metrics") { ctx in
            let anonymous = try await ctx.app.testing().sendRequest(.GET, "/metrics")
            #expect(anonymous.status == .unauthorized)
            var wrong = HTTPHeaders()
            wrong.bearerAuthorization = BearerAuthorization(token: "not-the-token")
            let withWrong = try await ctx.app.testing().sendRequest(.GET, "/metrics", headers: wrong)
            #expect(withWrong.status == .unauthorized)
            var right = HTTPHeaders()
            right.bearerAuthorization = BearerAuthorization(token: "0123456789abcdef-metrics")
            let withRight = try await ctx.app.testing().sendRequest(.GET, "/metrics", headers: right)
            #expect(withRight.status == .ok)
        }
    }
}
