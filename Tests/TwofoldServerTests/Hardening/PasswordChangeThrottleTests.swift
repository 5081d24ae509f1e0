import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// The change-password form checks the current password: without a limit it is an oracle for a stolen session.
@Suite("Password change throttling")
struct PasswordChangeThrottleTests {
    /// A signed-in browser on the change-password page: its cookie header and CSRF token, for parallel posts.
    static func signedIn(_ ctx: TestContext) async throws -> (cookie: String, csrf: String) {
        let practice = try await Fixtures.practice(ctx)
        _ = try await Fixtures.user(ctx, practice: practice)
        let web = WebClient(ctx)
        _ = try await web.get("/login")
        _ = try await web.post("/login", ["username": "dr.smith", "password": Fixtures.password])
        #expect(try await web.get("/").status == .ok)
        _ = try await web.get("/account/password")
        return (web.cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; "), try #require(web.lastCSRF))
    }

    static func post(
        _ ctx: TestContext, _ session: (cookie: String, csrf: String), current: String, new: String = "purple ocean lantern",
        confirm: String? = nil
    ) async throws -> TestingHTTPResponse {
        var headers = HTTPHeaders()
        headers.replaceOrAdd(name: .cookie, value: session.cookie)
        headers.contentType = .urlEncodedForm
        let form = ["currentPassword": current, "newPassword": new, "confirmPassword": confirm ?? new, "csrf": session.csrf]
            .map { "\(WebClient.escape($0.key))=\(WebClient.escape($0.value))" }.joined(separator: "&")
        return try await ctx.app.testing().sendRequest(.POST, "/account/password", headers: headers, body: ByteBuffer(string: form))
    }

    @Test func parallelWrongCurrentPasswordsEvaluateAtMostTheLimit() async throws {
        try await withTestApp { ctx in
            let session = try await Self.signedIn(ctx)
            let statuses = try await withThrowingTaskGroup(of: HTTPStatus.self) { group in
                for index in 0..<30 {
                    group.addTask { try await Self.post(ctx, session, current: "wrong guess number \(index)").status }
                }
                var all: [HTTPStatus] = []
                for try await status in group { all.append(status) }
                return all
            }
            let evaluated = statuses.filter { $0 == .forbidden }.count
            let throttled = statuses.filter { $0 == .tooManyRequests }.count
            #expect(evaluated <= TwofoldPolicy.standard.signIn.passwordPerAccount.limit, "\(statuses)")
            #expect(evaluated + throttled == 30, "\(statuses)")
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "password.change_failed").count() == evaluated)
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "password.change_throttled").count() == throttled)

            // Even the right password waits for the window; afterwards it works, and the password is unchanged until then.
            let blocked = try await Self.post(ctx, session, current: Fixtures.password)
            #expect(blocked.status == .tooManyRequests)
            #expect(blocked.text.contains("Too many wrong current passwords"))
            #expect(Int(blocked.headers.first(name: "Retry-After") ?? "") ?? 0 > 0)
            #expect(try await APIClient.login(ctx).2 == .ok)
            ctx.clock.advance(15 * 60 + 1)
            let changed = try await Self.post(ctx, session, current: Fixtures.password)
            #expect(changed.status == .seeOther || changed.location?.hasPrefix("/account/security") == true, "\(changed.status)")
            #expect(try await APIClient.login(ctx, password: "purple ocean lantern").2 == .ok)
        }
    }

    @Test func theRightPasswordGivesItsAttemptBack() async throws {
        try await withTestApp { ctx in
            let session = try await Self.signedIn(ctx)
            for index in 0..<9 {
                #expect(try await Self.post(ctx, session, current: "wrong guess \(index)").status == .forbidden)
            }
            // The right current password (with a mistyped confirmation) does not spend an attempt.
            let mismatch = try await Self.post(
                ctx, session, current: Fixtures.password, new: "purple ocean lantern", confirm: "purple ocean lanterns")
            #expect(mismatch.status == .badRequest)
            #expect(try await Self.post(ctx, session, current: "wrong guess 9").status == .forbidden)
            #expect(try await Self.post(ctx, session, current: "wrong guess 10").status == .tooManyRequests)
        }
    }

    @Test func throttledAnswersSayWhenToRetry() {
        let error = PasswordChangeError.throttled(retryAfter: 600)
        #expect(error.status == .tooManyRequests)
        #expect(error.headers.first(name: "Retry-After") == "600")
        #expect(error.reason.contains("10 minutes"))
    }
}
