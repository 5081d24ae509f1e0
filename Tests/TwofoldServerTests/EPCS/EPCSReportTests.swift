import Fluent
import Foundation
import SQLKit
import Testing
import TwofoldCore
import Vapor
import VaporTesting

@testable import TwofoldServer

/// The daily EPCS audit report (21 CFR 1311.150(b)–(c)), its review, its daily analysis, and the prescriber's monthly
/// log of signings (§1311.120(b)(27)).
@Suite("EPCS: daily report and monthly log")
struct EPCSReportTests {
    /// Moves the test clock to `time` (ISO 8601, UTC); never backwards.
    static func move(_ ctx: TestContext, to time: String) throws {
        let target = try #require(try? Date(time, strategy: .iso8601))
        #expect(target >= ctx.clock.now, "the clock only moves forward")
        ctx.clock.advance(target.timeIntervalSince(ctx.clock.now))
    }

    static func signOn(_ ctx: TestContext, _ username: String, secret: String) async throws -> WebClient {
        ctx.clock.advance(30)
        let web = WebClient(ctx)
        _ = try await web.get("/login")
        let password = try await web.post("/login", ["username": username, "password": Fixtures.password])
        if password.location == "/login/two-factor" {
            _ = try await web.get("/login/two-factor")
            let verified = try await web.post("/login/two-factor", ["code": try Fixtures.code(secret, at: ctx.clock.now)])
            #expect(verified.status == .seeOther || verified.status == .found, "\(verified.text)")
        }
        return web
    }

    /// One EPCS signing by dr.smith through the step-up API: `failures` wrong codes (with the right password), then the right code.
    @discardableResult
    static func sign(_ h: EPCSHarness, key: String, summary: String = "Oxycodone 5 mg tablet, #20", hash: String, failures: Int = 0)
        async throws -> String
    {
        let started = try await h.startStepUp(key: key, action: ["type": "epcs", "summary": summary, "hash": hash])
        #expect(started.status == .created, "\(started.text)")
        let id = try #require(started.json["challengeId"] as? String)
        let api = APIClient(h.ctx, token: key)
        for _ in 0..<failures {
            let wrong = try await api.send(
                .POST, "/api/v1/step-up/\(id)/verify", json: ["code": try h.wrongCode(h.prescriber.secret), "password": Fixtures.password])
            #expect(wrong.status == .unauthorized, "\(wrong.text)")
        }
        let verified = try await api.send(
            .POST, "/api/v1/step-up/\(id)/verify",
            json: ["code": try Fixtures.code(h.prescriber.secret, at: h.ctx.clock.now), "password": Fixtures.password])
        #expect(verified.status == .ok, "\(verified.text)")
        #expect(verified.json["assertion"] is String)
        return id
    }

    static func record(_ ctx: TestContext, _ type: AuditEventType, practice: UUID?, actor: UUID?, details: [String: String] = [:])
        async throws
    {
        try await AuditLog.append(
            AuditEntry(type: type, practiceID: practice, actorID: actor, subjectID: actor, ip: "192.0.2.7", details: details),
            on: ctx.app.db, now: ctx.clock.now)
    }

    static let hashOne = "1111111111111111111111111111111111111111111111111111111111111111"
    static let hashTwo = "2222222222222222222222222222222222222222222222222222222222222222"
    static let hashThree = "3333333333333333333333333333333333333333333333333333333333333333"

