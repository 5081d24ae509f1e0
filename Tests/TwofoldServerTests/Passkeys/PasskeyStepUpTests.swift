import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("Passkeys for step-up")
struct PasskeyStepUpTests {
    @Test func aUserVerifiedPasskeyCompletesAStepUpAsAHardFactor() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let user = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPasskey(ctx)
            let key = try await StepUpTests.key(ctx, practice: practice)
            let ehr = APIClient(ctx, token: key)

            let started = try await StepUpTests.start(ctx, key: key)
            #expect(started.status == .created, "\(started.text)")
            #expect(started.json["methods"] as? [String] == ["webauthn"])
            let id = try #require(started.json["challengeId"] as? String)

            // Without user verification a passkey is not a hard factor for step-up.
            var options = try await ehr.send(.POST, "/api/v1/step-up/\(id)/webauthn/options")
            #expect(options.status == .ok, "\(options.text)")
            #expect(options.json["userVerification"] as? String == "required")
            enrolled.authenticator.userVerifies = false
            let unverified = try await ehr.send(
                .POST, "/api/v1/step-up/\(id)/webauthn", document: ["credential": try enrolled.authenticator.get(options.json)])
            #expect(unverified.status == .unauthorized, "\(unverified.text)")
            enrolled.authenticator.userVerifies = true

            options = try await ehr.send(.POST, "/api/v1/step-up/\(id)/webauthn/options")
            let assertion = try enrolled.authenticator.get(options.json)
            let verified = try await ehr.send(.POST, "/api/v1/step-up/\(id)/webauthn", document: ["credential": assertion])
            #expect(verified.status == .ok, "\(verified.text)")
            let claims = try await StepUpTests.verify(ctx, try #require(verified.json["assertion"] as? String))
            #expect(claims.amr == ["hwk", "user"])
            #expect(claims.sub == user.id!.uuidString)
            #expect(claims.jti == id)

            // Replaying the assertion, or using the closed step-up again, gets nothing.
            #expect(try await ehr.send(.POST, "/api/v1/step-up/\(id)/webauthn", document: ["credential": assertion]).status != .ok)
            #expect(try await ehr.send(.POST, "/api/v1/step-up/\(id)/webauthn/options").status == .conflict)
            let failures = try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "step_up.failed").count()
            #expect(failures >= 1)
        }
    }

    @Test func aChallengeForOneStepUpCannotCompleteAnother() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollPasskey(ctx)
            let key = try await StepUpTests.key(ctx, practice: practice)
            let ehr = APIClient(ctx, token: key)
            let first = try #require(try await StepUpTests.start(ctx, key: key).json["challengeId"] as? String)
            let second = try #require(try await StepUpTests.start(ctx, key: key).json["challengeId"] as? String)
            let options = try await ehr.send(.POST, "/api/v1/step-up/\(first)/webauthn/options")
            let crossed = try await ehr.send(
                .POST, "/api/v1/step-up/\(second)/webauthn", document: ["credential": try enrolled.authenticator.get(options.json)])
            #expect(crossed.status == .badRequest, "\(crossed.text)")
            // A sign-in challenge is no step-up challenge either.
            let half = try await Flows.halfSignedIn(ctx)
            let signIn = try await half.send(.POST, "/api/v1/login/webauthn/options")
            #expect(
                try await ehr.send(
                    .POST, "/api/v1/step-up/\(second)/webauthn", document: ["credential": try enrolled.authenticator.get(signIn.json)]
                ).status == .badRequest)
        }
    }
}
