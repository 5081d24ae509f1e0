import Fluent
import TwofoldAPI
import TwofoldCore
import Vapor

/// The daily EPCS audit report and the prescriber's monthly log: pages, exports and API.
struct EPCSReportController: RouteCollection {
    static let bodyLimit: ByteCount = "16kb"

    func boot(routes: any RoutesBuilder) throws {
        let web = routes.grouped(CSRFGuard(protectsAnonymousRequests: true)).grouped(SessionGuard(requirement: .signedIn, style: .web))
        let reports = web.grouped(AdminGuard())
        reports.get(AdminPath.epcsReports, use: listPage)
        reports.get(AdminPath.epcsReport(.placeholder), use: dayPage)
        reports.on(.POST, AdminPath.epcsReportReview(.placeholder), body: .collect(maxSize: Self.bodyLimit), use: reviewPage)
        web.get(WebPath.epcsLog, use: monthlyPage)
        web.get(WebPath.epcsLogCSV, use: monthlyCSV)

        let api = routes.grouped(CSRFGuard(protectsAnonymousRequests: false)).grouped(SessionGuard(requirement: .signedIn, style: .api))
        let practice = api.grouped(AdminGuard())
        practice.get(APIPath.epcsReport(.placeholder), use: apiReport)
        practice.on(.POST, APIPath.epcsReportReview(.placeholder), body: .collect(maxSize: Self.bodyLimit), use: apiReview)
        api.get(APIPath.meEPCSLog, use: apiMonthlyLog)
    }

    static func reports(_ req: Request) throws -> EPCSReport {
        var reports = try EPCSReport(database: req.db, now: req.now)
        reports.policy = req.policy
        return reports
    }

    // MARK: reviewing

    enum ReviewError: AbortError {
        case notApprover
        case alreadyReviewed(by: String, at: Date)
        case noteTooLong

        var status: HTTPResponseStatus {
            switch self {
            case .notApprover: .forbidden
            case .alreadyReviewed: .conflict
            case .noteTooLong: .badRequest
            }
        }

        var reason: String {
            switch self {
            case .notApprover:
                "Only one of the practice's EPCS access approvers may mark a daily EPCS report reviewed (21 CFR 1311.150(c)); the attempt was recorded."
            case .alreadyReviewed(let by, let at):
                "This day's report was already reviewed by \(by) on \(SecurityWebController.format(at)); a report is reviewed once. Add anything new to your incident records instead."
            case .noteTooLong: "The review note may have at most \(ReviewInput.noteLimit) characters."
            }
        }
    }

    /// A review as the page's form sends it (the API's `ReviewEPCSReportRequest` is turned into one).
    struct ReviewInput: Content {
        static let noteLimit = TwofoldPolicy.standard.fields.reviewNote
        var note: String?
        var adminPassword: String?
        var csrf: String?
    }

