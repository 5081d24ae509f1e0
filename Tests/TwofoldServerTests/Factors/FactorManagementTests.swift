import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("Managing one's own factors")
struct FactorManagementTests {
    @Test func enrollmentNeedsTheCurrentPasswordOnceFiveMinutesHavePassed() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let (client, _, _) = try await APIClient.login(ctx)
            ctx.clock.advance(6 * 60)
            let noPassword = try await client.send(.POST, "/api/v1/me/factors/totp", json: [:])
            #expect(noPassword.status == .unauthorized)
            #expect(noPassword.reason.contains("current password"))
            let wrong = try await client.send(.POST, "/api/v1/me/factors/totp", json: ["password": "nope nope nope"])
            #expect(wrong.status == .forbidden)
            let right = try await client.send(.POST, "/api/v1/me/factors/totp", json: ["password": Fixtures.password])
            #expect(right.status == .ok)
            let uri = try #require(right.json["otpauthURI"] as? String)
            #expect(uri.hasPrefix("otpauth://totp/Riverside%20Family%20Medicine:dr.smith?"))
            #expect((right.json["qrSVG"] as? String)?.contains("<svg") == true)
            // within five minutes of the password, no second prompt
            #expect(try await client.send(.POST, "/api/v1/me/factors/totp", json: [:]).status == .ok)
        }
    }

    @Test func wrongActivationCodeLeavesTheFactorPending() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let (client, _, _) = try await APIClient.login(ctx)
            let start = try await client.send(.POST, "/api/v1/me/factors/totp", json: ["password": Fixtures.password])
            let factorID = try #require(start.json["factorId"] as? String)
            let activate = try await client.send(.POST, "/api/v1/me/factors/\(factorID)/activate", json: ["code": "123456"])
            #expect(activate.status == .unprocessableEntity)
            #expect(try await client.send(.GET, "/api/v1/me/factors").jsonArray.isEmpty)
            #expect(try await client.send(.GET, "/api/v1/me").json["twoFactorEnabled"] as? Bool == false)
        }
    }

    @Test func secretsAreSealedAtRest() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let factor = try #require(try await Factor.query(on: ctx.app.db).first())
            let stored = try #require(factor.sealedSecret)
            let raw = try OTPSecretBytes.decode(enrolled.secret)
            #expect(stored.count > raw.count)
            #expect(stored.range(of: Data(raw)) == nil)
            let codes = try await RecoveryCodeRecord.query(on: ctx.app.db).all()
            #expect(codes.count == 10)
            for record in codes { #expect(!enrolled.recoveryCodes.contains { record.codeHash.contains($0) }) }
        }
    }

    @Test func secondFactorBecomesPrimaryOnRequestAndDeletingPrimaryPromotesAnother() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let client = enrolled.client
            let start = try await client.send(
                .POST, "/api/v1/me/factors/totp", json: ["password": Fixtures.password, "nickname": "Backup phone"])
            let second = try #require(start.json["factorId"] as? String)
            let secret = try #require(start.json["secret"] as? String)
            let activated = try await client.send(
                .POST, "/api/v1/me/factors/\(second)/activate", json: ["code": try Fixtures.code(secret, at: ctx.clock.now)])
            #expect(activated.json["recoveryCodes"] == nil || activated.json["recoveryCodes"] is NSNull)
            var factors = try await client.send(.GET, "/api/v1/me/factors").jsonArray
            #expect(factors.count == 2)
            #expect(factors.first { $0["id"] as? String == enrolled.factorID }?["primary"] as? Bool == true)

            let patched = try await client.send(.PATCH, "/api/v1/me/factors/\(second)", json: ["primary": true, "nickname": "Work phone"])
            #expect(patched.status == .ok)
            #expect(patched.json["nickname"] as? String == "Work phone")
            factors = try await client.send(.GET, "/api/v1/me/factors").jsonArray
            #expect(factors.filter { $0["primary"] as? Bool == true }.count == 1)
            #expect(factors.first { $0["id"] as? String == second }?["primary"] as? Bool == true)

            #expect(
                try await client.send(.DELETE, "/api/v1/me/factors/\(second)", json: ["password": Fixtures.password]).status == .noContent)
            factors = try await client.send(.GET, "/api/v1/me/factors").jsonArray
            #expect(factors.count == 1)
            #expect(factors.first?["primary"] as? Bool == true)
        }
    }

    @Test func lastFactorCannotBeRemovedWhenTwoFactorIsRequired() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx, mandatory: true)
            _ = try await Fixtures.user(ctx, practice: practice)
            let (client, _, _) = try await APIClient.login(ctx)
            let start = try await client.send(.POST, "/api/v1/me/factors/totp", json: [:])
            let factorID = try #require(start.json["factorId"] as? String)
            let secret = try #require(start.json["secret"] as? String)
            _ = try await client.send(
                .POST, "/api/v1/me/factors/\(factorID)/activate", json: ["code": try Fixtures.code(secret, at: ctx.clock.now)])
            let refused = try await client.send(.DELETE, "/api/v1/me/factors/\(factorID)", json: ["password": Fixtures.password])
            #expect(refused.status == .forbidden)
            #expect(refused.reason.contains("requires two-factor authentication"))
            ctx.clock.advance(30)
            let disable = try await client.send(
                .DELETE, "/api/v1/me/two-factor",
                json: ["password": Fixtures.password, "code": try Fixtures.code(secret, at: ctx.clock.now)])
            #expect(disable.status == .forbidden)
        }
    }

    @Test func turningTwoFactorOffNeedsPasswordAndCodeAndClearsEverything() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let user = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            ctx.clock.advance(30)
            let wrongCode = try await enrolled.client.send(
                .DELETE, "/api/v1/me/two-factor", json: ["password": Fixtures.password, "code": "000000"])
            #expect(wrongCode.status == .unauthorized)
            ctx.clock.advance(30)
            let off = try await enrolled.client.send(
                .DELETE, "/api/v1/me/two-factor",
                json: ["password": Fixtures.password, "code": try Fixtures.code(enrolled.secret, at: ctx.clock.now)])
            #expect(off.status == .noContent)
            #expect(try await Factor.query(on: ctx.app.db).filter(\.$user.$id == user.id!).count() == 0)
            #expect(try await RecoveryCodeRecord.query(on: ctx.app.db).filter(\.$user.$id == user.id!).count() == 0)
            let (_, body, _) = try await APIClient.login(ctx)
            #expect(body["status"] as? String == "authenticated")
        }
    }

    @Test func regeneratedRecoveryCodesReplaceTheOldOnes() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let regenerated = try await enrolled.client.send(.POST, "/api/v1/me/recovery-codes", json: ["password": Fixtures.password])
            let codes = try #require(regenerated.json["recoveryCodes"] as? [String])
            #expect(codes.count == 10)
            #expect(Set(codes).isDisjoint(with: enrolled.recoveryCodes))
            let client = try await Flows.halfSignedIn(ctx)
            #expect(
                try await client.send(.POST, "/api/v1/login/recovery", json: ["code": enrolled.recoveryCodes[0]]).status == .unauthorized)
            #expect(try await client.send(.POST, "/api/v1/login/recovery", json: ["code": codes[0]]).status == .ok)
        }
    }

    @Test func anotherUsersFactorIsNotFound() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Fixtures.user(ctx, practice: practice, username: "nurse.kim")
            let smith = try await Flows.enrollTOTP(ctx)
            let (kim, _, _) = try await APIClient.login(ctx, username: "nurse.kim")
            let response = try await kim.send(
                .PATCH, "/api/v1/me/factors/\(smith.factorID)", json: ["nickname": "mine", "password": Fixtures.password])
            #expect(response.status == .notFound)
        }
    }
}

/// Base32 decoding for assertions, through the core codec.
enum OTPSecretBytes {
    static func decode(_ base32: String) throws -> [UInt8] { try Base32.decode(base32) }
}