    @Test func testDailyReportListsAndFlagsSeededDay() async throws {
        try await withTestApp { ctx in
            // Sunday 2030-03-17: the practice is set up and approver one enters dr.smith's grant.
            let h = try await EPCSHarness.make(ctx)
            _ = try await Fixtures.user(ctx, practice: h.practice, username: "dr.jones", cell: nil)
            let entered = try await h.enter()
            #expect(entered.status == .created, "\(entered.text)")
            let grantID = try #require(entered.json["grantId"] as? String)

            // Monday 2030-03-18, 06:30 UTC, before the practice's working hours (07–19): approver two approves.
            try Self.move(ctx, to: "2030-03-18T06:29:00Z")
            let second = try await h.signIn("approver.two", secret: h.second.secret)
            ctx.clock.advance(30)
            let approved = try await h.approve(grantID, by: second)
            #expect(approved.status == .ok, "\(approved.text)")

            // 10:00: dr.jones, who has no permission, tries to sign; dr.smith fails three times, then signs.
            try Self.move(ctx, to: "2030-03-18T10:00:00Z")
            let key = try await h.apiKey()
            let refused = try await h.startStepUp(key: key, username: "dr.jones")
            #expect(refused.status == .forbidden)
            let stepUpID = try await Self.sign(h, key: key, hash: Self.hashOne, failures: 3)
            // A step-up for another kind of action is not an EPCS event.
            let other = try await h.startStepUp(key: key, action: StepUpTests.action)
            #expect(other.status == .created, "\(other.text)")
            // 11:00: dr.smith's second factor is locked (a prescriber); so is approver one's (not a prescriber).
            try Self.move(ctx, to: "2030-03-18T11:00:00Z")
            try await Self.record(
                ctx, .secondFactorLocked, practice: h.practice.id, actor: h.prescriberUser.id,
                details: ["channel": "sign_in", "consecutive_failures": "20"])
            try await Self.record(
                ctx, .secondFactorLocked, practice: h.practice.id, actor: h.firstUser.id,
                details: ["channel": "sign_in", "consecutive_failures": "20"])
            // Another practice's attempt the same day, and this practice's lost device the next day, are not in the report.
            let lakeside = try await Fixtures.practice(ctx, name: "Lakeside Pediatrics")
            try await Self.record(ctx, .epcsUnauthorizedAttempt, practice: lakeside.id, actor: nil, details: ["action": "epcs_step_up"])
            try Self.move(ctx, to: "2030-03-19T09:00:00Z")
            try await Self.record(
                ctx, .epcsTokenReportedLost, practice: h.practice.id, actor: h.prescriberUser.id, details: ["kind": "totp"])

            let report = try await EPCSReport(database: ctx.app.db, now: ctx.clock.now).build(
                practiceID: try h.practice.requireID(), day: "2030-03-18")
            #expect(report.day == "2030-03-18")
            #expect(report.practiceName == "Riverside Family Medicine")
            #expect(
                report.events.map(\.type).sorted()
                    == [
                        "epcs.grant_approved", "epcs.unauthorized_attempt", "step_up.requested",
                        "step_up.failed", "epcs.signing_failed", "step_up.failed", "epcs.signing_failed", "step_up.failed",
                        "epcs.signing_failed",
                        "step_up.verified", "epcs.signing_completed", "second_factor.locked",
                    ].sorted())
            // In time order; events of one millisecond (the test clock stands still) written to different chains of
            // the process (four on PostgreSQL) follow the chains' order, so only the times are compared here.
            #expect(zip(report.events, report.events.dropFirst()).allSatisfy { $0.time <= $1.time })
            #expect(
                report.events.allSatisfy { row in
                    let time = row.time.timeIntervalSince1970 - EPCSDay.start("2030-03-18")!.timeIntervalSince1970
                    return time >= 0 && time < 86_400
                })
            let byType = Dictionary(grouping: report.events, by: \.type)
            let approval = try #require(byType["epcs.grant_approved"]?.first)
            #expect(approval.incident == "approved outside working hours")
            #expect(approval.actor == "approver.two")
            #expect(approval.subject == "dr.smith")
            #expect(approval.details["grant"] == String(grantID.prefix(8)))
            let attempt = try #require(byType["epcs.unauthorized_attempt"]?.first)
            #expect(attempt.incident == "attempted unauthorized access")
            #expect(attempt.subject == "dr.jones")
            #expect(attempt.details["action"] == "epcs_step_up")
            #expect(byType["epcs.signing_failed"]?.count == 3)
            #expect(
                byType["epcs.signing_failed"]?.allSatisfy { $0.incident == "repeated failed signings" && $0.subject == "dr.smith" } == true)
            // step_up.failed carries no action type: it is an EPCS event because its step-up is one.
            #expect(
                byType["step_up.failed"]?.allSatisfy { $0.details["step_up"] == String(stepUpID.prefix(8)) && $0.incident == nil } == true)
            let completed = try #require(byType["epcs.signing_completed"]?.first)
            #expect(completed.incident == nil)
            #expect(completed.details["action_hash"] == Self.hashOne)
            let lockout = try #require(byType["second_factor.locked"]?.first)
            #expect(lockout.subject == "dr.smith")
            #expect(lockout.incident == "lockout of a prescriber")
            #expect(!report.events.contains { $0.subject == "approver.one" && $0.type == "second_factor.locked" })
            #expect(!report.events.contains { $0.details["action_type"] == "order.sign" })
            #expect(!report.events.contains { $0.type == "epcs.grant_entered" || $0.type == "epcs.token_reported_lost" })
            #expect(report.events.filter { $0.type == "epcs.unauthorized_attempt" }.count == 1)

            // Four potential incidents: the approval, the attempt, the repeated failures (one prescriber), the lockout.
            #expect(report.incidentCount == 4)
            #expect(
                report.incidents.map(\.reason).sorted() == [
                    "approved outside working hours", "attempted unauthorized access", "lockout of a prescriber",
                    "repeated failed signings",
                ])
            #expect(
                report.incidents.first { $0.reason == "repeated failed signings" }?.detail.contains("3 failed EPCS signings by dr.smith")
                    == true)
            let verification = try #require(report.verification)
            #expect(verification.intact)
            #expect(verification.scope == "whole_log")
            #expect(verification.problem == nil)
            #expect(verification.eventsChecked == (try await AuditEvent.query(on: ctx.app.db).count()))
            #expect(report.review == nil)
            #expect(report.revocationsAwaitingConfirmation.isEmpty)

            // The other practice's report has its own attempt only; the next day has the lost device.
            let theirs = try await EPCSReport(database: ctx.app.db, now: ctx.clock.now).build(
                practiceID: try lakeside.requireID(), day: "2030-03-18")
            #expect(theirs.events.map(\.type) == ["epcs.unauthorized_attempt"])
            let next = try await EPCSReport(database: ctx.app.db, now: ctx.clock.now).build(
                practiceID: try h.practice.requireID(), day: "2030-03-19")
            #expect(next.events.map(\.type) == ["epcs.token_reported_lost"])
            #expect(next.incidents.map(\.reason) == ["EPCS device reported lost or stolen"])

            // The same report over the API and as exports.
            let admin = try await h.signIn("approver.one", secret: h.first.secret)
            let api = try await admin.send(.GET, "/api/v1/practice/epcs/reports/2030-03-18")
            #expect(api.status == .ok, "\(api.text)")
            #expect(api.json["incidentCount"] as? Int == 4)
            #expect((api.json["events"] as? [[String: Any]])?.count == 12)
            #expect((api.json["verification"] as? [String: Any])?["intact"] as? Bool == true)
            let csv = try await admin.send(.GET, "/admin/epcs/reports/2030-03-18.csv")
            #expect(csv.status == .ok)
            #expect(csv.headers.contentType?.subType == "csv")
            let lines = csv.text.components(separatedBy: "\r\n").filter { !$0.isEmpty }
            #expect(lines.first == "seq,time,event,actor,subject,details,incident")
            #expect(lines.count == 1 + 12 + 1) // header, events, the verification line
            #expect(lines.contains { $0.contains("\"epcs.grant_approved\"") && $0.contains("\"approved outside working hours\"") })
            #expect(lines.last?.contains("\"audit.verification\"") == true)
            let json = try await admin.send(.GET, "/admin/epcs/reports/2030-03-18.json")
            #expect(json.status == .ok)
            #expect(json.json["day"] as? String == "2030-03-18")
            let page = try await admin.send(.GET, "/admin/epcs/reports/2030-03-18")
            #expect(page.status == .ok)
            #expect(page.text.contains("class=\"incident\""))
            #expect(page.text.contains("within one business day"))
            #expect(page.text.contains("The whole audit log is intact"))

            // A revocation one approver made and no second approver confirmed is listed at the day's end.
            let revoked = try await admin.send(
                .DELETE, "/api/v1/practice/users/\(try h.prescriberUser.requireID())/epcs",
                json: ["reason": "left the practice", "adminPassword": Fixtures.password])
            #expect(revoked.status == .ok, "\(revoked.text)")
            let revocationDay = try await EPCSReport(database: ctx.app.db, now: ctx.clock.now).build(
                practiceID: try h.practice.requireID(), day: "2030-03-19")
            #expect(revocationDay.events.map(\.type) == ["epcs.token_reported_lost", "epcs.grant_revoked"])
            #expect(revocationDay.revocationsAwaitingConfirmation.map(\.username) == ["dr.smith"])
            #expect(revocationDay.revocationsAwaitingConfirmation.first?.revokedBy == "approver.one")
            #expect(
                revocationDay.incidents.map(\.reason) == [
                    "EPCS device reported lost or stolen", "revocation awaiting a second approver's confirmation",
                ])
            // …but not on the day before it was made.
            #expect(
                try await EPCSReport(database: ctx.app.db, now: ctx.clock.now).build(
                    practiceID: try h.practice.requireID(), day: "2030-03-18"
                )
                .revocationsAwaitingConfirmation.isEmpty)

            // A changed audit row: the verification fails and the report says so as an incident.
            let completedSeq = completed.seq
            try await ctx.app.db.sql.raw(
                "UPDATE audit_events SET details = \(bind: "{\"action_hash\":\"forged\"}") WHERE seq = \(bind: completedSeq)"
            ).run()
            let tampered = try await EPCSReport(database: ctx.app.db, now: ctx.clock.now).build(
                practiceID: try h.practice.requireID(), day: "2030-03-18")
            let failed = try #require(tampered.verification)
            #expect(!failed.intact)
            #expect(failed.problem?.contains("event #\(completedSeq)") == true)
            #expect(tampered.incidentCount == 5)
            #expect(tampered.incidents.last?.reason == "audit integrity check failed")
            #expect(tampered.csv().contains("\"audit integrity check failed\""))

            // Days that are not days, or have not begun.
            let badDay = try await admin.send(.GET, "/api/v1/practice/epcs/reports/2030-02-30")
            #expect(badDay.status == .badRequest)
            #expect(badDay.reason.contains("not a day"))
            let future = try await admin.send(.GET, "/admin/epcs/reports/2030-03-20")
            #expect(future.status == .badRequest)
            #expect(future.text.contains("has not begun yet"))
            #expect(try await admin.send(.GET, "/admin/epcs/reports/yesterday.csv").status == .badRequest)
        }
    }

    @Test func testReportReviewIsAudited() async throws {
        try await withTestApp { ctx in
            // 2030-03-17: approvers designated, and an attempt by a prescriber without permission.
            let h = try await EPCSHarness.make(ctx)
            _ = try await Fixtures.user(ctx, practice: h.practice, username: "office.manager", cell: nil, role: .staff, admin: true)
            let key = try await h.apiKey()
            #expect(try await h.startStepUp(key: key).status == .forbidden)
            try Self.move(ctx, to: "2030-03-18T09:00:00Z")
            let day = "2030-03-17"

            // An administrator who is not an approver sees the report but cannot review it.
            let manager = try await Self.signOn(ctx, "office.manager", secret: "")
            let list = try await manager.get("/admin/epcs/reports")
            #expect(list.status == .ok, "\(list.text)")
            #expect(list.text.contains("href=\"/admin/epcs/reports/\(day)\""))
            #expect(list.text.contains("Not reviewed"))
            let view = try await manager.get("/admin/epcs/reports/\(day)")
            #expect(view.status == .ok)
            #expect(!view.text.contains("id=\"review-form\""))
            let refused = try await manager.post(
                "/admin/epcs/reports/\(day)/review", ["note": "looked", "adminPassword": Fixtures.password])
            #expect(refused.status == .forbidden)
            #expect(
                refused.text.contains("Only one of the practice&#39;s EPCS access approvers")
                    || refused.text.contains("Only one of the practice's EPCS access approvers"))
            let denied = try await h.events(.epcsUnauthorizedAttempt).filter { EPCSHarness.details($0)["action"] == "review_report" }
            #expect(denied.count == 1)
            #expect(try await EPCSReportReview.query(on: ctx.app.db).count() == 0)

            // Approver two reviews on the page; a wrong password is refused first.
            let approver = try await Self.signOn(ctx, "approver.two", secret: h.second.secret)
            let page = try await approver.get("/admin/epcs/reports/\(day)")
            #expect(page.text.contains("id=\"review-form\""))
            #expect(page.text.contains("to the application provider and to DEA within one business day"))
            #expect(page.text.contains("attempted unauthorized access"))
            let wrong = try await approver.post(
                "/admin/epcs/reports/\(day)/review", ["note": "checked", "adminPassword": "not my password"])
            #expect(wrong.status == .forbidden)
            #expect(wrong.text.contains("Your current password is not correct."))
            #expect(try await EPCSReportReview.query(on: ctx.app.db).count() == 0)
            let done = try await approver.post(
                "/admin/epcs/reports/\(day)/review",
                ["note": "Attempt by dr.smith before the grant: not an incident.", "adminPassword": Fixtures.password])
            #expect(done.location == "/admin/epcs/reports/\(day)?reviewed=1", "\(done.status) \(done.text)")
            let after = try await approver.get(try #require(done.location))
            #expect(after.text.contains("The report is marked reviewed."))
            #expect(after.text.contains("Reviewed by <strong>approver.two</strong>"))
            #expect(!after.text.contains("id=\"review-form\""))

            let review = try #require(try await EPCSReportReview.query(on: ctx.app.db).first())
            #expect(review.day == day)
            #expect(review.reviewedBy == h.secondUser.id)
            #expect(review.incidents == 1)
            let audited = try await h.events(.epcsReportReviewed)
            #expect(audited.count == 1)
            #expect(audited.first?.actorID == h.secondUser.id)
            #expect(EPCSHarness.details(try #require(audited.first))["day"] == day)
            #expect(EPCSHarness.details(try #require(audited.first))["incidents"] == "1")

            // A second review of the same day: 409, on the API too; the first review stands.
            let one = try await h.signIn("approver.one", secret: h.first.secret)
            let again = try await one.send(
                .POST, "/api/v1/practice/epcs/reports/\(day)/review", json: ["note": "me too", "adminPassword": Fixtures.password])
            #expect(again.status == .conflict)
            #expect(again.reason.contains("already reviewed by approver.two"))
            #expect(try await EPCSReportReview.query(on: ctx.app.db).count() == 1)
            let report = try await one.send(.GET, "/api/v1/practice/epcs/reports/\(day)")
            #expect((report.json["review"] as? [String: Any])?["reviewedBy"] as? String == "approver.two")

            // The API review of another day, by approver one; a body without the (required) password is refused.
            let noPassword = try await one.send(.POST, "/api/v1/practice/epcs/reports/2030-03-18/review", json: ["note": "fine"])
            #expect(noPassword.status == .badRequest)
            #expect(noPassword.reason.contains("adminPassword"), "\(noPassword.text)")
            let reviewed = try await one.send(
                .POST, "/api/v1/practice/epcs/reports/2030-03-18/review", json: ["note": "fine", "adminPassword": Fixtures.password])
            #expect(reviewed.status == .ok, "\(reviewed.text)")
            #expect((reviewed.json["review"] as? [String: Any])?["reviewedBy"] as? String == "approver.one")
            #expect(try await h.events(.epcsReportReviewed).count == 2)
            // A prescriber is neither an administrator nor an approver.
            let prescriber = try await h.signIn("dr.smith", secret: h.prescriber.secret)
            #expect(try await prescriber.send(.GET, "/api/v1/practice/epcs/reports/\(day)").status == .forbidden)
            #expect(
                try await prescriber.send(
                    .POST, "/api/v1/practice/epcs/reports/2030-03-16/review", json: ["adminPassword": Fixtures.password]
                ).status == .forbidden)
            let future = try await one.send(
                .POST, "/api/v1/practice/epcs/reports/2030-03-25/review", json: ["adminPassword": Fixtures.password])
            #expect(future.status == .badRequest)

            // The list shows who reviewed; the approvers' home no longer counts the day.
            let listed = try await approver.get("/admin/epcs/reports")
            #expect(listed.text.contains("Reviewed by approver.two"))
            let home = try await approver.get("/")
            #expect(home.text.contains("id=\"epcs-panel\""))
            #expect(home.text.contains("within one business day"))
            #expect(!home.text.contains("/admin/epcs/reports/\(day)\""))
            #expect(!(try await manager.get("/")).text.contains("id=\"epcs-panel\""))
        }
    }

    @Test func testMonthlyLog() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            try await h.grant()
            let key = try await h.apiKey()
            // Two signings in March 2030, one in April.
            ctx.clock.advance(30)
            try await Self.sign(h, key: key, summary: "Oxycodone 5 mg tablet, #20\nLorazepam 1 mg tablet, #10", hash: Self.hashOne)
            try Self.move(ctx, to: "2030-03-30T15:00:00Z")
            try await Self.sign(h, key: key, summary: "=HYPERLINK(\"http://evil.example\")", hash: Self.hashTwo)
            try Self.move(ctx, to: "2030-04-02T08:00:00Z")
            try await Self.sign(h, key: key, summary: "Hydrocodone 10 mg tablet, #30", hash: Self.hashThree)
            // An unfinished signing is not in the log.
            #expect(try await h.startStepUp(key: key).status == .created)

            let me = try await h.signIn("dr.smith", secret: h.prescriber.secret)
            let march = try await me.send(.GET, "/api/v1/me/epcs/log?month=2030-03")
            #expect(march.status == .ok, "\(march.text)")
            #expect(march.json["month"] as? String == "2030-03")
            let signings = try #require(march.json["signings"] as? [[String: Any]])
            #expect(signings.map { $0["actionHash"] as? String } == [Self.hashOne, Self.hashTwo])
            let first = try #require(signings.first)
            #expect(first["summary"] as? String == "Oxycodone 5 mg tablet, #20\nLorazepam 1 mg tablet, #10")
            #expect(first["deaNumber"] as? String == EPCSHarness.deaNumber)
            #expect(first["status"] as? String == "completed")
            #expect((first["factors"] as? [String])?.isEmpty == false)
            let stored = try #require(try await StepUpChallenge.query(on: ctx.app.db).filter(\.$actionHash == Self.hashOne).first())
            #expect(first["factors"] as? [String] == (stored.amr ?? "").split(separator: " ").map(String.init))
            #expect(first["attestationHash"] as? String == stored.attestationHash)
            #expect((first["time"] as? String)?.hasPrefix("2030-03-17") == true)

            let april = try await me.send(.GET, "/api/v1/me/epcs/log?month=2030-04")
            #expect((april.json["signings"] as? [[String: Any]])?.map { $0["actionHash"] as? String } == [Self.hashThree])
            let current = try await me.send(.GET, "/api/v1/me/epcs/log")
            #expect(current.json["month"] as? String == "2030-04")
            #expect((current.json["signings"] as? [[String: Any]])?.count == 1)
            let bad = try await me.send(.GET, "/api/v1/me/epcs/log?month=2030-13")
            #expect(bad.status == .badRequest)
            #expect(bad.reason.contains("not a month"))
            // Another user's log does not show dr.smith's signings.
            let approver = try await h.signIn("approver.one", secret: h.first.secret)
            #expect(
                (try await approver.send(.GET, "/api/v1/me/epcs/log?month=2030-03").json["signings"] as? [[String: Any]])?.isEmpty == true)

            // CSV: quoted, and the summary that looks like a formula stays text.
            let csv = try await me.send(.GET, "/account/epcs.csv?month=2030-03")
            #expect(csv.status == .ok)
            #expect(csv.headers.contentType?.subType == "csv")
            let lines = csv.text.components(separatedBy: "\r\n").filter { !$0.isEmpty }
            #expect(lines.first == "time,summary,action_hash,attestation_hash,factors,dea_number,status")
            #expect(lines.count == 3) // the two-line summary is one quoted cell (its line break is LF, rows end in CR LF)
            #expect(csv.text.contains("\"'=HYPERLINK(\"\"http://evil.example\"\")\""))
            #expect(csv.text.contains("\"\(Self.hashTwo)\""))
            #expect(!csv.text.contains(Self.hashThree))

            // The page, with links to the months either side; home links to it for a prescriber.
            let page = try await me.send(.GET, "/account/epcs?month=2030-03")
            #expect(page.status == .ok)
            #expect(page.text.contains("Lorazepam 1 mg tablet, #10"))
            #expect(page.text.contains("/account/epcs?month=2030-02"))
            #expect(page.text.contains("/account/epcs?month=2030-04"))
            #expect(page.text.contains("/account/epcs.csv?month=2030-03"))
            #expect(try await me.send(.GET, "/account/epcs?month=March").status == .badRequest)
            #expect((try await me.send(.GET, "/")).text.contains("href=\"/account/epcs\""))
            #expect(!(try await approver.send(.GET, "/")).text.contains("href=\"/account/epcs\""))
        }
    }

    /// Captures what a command prints.
    final class CapturingConsole: Console, @unchecked Sendable {
        private let lock = NSLock()
        private var buffer = ""
        var userInfo: [AnySendableHashable: any Sendable] = [:]
        var size: (width: Int, height: Int) { (200, 50) }
        var text: String { lock.withLock { buffer } }
        func input(isSecure: Bool) -> String { "" }
        func output(_ text: ConsoleText, newLine: Bool) { lock.withLock { buffer += text.description + (newLine ? "\n" : "") } }
        func clear(_ type: ConsoleClear) {}
        func report(error: String, newLine: Bool) { lock.withLock { buffer += error + (newLine ? "\n" : "") } }
    }

    static func runCLI(_ ctx: TestContext, _ arguments: [String]) async throws -> String {
        let console = CapturingConsole()
        var context = CommandContext(console: console, input: CommandInput(arguments: ["twofold"] + arguments))
        context.application = ctx.app
        try await EPCSCommands().run(using: &context)
        return console.text
    }

    @Test func testReportCommand() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let key = try await h.apiKey()
            #expect(try await h.startStepUp(key: key).status == .forbidden)
            let practice = try h.practice.requireID().uuidString
            let text = try await Self.runCLI(ctx, ["report", "--practice", practice, "--date", "2030-03-17"])
            #expect(text.contains("EPCS daily report of Riverside Family Medicine for 2030-03-17"))
            #expect(text.contains("The whole audit log is intact"))
            #expect(text.contains("epcs.unauthorized_attempt"))
            #expect(text.contains("[INCIDENT: attempted unauthorized access]"))
            #expect(text.contains("1 potential security incident:"))
            #expect(text.contains("within one business day"))

            let json = try await Self.runCLI(ctx, ["report", "--practice", practice, "--date", "2030-03-17", "--json"])
            let decoded = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            #expect(decoded?["incidentCount"] as? Int == 1)
            #expect((decoded?["verification"] as? [String: Any])?["intact"] as? Bool == true)
            let csv = try await Self.runCLI(ctx, ["report", "--practice", practice, "--date", "2030-03-17", "--csv"])
            #expect(csv.hasPrefix("seq,time,event,actor,subject,details,incident\r\n"))
            #expect(csv.contains("\"attempted unauthorized access\""))

            // Wrong input: a clear message and a non-zero exit (the error).
            await #expect(throws: CLIError.self) { try await Self.runCLI(ctx, ["report", "--practice", practice, "--date", "2030-02-30"]) }
            await #expect(throws: CLIError.self) { try await Self.runCLI(ctx, ["report", "--practice", practice, "--date", "2030-03-18"]) }
            await #expect(throws: CLIError.self) {
                try await Self.runCLI(ctx, ["report", "--practice", "not-an-id", "--date", "2030-03-17"])
            }
            await #expect(throws: CLIError.self) { try await Self.runCLI(ctx, ["report", "--date", "2030-03-17"]) }
            await #expect(throws: CLIError.self) {
                try await Self.runCLI(ctx, ["report", "--practice", practice, "--date", "2030-03-17", "--json", "--csv"])
            }
            do {
                _ = try await Self.runCLI(ctx, ["report", "--practice", UUID().uuidString, "--date", "2030-03-17"])
                Issue.record("an unknown practice must be refused")
            } catch let error as CLIError {
                #expect(error.description.contains("there is no practice with id"))
            }
        }
    }

    @Test func testDailyAnalysisAlertsApproversOncePerDay() async throws {
        try await withTestApp { ctx in
            let h = try await EPCSHarness.make(ctx)
            let key = try await h.apiKey()
            #expect(try await h.startStepUp(key: key).status == .forbidden) // 2030-03-17: one potential incident
            #expect(try await h.enter().status == .created) // the practice has EPCS grants
            // A practice without EPCS is not analysed.
            let quiet = try await Fixtures.practice(ctx, name: "Lakeside Pediatrics")

            // Still 2030-03-17: yesterday (the 16th) had nothing; no alert.
            let sameDay = try await EPCSDailyAnalysis.run(database: ctx.app.db, now: ctx.clock.now)
            #expect(sameDay.day == "2030-03-16")
            #expect(sameDay.analysed == [try h.practice.requireID()])
            #expect(sameDay.alerts == 0)

            try Self.move(ctx, to: "2030-03-18T00:10:00Z")
            // Two instances at once: one analysis, one alert.
            async let a = EPCSDailyAnalysis.run(database: ctx.app.db, now: ctx.clock.now)
            async let b = EPCSDailyAnalysis.run(database: ctx.app.db, now: ctx.clock.now)
            let (first, second) = try await (a, b)
            #expect(first.analysed.count + second.analysed.count == 1)
            #expect(first.alerts + second.alerts == 1)
            let again = try await EPCSDailyAnalysis.run(database: ctx.app.db, now: ctx.clock.now.addingTimeInterval(600))
            #expect(again.analysed.isEmpty)
            let alerts = try await EPCSAlert.query(on: ctx.app.db).filter(\.$kind == EPCSDailyAnalysis.alertKind).all()
            #expect(alerts.map(\.message) == ["1 potential security incident in the EPCS report of 2030-03-17"])
            #expect(alerts.first?.practiceID == h.practice.id)
            let marks = try await EPCSDailyAnalysis.query(on: ctx.app.db).filter(\.$day == "2030-03-17").all()
            #expect(marks.map(\.practiceID) == [try h.practice.requireID()])
            #expect(marks.first?.incidents == 1)
            #expect(marks.first?.intact == true)
            #expect(!marks.contains { $0.practiceID == quiet.id })

            // The approvers see it on their home page, with the unreviewed report.
            let approver = try await Self.signOn(ctx, "approver.two", secret: h.second.secret)
            let home = try await approver.get("/")
            #expect(home.text.contains("1 potential security incident in the EPCS report of 2030-03-17"))
            #expect(home.text.contains("href=\"/admin/epcs\""))
            #expect(home.text.contains("href=\"/admin/epcs/reports/2030-03-17\""))
            #expect(home.text.contains("open potential incident"))

            // A log that no longer verifies: the next day's analysis records the failure and alerts.
            try Self.move(ctx, to: "2030-03-19T00:10:00Z")
            try await ctx.app.db.sql.raw("UPDATE audit_events SET ip = \(bind: "203.0.113.9") WHERE seq = 3").run()
            let broken = try await EPCSDailyAnalysis.run(database: ctx.app.db, now: ctx.clock.now)
            #expect(broken.alerts == 1)
            let failure = try await AuditEvent.query(on: ctx.app.db).filter(\.$event == AuditEventType.auditIntegrityFailed.rawValue).all()
            #expect(failure.count == 1)
            #expect(failure.first?.practiceID == h.practice.id)
            #expect(try await EPCSDailyAnalysis.query(on: ctx.app.db).filter(\.$day == "2030-03-18").first()?.intact == false)
            #expect(try await EPCSAlert.query(on: ctx.app.db).filter(\.$kind == EPCSDailyAnalysis.alertKind).count() == 2)

            // The server was down for days: the missed days of the last week are analysed too.
            try Self.move(ctx, to: "2030-03-23T00:10:00Z")
            let caughtUp = try await EPCSDailyAnalysis.run(database: ctx.app.db, now: ctx.clock.now)
            #expect(caughtUp.day == "2030-03-22")
            #expect(caughtUp.analysed == [try h.practice.requireID()])
            let analysedDays = try await EPCSDailyAnalysis.query(on: ctx.app.db).filter(\.$practiceID == (try h.practice.requireID())).all()
                .map(\.day)
                .sorted()
            #expect(analysedDays == ["2030-03-16", "2030-03-17", "2030-03-18", "2030-03-19", "2030-03-20", "2030-03-21", "2030-03-22"])
        }
    }
}