    /// An approver marks a day's report reviewed (§1311.150(c)), with their password re-entered; audited with the
    /// number of potential incidents the report showed. One review per practice and day.
    static func review(_ req: Request, day rawDay: String, input: ReviewInput) async throws -> EPCSDailyReport {
        let session = try req.requireSession()
        let (day, _) = try EPCSReport.validatedDay(rawDay, now: req.now)
        guard session.user.epcsApprover else {
            try await req.audit(
                .epcsUnauthorizedAttempt, practiceID: session.practiceID, actorID: session.userID,
                details: ["action": "review_report", "day": day, "reason": "not an EPCS access approver"])
            throw ReviewError.notApprover
        }
        let note = (input.note ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard note.count <= ReviewInput.noteLimit else { throw ReviewError.noteTooLong }
        if let existing = try await EPCSReportReview.query(on: req.db).filter(\.$practiceID == session.practiceID).filter(\.$day == day)
            .first()
        {
            throw ReviewError.alreadyReviewed(
                by: try await User.find(existing.reviewedBy, on: req.db)?.username ?? "a former approver", at: existing.reviewedAt)
        }
        guard let password = input.adminPassword, !password.isEmpty else { throw Reauthentication.Failure.passwordRequired }
        try await Reauthentication(context: req.serviceContext).confirm(password: password, session: session)
        let report = try await reports(req).build(practice: session.practice, day: day)
        let review = EPCSReportReview(
            practiceID: session.practiceID, day: day, reviewedBy: session.userID, incidents: report.incidentCount, note: note, now: req.now)
        do {
            try await req.db.transaction { db in
                try await review.create(on: db)
                try await req.audit(
                    .epcsReportReviewed, practiceID: session.practiceID, actorID: session.userID, subjectID: nil,
                    details: [
                        "day": day, "incidents": String(report.incidentCount), "events": String(report.events.count),
                        "audit_intact": String(report.verification?.intact ?? false), "note": String(note.prefix(200)),
                    ], on: db)
            }
        } catch let error as any DatabaseError where error.isConstraintFailure {
            // Two approvers at once: the first review counts.
            let existing = try await EPCSReportReview.query(on: req.db).filter(\.$practiceID == session.practiceID).filter(\.$day == day)
                .first()
            throw ReviewError.alreadyReviewed(
                by: try await existing.asyncMap { try await User.find($0.reviewedBy, on: req.db)?.username } ?? "another approver",
                at: existing?.reviewedAt ?? req.now)
        }
        var reviewed = report
        reviewed.review = .init(
            reviewedBy: session.user.username, reviewedAt: review.reviewedAt, note: note, incidents: report.incidentCount)
        return reviewed
    }

    // MARK: pages

    struct Row: Encodable {
        var seq: String
        var time: String
        var type: String
        var actor: String
        var subject: String
        var details: String
        var incident: String?
    }

    struct DayPage: Encodable {
        var layout: Layout
        var day: String
        var practiceName: String
        var workingHours: String
        var rows: [Row]
        var incidents: [EPCSDailyReport.Incident]
        var incidentCount: Int
        var verificationIntact: Bool
        var verificationSummary: String
        var review: EPCSDailyReport.Review?
        var reviewedAt: String?
        var canReview: Bool
        var justReviewed: Bool
        var note: String
        var reviewAction: String
        var csvLink: String
        var jsonLink: String
        var listLink = AdminPath.epcsReports.string
        var duty = EPCSDailyReport.reportingDuty
    }

    struct DayLine: Encodable {
        var day: String
        var link: String
        var events: Int
        var incidents: Int
        var reviewed: String
        var isReviewed: Bool
    }

    struct ListPage: Encodable {
        var layout: Layout
        var days: [DayLine]
        var unreviewed: Int
        var duty = EPCSDailyReport.reportingDuty
    }

    @Sendable func listPage(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let days = try await Self.reports(req).days(practice: session.practice)
        let lines = days.map { day in
            DayLine(
                day: day.day, link: AdminPath.epcsReport(day.day).string, events: day.events, incidents: day.incidents,
                reviewed: day.review.map { "Reviewed by \($0.reviewedBy) on \(SecurityWebController.format($0.reviewedAt))" }
                    ?? "Not reviewed",
                isReviewed: day.review != nil)
        }
        return try await req.render(
            "admin-epcs-reports",
            ListPage(
                layout: req.layout("EPCS daily reports"), days: lines,
                unreviewed: days.filter { $0.events > 0 && $0.review == nil }.count))
    }

    /// The day's report page, or its `.csv` / `.json` export.
    @Sendable func dayPage(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let parameter = try req.parameters.require("day")
        for (suffix, type) in [
            (".csv", HTTPMediaType(type: "text", subType: "csv", parameters: ["charset": "utf-8"])), (".json", HTTPMediaType.json),
        ]
        where parameter.hasSuffix(suffix) {
            let day = String(parameter.dropLast(suffix.count))
            let report = try await Self.reports(req).build(practice: session.practice, day: day)
            let response = Response(status: .ok, body: .init(string: suffix == ".csv" ? report.csv() : try report.json()))
            response.headers.contentType = type
            response.headers.contentDisposition = .init(.attachment, filename: "twofold-epcs-report-\(report.day)\(suffix)")
            return response
        }
        return try await renderDay(req, day: parameter, error: nil, status: .ok, note: "")
    }

    func renderDay(_ req: Request, day: String, error: String?, status: HTTPResponseStatus, note: String) async throws -> Response {
        let session = try req.requireSession()
        let report = try await Self.reports(req).build(practice: session.practice, day: day)
        let rows = report.events.map { row in
            Row(
                seq: String(row.seq), time: SecurityWebController.format(row.time), type: row.type, actor: row.actor ?? "",
                subject: row.subject ?? "",
                details: row.details.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "),
                incident: row.incident)
        }
        let page = DayPage(
            layout: req.layout("EPCS report \(report.day)", error: error), day: report.day, practiceName: report.practiceName,
            workingHours: report.workingHours,
            rows: rows, incidents: report.incidents, incidentCount: report.incidentCount,
            verificationIntact: report.verification?.intact ?? false, verificationSummary: report.verification?.summary ?? "",
            review: report.review, reviewedAt: report.review.map { SecurityWebController.format($0.reviewedAt) },
            canReview: session.user.epcsApprover && report.review == nil,
            justReviewed: report.review != nil && (try? req.query.get(String.self, at: "reviewed")) == "1",
            note: note, reviewAction: AdminPath.epcsReportReview(report.day).string,
            csvLink: AdminPath.epcsReport(report.day + ".csv").string, jsonLink: AdminPath.epcsReport(report.day + ".json").string)
        return try await req.render("admin-epcs-report", page, status: status)
    }

    @Sendable func reviewPage(req: Request) async throws -> Response {
        let day = try req.parameters.require("day")
        let input = try req.content.decode(ReviewInput.self)
        do {
            let report = try await Self.review(req, day: day, input: input)
            return req.redirect(to: AdminPath.epcsReport(report.day), query: ["reviewed": "1"])
        } catch let error as EPCSReport.DayError {
            throw error
        } catch let error as any AbortError {
            return try await renderDay(req, day: day, error: error.reason, status: error.status, note: input.note ?? "")
        }
    }

    // MARK: API

    @Sendable func apiReport(req: Request) async throws -> API.EPCSReport {
        let session = try req.requireSession()
        return try API.EPCSReport(try await Self.reports(req).build(practice: session.practice, day: try req.parameters.require("day")))
    }

    @Sendable func apiReview(req: Request) async throws -> API.EPCSReport {
        let body = try req.apiBody(API.ReviewEPCSReportRequest.self)
        let input = ReviewInput(note: body.note, adminPassword: body.adminPassword)
        return try API.EPCSReport(try await Self.review(req, day: try req.parameters.require("day"), input: input))
    }

    @Sendable func apiMonthlyLog(req: Request) async throws -> API.EPCSMonthlyLog {
        let session = try req.requireSession()
        return try API.EPCSMonthlyLog(
            try await EPCSMonthlyLog.build(
                database: req.db, userID: session.userID, month: try? req.query.get(String.self, at: "month"), now: req.now))
    }

    // MARK: the prescriber's monthly log

    struct Signing: Encodable {
        var time: String
        var summary: [String]
        var actionHash: String
        var attestationHash: String
        var factors: String
        var deaNumber: String
        var status: String
    }

    struct MonthlyPage: Encodable {
        var layout: Layout
        var month: String
        var monthName: String
        var signings: [Signing]
        var previousLink: String
        var nextLink: String?
        var csvLink: String
    }

    @Sendable func monthlyPage(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let log = try await EPCSMonthlyLog.build(
            database: req.db, userID: session.userID, month: try? req.query.get(String.self, at: "month"), now: req.now)
        let (_, start, end) = try EPCSMonthlyLog.validatedMonth(log.month, now: req.now)
        let previous = EPCSDay.calendar.date(byAdding: .month, value: -1, to: start)!
        let current = String(EPCSDay.string(req.now).prefix(7))
        let next = String(EPCSDay.string(end).prefix(7))
        let signings = log.signings.map { signing in
            Signing(
                time: SecurityWebController.format(signing.time), summary: EPCS.summaryLines(signing.summary),
                actionHash: signing.actionHash,
                attestationHash: signing.attestationHash ?? "", factors: signing.factors.joined(separator: ", "),
                deaNumber: signing.deaNumber ?? "",
                status: signing.status)
        }
        let monthName = start.formatted(Date.FormatStyle(timeZone: TimeZone(identifier: "UTC")!).month(.wide).year())
        let page = MonthlyPage(
            layout: req.layout("EPCS signings"), month: log.month, monthName: monthName, signings: signings,
            previousLink: WebPath.epcsLog.string(query: ["month": String(EPCSDay.string(previous).prefix(7))]),
            nextLink: next <= current ? WebPath.epcsLog.string(query: ["month": next]) : nil,
            csvLink: WebPath.epcsLogCSV.string(query: ["month": log.month]))
        return try await req.render("account-epcs-log", page)
    }

    @Sendable func monthlyCSV(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let log = try await EPCSMonthlyLog.build(
            database: req.db, userID: session.userID, month: try? req.query.get(String.self, at: "month"), now: req.now)
        let response = Response(status: .ok, body: .init(string: log.csv()))
        response.headers.contentType = HTTPMediaType(type: "text", subType: "csv", parameters: ["charset": "utf-8"])
        response.headers.contentDisposition = .init(.attachment, filename: "twofold-epcs-signings-\(log.month).csv")
        return response
    }
}

// MARK: the API's bodies

extension API.EPCSReport: Content {}
extension API.ReviewEPCSReportRequest: Content {}
extension API.EPCSMonthlyLog: Content {}

extension API.EPCSReport {
    /// A daily report as the JSON API (and the `.json` export) shows it.
    init(_ report: EPCSDailyReport) throws {
        self.init(
            practiceId: report.practiceId.uuidString, practiceName: report.practiceName, day: report.day, generatedAt: report.generatedAt,
            workingHours: report.workingHours, events: report.events.map(API.EPCSReportEvent.init),
            incidents: report.incidents.map(API.EPCSReportIncident.init), incidentCount: report.incidentCount,
            revocationsAwaitingConfirmation: report.revocationsAwaitingConfirmation.map(API.EPCSRevocationAwaitingConfirmation.init),
            verification: try report.verification.map(API.EPCSAuditVerification.init), review: report.review.map(API.EPCSReportReview.init))
    }
}

extension API.EPCSReportEvent {
    init(_ row: EPCSDailyReport.Row) {
        self.init(
            seq: Int(row.seq), time: row.time, _type: row.type, actor: row.actor, subject: row.subject,
            details: .init(additionalProperties: row.details), incident: row.incident)
    }
}

extension API.EPCSReportIncident {
    init(_ incident: EPCSDailyReport.Incident) {
        self.init(
            reason: incident.reason, detail: incident.detail, seq: incident.seq.map { Int($0) }, time: incident.time,
            subject: incident.subject)
    }
}

extension API.EPCSRevocationAwaitingConfirmation {
    init(_ revocation: EPCSDailyReport.OpenRevocation) {
        self.init(
            grant: revocation.grant, username: revocation.username, revokedAt: revocation.revokedAt, revokedBy: revocation.revokedBy,
            reason: revocation.reason)
    }
}

extension API.EPCSAuditVerification {
    init(_ verification: EPCSDailyReport.Verification) throws {
        self.init(
            intact: verification.intact, scope: try .documented(verification.scope), eventsChecked: verification.eventsChecked,
            checkpointsChecked: verification.checkpointsChecked, checkpointFile: verification.checkpointFile,
            problem: verification.problem, summary: verification.summary, verifiedAt: verification.verifiedAt)
    }
}

extension API.EPCSReportReview {
    init(_ review: EPCSDailyReport.Review) {
        self.init(reviewedBy: review.reviewedBy, reviewedAt: review.reviewedAt, note: review.note, incidents: review.incidents)
    }
}

extension API.EPCSMonthlyLog {
    /// The prescriber's signings of a month; a signing's status is one the document lists.
    init(_ log: TwofoldServer.EPCSMonthlyLog) throws {
        self.init(month: log.month, signings: try log.signings.map(API.EPCSSigning.init))
    }
}

extension API.EPCSSigning {
    init(_ signing: EPCSMonthlyLog.Signing) throws {
        self.init(
            time: signing.time, summary: signing.summary, actionHash: signing.actionHash, attestationHash: signing.attestationHash,
            factors: signing.factors, deaNumber: signing.deaNumber, status: try .documented(signing.status))
    }
}

extension Optional {
    fileprivate func asyncMap<T>(_ transform: (Wrapped) async throws -> T?) async rethrows -> T? {
        guard let value = self else { return nil }
        return try await transform(value)
    }
}
