import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("Second factor at sign-in")
struct SecondFactorTests {
    @Test func totpSignInAndReplayRefused() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            #expect(enrolled.recoveryCodes.count == 10)
            ctx.clock.advance(30)

            let client = try await Flows.halfSignedIn(ctx)
            // half-signed-in reaches nothing but the second factor
            #expect(try await client.send(.GET, "/api/v1/me/factors").status == .unauthorized)
            let code = try Fixtures.code(enrolled.secret, at: ctx.clock.now)
            let verify = try await client.send(.POST, "/api/v1/login/verify", json: ["code": code])
            #expect(verify.status == .ok)
            #expect(verify.json["status"] as? String == "authenticated")
            #expect(try await client.send(.GET, "/api/v1/me/factors").jsonArray.count == 1)

            // the same code again, in a new sign-in, is a replay
            let again = try await Flows.halfSignedIn(ctx)
            let replay = try await again.send(.POST, "/api/v1/login/verify", json: ["code": code])
            #expect(replay.status == .unauthorized)
            #expect(replay.reason.contains("already been used"))
        }
    }

    @Test func twentyParallelSubmissionsOfOneCodeLetExactlyOneThrough() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            ctx.clock.advance(30)
            var clients: [APIClient] = []
            for _ in 0..<20 { clients.append(try await Flows.halfSignedIn(ctx)) }
            let code = try Fixtures.code(enrolled.secret, at: ctx.clock.now)
            let statuses = try await withThrowingTaskGroup(of: HTTPResponseStatus.self) { group in
                for client in clients {
                    group.addTask { try await client.send(.POST, "/api/v1/login/verify", json: ["code": code]).status }
                }
                return try await group.reduce(into: [HTTPResponseStatus]()) { $0.append($1) }
            }
            // One sign-in gets through; the others are replays (401) or told to wait (429), because every
            // attempt is reserved against the account before its code is checked.
            #expect(statuses.filter { $0 == .ok }.count == 1)
            #expect(statuses.allSatisfy { [.ok, .unauthorized, .tooManyRequests].contains($0) })
        }
    }

    @Test func codesOneStepOldOrAheadAreAcceptedButNotTwo() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            ctx.clock.advance(120)
            let client = try await Flows.halfSignedIn(ctx)
            let tooOld = try Fixtures.code(enrolled.secret, at: ctx.clock.now.addingTimeInterval(-60))
            #expect(try await client.send(.POST, "/api/v1/login/verify", json: ["code": tooOld]).status == .unauthorized)
            let previous = try Fixtures.code(enrolled.secret, at: ctx.clock.now.addingTimeInterval(-30))
            #expect(try await client.send(.POST, "/api/v1/login/verify", json: ["code": previous]).status == .ok)
        }
    }

    @Test func guessingSlowsDownThenCancelsThePendingSignIn() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Flows.enrollTOTP(ctx)
            let client = try await Flows.halfSignedIn(ctx)
            for _ in 0..<5 {
                #expect(try await client.send(.POST, "/api/v1/login/verify", json: ["code": "000000"]).status == .unauthorized)
            }
            // the sixth attempt right away must wait
            let waiting = try await client.send(.POST, "/api/v1/login/verify", json: ["code": "000000"])
            #expect(waiting.status == .tooManyRequests)
            #expect(waiting.headers.first(name: "Retry-After") == "1")
            for _ in 5..<9 {
                ctx.clock.advance(61)
                #expect(try await client.send(.POST, "/api/v1/login/verify", json: ["code": "000000"]).status == .unauthorized)
            }
            ctx.clock.advance(61)
            let tenth = try await client.send(.POST, "/api/v1/login/verify", json: ["code": "000000"])
            #expect(tenth.status == .unauthorized)
            #expect(tenth.reason.contains("sign in again with your password"))
            // the pending sign-in is gone
            #expect(try await client.send(.POST, "/api/v1/login/verify", json: ["code": "000000"]).status == .unauthorized)
            #expect(try await client.send(.GET, "/api/v1/me").status == .unauthorized)
        }
    }

    @Test func twentyFailuresLockFifteenMinutesAndAHundredLockUntilReset() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            var client = try await Flows.halfSignedIn(ctx)
            var failures = 0
            func fail() async throws {
                ctx.clock.advance(61)
                let response = try await client.send(.POST, "/api/v1/login/verify", json: ["code": "000000"])
                if response.reason.contains("sign in again") { client = try await Flows.halfSignedIn(ctx) }
                if response.status == .tooManyRequests, response.reason.contains("locked") {
                    ctx.clock.advance(15 * 60)
                    return try await fail()
                }
                #expect(response.status == .unauthorized, "\(response.reason)")
                failures += 1
            }
            while failures < 20 { try await fail() }
            // locked now: even the right code is refused
            ctx.clock.advance(30)
            let locked = try await client.send(
                .POST, "/api/v1/login/verify", json: ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now)])
            #expect(locked.status == .tooManyRequests)
            #expect(locked.reason.contains("locked for"))
            ctx.clock.advance(15 * 60)
            while failures < 100 { try await fail() }
            ctx.clock.advance(24 * 3600)
            client = try await Flows.halfSignedIn(ctx)
            let permanent = try await client.send(
                .POST, "/api/v1/login/verify", json: ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now)])
            #expect(permanent.status == .forbidden)
            #expect(permanent.reason.contains("administrator"))
            let events = try await AuditEvent.query(on: ctx.app.db).filter(\.$event == AuditEventType.secondFactorLocked.rawValue).count()
            #expect(events == 4)
            #expect(
                try await AuditEvent.query(on: ctx.app.db).filter(\.$event == AuditEventType.secondFactorLockedPermanently.rawValue).count()
                    == 1)
        }
    }

    @Test func successResetsTheFailureCount() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let user = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let client = try await Flows.halfSignedIn(ctx)
            for _ in 0..<3 { _ = try await client.send(.POST, "/api/v1/login/verify", json: ["code": "111111"]) }
            ctx.clock.advance(30)
            #expect(
                try await client.send(.POST, "/api/v1/login/verify", json: ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now)])
                    .status == .ok)
            #expect(try await User.find(user.id, on: ctx.app.db)?.secondFactorFailures == 0)
        }
    }

    @Test func recoveryCodeSignsInOnce() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            let code = enrolled.recoveryCodes[3]
            let first = try await Flows.halfSignedIn(ctx)
            let used = try await first.send(.POST, "/api/v1/login/recovery", json: ["code": code.uppercased()])
            #expect(used.status == .ok)
            #expect(used.json["recoveryCodesLeft"] as? Int == 9)
            let second = try await Flows.halfSignedIn(ctx)
            let reused = try await second.send(.POST, "/api/v1/login/recovery", json: ["code": code])
            #expect(reused.status == .unauthorized)
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "recovery_code.used").count() == 1)
        }
    }

    @Test func rememberedBrowserSkipsTheCodeUntilRevoked() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            ctx.clock.advance(30)
            let client = try await Flows.halfSignedIn(ctx)
            let verify = try await client.send(
                .POST, "/api/v1/login/verify",
                json: ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now), "rememberBrowser": true])
            let rememberToken = try #require(verify.json["rememberToken"] as? String)

            let (remembered, body, _) = try await APIClient.login(ctx, rememberToken: rememberToken)
            #expect(body["status"] as? String == "authenticated")
            let browsers = try await remembered.send(.GET, "/api/v1/me/browsers").jsonArray
            #expect(browsers.count == 1)
            let id = try #require(browsers.first?["id"] as? String)
            #expect(
                try await remembered.send(.DELETE, "/api/v1/me/browsers/\(id)", json: ["password": Fixtures.password]).status == .noContent)
            let (_, afterRevoke, _) = try await APIClient.login(ctx, rememberToken: rememberToken)
            #expect(afterRevoke["status"] as? String == "second_factor_required")
        }
    }

    @Test func rememberedBrowserExpiresAfterThePracticeDays() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let enrolled = try await Flows.enrollTOTP(ctx)
            ctx.clock.advance(30)
            let client = try await Flows.halfSignedIn(ctx)
            let verify = try await client.send(
                .POST, "/api/v1/login/verify",
                json: ["code": try Fixtures.code(enrolled.secret, at: ctx.clock.now), "rememberBrowser": true])
            let rememberToken = try #require(verify.json["rememberToken"] as? String)
            ctx.clock.advance(31 * 86_400)
            let (_, body, _) = try await APIClient.login(ctx, rememberToken: rememberToken)
            #expect(body["status"] as? String == "second_factor_required")
        }
    }

    @Test func mandatoryPracticeSendsUsersWithoutFactorsToEnrollment() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx, mandatory: true)
            _ = try await Fixtures.user(ctx, practice: practice)
            let (client, body, _) = try await APIClient.login(ctx)
            #expect(body["status"] as? String == "enrollment_required")
            let blocked = try await client.send(.GET, "/api/v1/me/factors")
            #expect(blocked.status == .forbidden)
            #expect(blocked.reason.hasPrefix("enrollment_required"))
            let start = try await client.send(.POST, "/api/v1/me/factors/totp", json: [:])
            #expect(start.status == .ok)
            let secret = try #require(start.json["secret"] as? String)
            let factorID = try #require(start.json["factorId"] as? String)
            let activate = try await client.send(
                .POST, "/api/v1/me/factors/\(factorID)/activate", json: ["code": try Fixtures.code(secret, at: ctx.clock.now)])
            #expect(activate.status == .ok)
            #expect(try await client.send(.GET, "/api/v1/me/factors").status == .ok)
        }
    }
}
