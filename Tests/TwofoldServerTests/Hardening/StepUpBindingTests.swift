import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// Step-up assertions name the integrator they are for, claim only what the factor proves, and never take their
/// issuer from the Host header.
@Suite("Step-up binding")
struct StepUpBindingTests {
    static func key(_ ctx: TestContext, practice: Practice, name: String) async throws -> (id: UUID, key: String) {
        let created = try await APIKeyService(database: ctx.app.db, now: ctx.clock.now).create(practiceID: practice.id!, name: name)
        return (try created.record.requireID(), created.key)
    }

    @Test func anotherKeyOfThePracticeCannotSeeOrUseTheStepUp() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let ehr = try await Self.key(ctx, practice: practice, name: "EHR")
            let billing = try await Self.key(ctx, practice: practice, name: "Billing")
            ctx.clock.advance(30)
            let started = try await StepUpTests.start(ctx, key: ehr.key)
            #expect(started.status == .created, "\(started.text)")
            let id = try #require(started.json["challengeId"] as? String)
            #expect(started.json["audience"] as? String == ehr.id.uuidString)

            let other = APIClient(ctx, token: billing.key)
            let code = try Fixtures.code(enrolled.secret, at: ctx.clock.now)
            let missing = try await other.send(.GET, "/api/v1/step-up/\(UUID())")
            for response in [
                try await other.send(.GET, "/api/v1/step-up/\(id)"),
                try await other.send(.POST, "/api/v1/step-up/\(id)/verify", json: ["code": code]),
                try await other.send(.POST, "/api/v1/step-up/\(id)/push", json: [:]),
                try await other.send(.POST, "/api/v1/step-up/\(id)/webauthn/options"),
            ] {
                #expect(response.status == .notFound, "\(response.text)")
                #expect(response.reason == missing.reason, "the same answer as for a step-up that does not exist")
            }
            // The code was not spent by the other key: the creating key completes the step-up with it.
            let verified = try await APIClient(ctx, token: ehr.key).send(.POST, "/api/v1/step-up/\(id)/verify", json: ["code": code])
            #expect(verified.status == .ok, "\(verified.text)")
            let claims = try await StepUpTests.verify(ctx, try #require(verified.json["assertion"] as? String))
            #expect(claims.aud == ehr.id.uuidString)
            #expect(try await other.send(.GET, "/api/v1/step-up/\(id)").status == .notFound)
        }
    }

    @Test func aSyncedPasskeyIsASoftwareKeyAndADeviceBoundOneAHardwareKey() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPasskey(ctx)
            let ehr = try await Self.key(ctx, practice: practice, name: "EHR")
            let client = APIClient(ctx, token: ehr.key)
            let factor = try #require(try await Factor.find(UUID(uuidString: enrolled.factorID), on: ctx.app.db))
            #expect(factor.backupEligible == false, "the test authenticator registers device-bound credentials")

            func stepUp() async throws -> StepUpService.Claims {
                let id = try #require(try await StepUpTests.start(ctx, key: ehr.key).json["challengeId"] as? String)
                let options = try await client.send(.POST, "/api/v1/step-up/\(id)/webauthn/options")
                let verified = try await client.send(
                    .POST, "/api/v1/step-up/\(id)/webauthn", document: ["credential": try enrolled.authenticator.get(options.json)])
                #expect(verified.status == .ok, "\(verified.text)")
                return try await StepUpTests.verify(ctx, try #require(verified.json["assertion"] as? String))
            }
            let deviceBound = try await stepUp()
            #expect(deviceBound.amr == ["hwk", "user"])
            #expect(deviceBound.aud == ehr.id.uuidString)

            factor.backupEligible = true
            try await factor.save(on: ctx.app.db)
            #expect(try await stepUp().amr == ["swk", "user"])

            factor.backupEligible = nil
            try await factor.save(on: ctx.app.db)
            #expect(try await stepUp().amr == ["swk", "user"], "unknown is not hardware-bound")
        }
    }

    @Test func theIssuerIsTheConfiguredPublicURLNotTheHostHeader() async throws {
        try await withTestApp { ctx in
            ctx.app.twofold.configuration.publicURL = "https://2fa.example-clinic.org"
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let ehr = try await Self.key(ctx, practice: practice, name: "EHR")
            ctx.clock.advance(30)
            let hostile: HTTPHeaders = ["Host": "evil.example"]
            let client = APIClient(ctx, token: ehr.key)
            let started = try await client.send(
                .POST, "/api/v1/step-up", json: ["username": "dr.smith", "action": StepUpTests.action], headers: hostile)
            #expect(started.status == .created, "\(started.text)")
            #expect((started.json["url"] as? String)?.hasPrefix("https://2fa.example-clinic.org/step-up/") == true)
            let id = try #require(started.json["challengeId"] as? String)
            let verified = try await client.send(
                .POST, "/api/v1/step-up/\(id)/verify", json: ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now)],
                headers: hostile)
            let claims = try await StepUpTests.verify(ctx, try #require(verified.json["assertion"] as? String))
            #expect(claims.iss == "https://2fa.example-clinic.org")
        }
    }

    @Test func withoutAPublicURLOnlyTestsAndLoopbackDevelopmentGetAnIssuer() {
        let base = "http://localhost:8080"
        #expect(
            StepUpService.issuer(
                publicURL: "https://2fa.example.org", isTesting: false, host: "evil.example", peerIsLoopback: false, requestBaseURL: base)
                == "https://2fa.example.org")
        #expect(
            StepUpService.issuer(publicURL: nil, isTesting: true, host: "evil.example", peerIsLoopback: false, requestBaseURL: base) == base
        )
        #expect(
            StepUpService.issuer(publicURL: nil, isTesting: false, host: "localhost:8080", peerIsLoopback: true, requestBaseURL: base)
                == base)
        #expect(
            StepUpService.issuer(publicURL: nil, isTesting: false, host: "127.0.0.1:8080", peerIsLoopback: true, requestBaseURL: base)
                == base)
        #expect(
            StepUpService.issuer(publicURL: nil, isTesting: false, host: "[::1]:8080", peerIsLoopback: true, requestBaseURL: base) == base)
        // A production server reached by name, through a proxy or directly: refused.
        #expect(
            StepUpService.issuer(publicURL: nil, isTesting: false, host: "2fa.example.org", peerIsLoopback: true, requestBaseURL: base)
                == nil)
        #expect(
            StepUpService.issuer(publicURL: nil, isTesting: false, host: "localhost", peerIsLoopback: false, requestBaseURL: base) == nil)
        #expect(
            StepUpService.issuer(
                publicURL: nil, isTesting: false, host: "127.0.0.1.evil.example", peerIsLoopback: true, requestBaseURL: base) == nil)
        #expect(StepUpService.issuer(publicURL: nil, isTesting: false, host: nil, peerIsLoopback: true, requestBaseURL: base) == nil)
        let refusal = StepUpError.noPublicURL
        #expect(refusal.status == .serviceUnavailable)
        #expect(refusal.reason.contains("TWOFOLD_PUBLIC_URL"))
    }
}
