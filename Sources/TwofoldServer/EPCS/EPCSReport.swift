import Fluent
import FluentSQL
import Foundation
import SQLKit
import TwofoldAPI
import TwofoldCore
import Vapor

/// One practice's daily EPCS audit report (21 CFR 1311.150(b)): the day's auditable EPCS events, the ones that are
/// potential security incidents, the result of verifying the audit log, and the approver's review (§1311.150(c)).
struct EPCSDailyReport: Sendable, Equatable {
    /// One audit event of the day.
    struct Row: Sendable, Equatable {
        var seq: Int64
        var time: Date
        var type: String
        /// Usernames; a deleted user shows as "deleted user" and the start of their id.
        var actor: String?
        var subject: String?
        var details: [String: String]
        /// Why this event is a potential security incident, or nil.
        var incident: String?
    }

    /// A potential security incident: a flagged event, a failed verification, or a revocation still unconfirmed at the day's end.
    struct Incident: Sendable, Equatable, Encodable {
        var reason: String
        var detail: String
        var seq: Int64?
        var time: Date?
        var subject: String?
    }

    /// The result of the audit verification `twofold audit verify` runs. Twofold's audit log is one keyed chain, so the
    /// whole log is verified (every event from the first, every signed checkpoint); this day's events are part of it.
    struct Verification: Sendable, Equatable {
        var intact: Bool
        /// Always "whole_log": there is no verification of a single day on its own.
        var scope: String
        var eventsChecked: Int
        var checkpointsChecked: Int
        /// The external checkpoint file also compared, when the server keeps one.
        var checkpointFile: String?
        var problem: String?
        var summary: String
        var verifiedAt: Date
    }

    struct Review: Sendable, Equatable, Encodable {
        var reviewedBy: String
        var reviewedAt: Date
        var note: String
        var incidents: Int
    }

    /// A revocation entered by one approver and not yet confirmed by a second at the end of the day (§1311.125(c)).
    struct OpenRevocation: Sendable, Equatable {
        var grant: String
        var username: String
        var revokedAt: Date
        var revokedBy: String
        var reason: String
    }

    var practiceId: UUID
    var practiceName: String
    /// YYYY-MM-DD, a UTC day.
    var day: String
    var generatedAt: Date
    /// The practice's EPCS working hours, against which approvals are flagged.
    var workingHours: String
    var events: [Row]
    var incidents: [Incident]
    var incidentCount: Int
    var revocationsAwaitingConfirmation: [OpenRevocation]
    /// Nil only in lists that do not verify the log (the administration home and the list of days).
    var verification: Verification?
    var review: Review?

    static let reportingDuty =
        "Potential security incidents must be reported to the application provider and to DEA within one business day (21 CFR 1311.150(c))."

    // MARK: renderings

    /// The report as the API's `EPCSReport` JSON, pretty-printed with sorted keys (the `.json` export and the CLI's `--json`).
    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(try API.EPCSReport(self)), as: UTF8.self) + "\n"
    }

    static func detailsText(_ details: [String: String]) -> String {
        details.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
    }

    /// RFC 4180 CSV with the audit export's cell quoting (formula-injection safe): one line per event, then the audit
    /// verification and each revocation awaiting confirmation as lines of their own (no seq), so the file says all the
    /// report says.
    func csv() -> String {
        var lines = ["seq,time,event,actor,subject,details,incident"]
        func line(_ cells: [String]) { lines.append(cells.map(AuditQuery.csvCell).joined(separator: ",")) }
        for row in events {
            line([
                String(row.seq), row.time.ISO8601Format(), row.type, row.actor ?? "", row.subject ?? "", Self.detailsText(row.details),
                row.incident ?? "",
            ])
        }
        if let verification {
            var details = [
                "scope": verification.scope, "intact": String(verification.intact), "events_checked": String(verification.eventsChecked),
                "checkpoints_checked": String(verification.checkpointsChecked),
            ]
            if let problem = verification.problem { details["problem"] = problem }
            line([
                "", verification.verifiedAt.ISO8601Format(), "audit.verification", "", "", Self.detailsText(details),
                verification.intact ? "" : EPCSReport.Flag.integrity,
            ])
        }
        for revocation in revocationsAwaitingConfirmation {
            line([
                "", revocation.revokedAt.ISO8601Format(), "epcs.revocation_awaiting_confirmation", revocation.revokedBy,
                revocation.username,
                Self.detailsText(["grant": revocation.grant, "reason": revocation.reason]), EPCSReport.Flag.unconfirmedRevocation,
            ])
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }
}

/// One line of the list of days.
struct EPCSReportDay: Sendable, Equatable {
    var day: String
    var events: Int
    var incidents: Int
    var review: EPCSDailyReport.Review?
}

/// Verifies the audit log the way `twofold audit verify` does: ``AuditLog/verify(on:keys:external:source:)`` with the
/// audit keys of the database and, when the server keeps one, its checkpoint file.
struct EPCSAuditVerifier: Sendable {
    var keys: AuditKeys
    var checkpointFile: String?

    static func of(_ database: any Database) throws -> EPCSAuditVerifier {
        let context = try AuditContext.of(database)
        return EPCSAuditVerifier(keys: context.keys, checkpointFile: context.policy.file)
    }

    func verify(on database: any Database, now: Date) async throws -> EPCSDailyReport.Verification {
        var result = try await attempt(on: database, now: now)
        // The walk races events written while it runs (the head moves past the last page read); a real break stays.
        if !result.intact { result = try await attempt(on: database, now: now) }
        return result
    }

    private func attempt(on database: any Database, now: Date) async throws -> EPCSDailyReport.Verification {
        var external: [(line: Int, checkpoint: AuditCheckpoint)] = []
        var file: String?
        if let path = checkpointFile, FileManager.default.fileExists(atPath: path) {
            file = path
            do {
                external = try AuditCheckpoint.read(file: path)
            } catch {
                let problem = "the checkpoint file cannot be read: \(error)"
                return .init(
                    intact: false, scope: "whole_log", eventsChecked: 0, checkpointsChecked: 0, checkpointFile: path, problem: problem,
                    summary: "The audit log could NOT be verified: \(problem).", verifiedAt: now)
            }
        }
        let result = try await AuditLog.verify(on: database, keys: keys, external: external, source: file ?? "the checkpoint file")
        let against = file.map { " and compared with \($0)" } ?? ""
        let summary =
            result.problem.map { "The audit log is NOT intact: \($0) (\(result.checked) events before it verified)." }
            ?? "The whole audit log is intact: \(result.checked) events and \(result.checkpoints) signed checkpoints verified\(against). This day's events are part of those chains; there is no separate verification of a single day."
        return .init(
            intact: result.isIntact, scope: "whole_log", eventsChecked: result.checked, checkpointsChecked: result.checkpoints,
            checkpointFile: file, problem: result.problem, summary: summary, verifiedAt: now)
    }
}

/// Builds daily EPCS reports and the list of days awaiting review, from the audit log and the EPCS tables only.
struct EPCSReport {
    let database: any Database
    let now: Date
    let verifier: EPCSAuditVerifier
    /// How far before a day a step-up may have started and still belong to it.
    var policy = TwofoldPolicy.standard

    init(database: any Database, now: Date, verifier: EPCSAuditVerifier) {
        self.database = database
        self.now = now
        self.verifier = verifier
    }

    /// With the audit keys of the database (what `twofold audit verify` uses).
    init(database: any Database, now: Date) throws {
        self.init(database: database, now: now, verifier: try EPCSAuditVerifier.of(database))
    }

    static let listDays = 30

    /// The reasons a report gives for a potential security incident.
    enum Flag {
        static let unauthorized = "attempted unauthorized access"
        static let integrity = "audit integrity check failed"
        static let afterHours = "approved outside working hours"
        static let repeatedFailures = "repeated failed signings"
        static let lockout = "lockout of a prescriber"
        static let lostToken = "EPCS device reported lost or stolen"
        static let unconfirmedRevocation = "revocation awaiting a second approver's confirmation"
    }

    /// Events that can concern EPCS; which of them do is decided per event (whose step-up, whose lockout).
    static let candidateEvents: [String] = [
        AuditEventType.stepUpRequested, .stepUpVerified, .stepUpFailed, .secondFactorLocked, .secondFactorLockedPermanently,
        .pendingSignInCancelled, .auditIntegrityFailed, .factorRemoved, .passkeyRemoved, .twoFactorDisabled, .adminTwoFactorDisabled,
    ].map(\.rawValue)
    static let lockoutEvents: Set<String> = [AuditEventType.secondFactorLocked, .secondFactorLockedPermanently, .pendingSignInCancelled]
        .map(\.rawValue).asSet
    static let factorRemovalEvents: Set<String> = [
        AuditEventType.factorRemoved, .passkeyRemoved, .twoFactorDisabled, .adminTwoFactorDisabled,
    ].map(\.rawValue).asSet

    enum DayError: AbortError {
        case invalid(String)
        case future(String)
        case invalidMonth(String)

        var status: HTTPResponseStatus { .badRequest }
        var reason: String {
            switch self {
            case .invalid(let text):
                "\u{201C}\(text.prefix(40))\u{201D} is not a day: give a UTC calendar day as YYYY-MM-DD, e.g. 2030-03-18."
            case .future(let day): "\(day) has not begun yet (days are UTC); a report covers today or an earlier day."
            case .invalidMonth(let text): "\u{201C}\(text.prefix(40))\u{201D} is not a month: give month=YYYY-MM, e.g. 2030-03."
            }
        }
    }

    /// A YYYY-MM-DD that is a real day, not after today (UTC).
    static func validatedDay(_ text: String, now: Date) throws -> (day: String, start: Date) {
        guard let start = EPCSDay.start(text) else { throw DayError.invalid(text) }
        guard text <= EPCSDay.string(now) else { throw DayError.future(text) }
        return (text, start)
    }

    // MARK: building

    func build(practiceID: UUID, day: String) async throws -> EPCSDailyReport {
        guard let practice = try await Practice.find(practiceID, on: database) else {
            throw Abort(.notFound, reason: "There is no such practice.")
        }
        return try await build(practice: practice, day: day)
    }

    /// `verification`: a result already computed (the daily task verifies once for every practice); nil verifies now.
    func build(practice: Practice, day rawDay: String, verification: EPCSDailyReport.Verification? = nil) async throws -> EPCSDailyReport {
        let (day, start) = try Self.validatedDay(rawDay, now: now)
        let end = start.addingTimeInterval(86_400)
        let practiceID = try practice.requireID()
        let loaded = try await load(practiceID: practiceID, from: start, to: end)
        let verified: EPCSDailyReport.Verification
        if let verification { verified = verification } else { verified = try await verifier.verify(on: database, now: now) }
        let review = try await EPCSReportReview.query(on: database).filter(\.$practiceID == practiceID).filter(\.$day == day).first()
        return try await compose(practice: practice, day: day, end: end, loaded: loaded, verification: verified, review: review)
    }

    /// The last 30 days (today first) with their event and incident counts and reviews, without verifying the log.
    func days(practice: Practice) async throws -> [EPCSReportDay] {
        let practiceID = try practice.requireID()
        let today = EPCSDay.start(EPCSDay.string(now))!
        let first = today.addingTimeInterval(-Double(Self.listDays - 1) * 86_400)
        let loaded = try await load(practiceID: practiceID, from: first, to: today.addingTimeInterval(86_400))
        let reviews = try await EPCSReportReview.query(on: database).filter(\.$practiceID == practiceID)
            .filter(\.$day >= EPCSDay.string(first)).all()
        var result: [EPCSReportDay] = []
        for offset in 0..<Self.listDays {
            let start = today.addingTimeInterval(-Double(offset) * 86_400)
            let day = EPCSDay.string(start)
            let end = start.addingTimeInterval(86_400)
            let dayLoaded = loaded.restricted(from: start, to: end)
            let report = try await compose(
                practice: practice, day: day, end: end, loaded: dayLoaded, verification: nil,
                review: reviews.first { $0.day == day })
            result.append(EPCSReportDay(day: day, events: report.events.count, incidents: report.incidentCount, review: report.review))
        }
        return result
    }

    struct Pending: Sendable, Equatable {
        /// Days of the last 30 that had EPCS events and that no approver has reviewed, newest first.
        var days: [EPCSReportDay]
        var openAlerts: Int
        var openIncidents: Int { days.reduce(0) { $0 + $1.incidents } }
    }

    /// What approvers still have to look at: unreviewed days with EPCS events, and unacknowledged alerts.
    func pending(practiceID: UUID) async throws -> Pending {
        guard let practice = try await Practice.find(practiceID, on: database) else {
            throw Abort(.notFound, reason: "There is no such practice.")
        }
        let days = try await days(practice: practice).filter { $0.events > 0 && $0.review == nil }
        let alerts = try await EPCSAlert.query(on: database).filter(\.$practiceID == practiceID).filter(\.$acknowledgedAt == nil).count()
        return Pending(days: days, openAlerts: alerts)
    }

    // MARK: loading

    /// The EPCS-relevant events of a time range and what is needed to name and flag them.
    struct Loaded {
        var events: [AuditEvent]
        var names: [UUID: String]
        /// Users who have or had an active EPCS grant (approved, then perhaps revoked).
        var prescribers: Set<UUID>
        var grants: [EPCSGrant]

        func restricted(from start: Date, to end: Date) -> Loaded {
            let from = AuditLog.milliseconds(start), to = AuditLog.milliseconds(end)
            var copy = self
            copy.events = events.filter { $0.occurredMS >= from && $0.occurredMS < to }
            return copy
        }
    }

    private func load(practiceID: UUID, from start: Date, to end: Date) async throws -> Loaded {
        let from = AuditLog.milliseconds(start), to = AuditLog.milliseconds(end)
        let candidates = try await AuditEvent.query(on: database)
            .group(.or) { either in
                either.filter(\.$practiceID == practiceID)
                // An integrity failure recorded for the whole server concerns every practice.
                either.group(.and) { $0.filter(\.$practiceID == nil).filter(\.$event == AuditEventType.auditIntegrityFailed.rawValue) }
            }
            .filter(\.$occurredMS >= from).filter(\.$occurredMS < to)
            .group(.or) { $0.filter(\.$event, .contains(inverse: false, .prefix), "epcs.").filter(\.$event ~~ Self.candidateEvents) }
            .sort(\.$occurredMS).sort(\.$chainID).sort(\.$seq).all()
        let grants = try await EPCSGrant.query(on: database).filter(\.$practiceID == practiceID).all()
        let prescribers = Set(grants.filter { $0.decidedAt != nil && ($0.status == .active || $0.status == .revoked) }.map { $0.$user.id })
        // EPCS step-ups: the ones the events say are, and the practice's EPCS step-ups started in (or just before) the range.
        var epcsStepUps = Set<String>()
        for event in candidates {
            let details = Self.details(event)
            if let stepUp = details["step_up"], event.event.hasPrefix("epcs.") || details["action_type"] == StepUpChallenge.epcsActionType {
                epcsStepUps.insert(stepUp)
            }
        }
        let stepUpRows = try await StepUpChallenge.query(on: database).filter(\.$practiceID == practiceID)
            .filter(\.$actionType == StepUpChallenge.epcsActionType)
            .filter(\.$createdAt >= start.addingTimeInterval(-policy.stepUp.challengeLifetime)).filter(\.$createdAt < end).all()
        epcsStepUps.formUnion(stepUpRows.map(\.shortID))
        let events = candidates.filter { event in
            if event.event.hasPrefix("epcs.") || event.event == AuditEventType.auditIntegrityFailed.rawValue { return true }
            let details = Self.details(event)
            if event.event.hasPrefix("step_up.") {
                return details["action_type"] == StepUpChallenge.epcsActionType || details["step_up"].map(epcsStepUps.contains) == true
            }
            // Lockouts and factor removals matter for prescribers only.
            let person = event.subjectID ?? event.actorID
            return person.map(prescribers.contains) == true
        }
        var ids = Set(events.flatMap { [$0.actorID, $0.subjectID].compactMap { $0 } })
        for grant in grants {
            ids.insert(grant.$user.id)
            if let by = grant.revokedBy { ids.insert(by) }
        }
        let names =
            ids.isEmpty
            ? [:]
            : Dictionary(
                try await User.query(on: database).filter(\.$id ~~ Array(ids)).all().map { (try $0.requireID(), $0.username) },
                uniquingKeysWith: { a, _ in a })
        return Loaded(events: events, names: names, prescribers: prescribers, grants: grants)
    }

    static func details(_ event: AuditEvent) -> [String: String] {
        (try? JSONDecoder().decode([String: String].self, from: Data(event.details.utf8))) ?? [:]
    }

    // MARK: flagging

    private func compose(
        practice: Practice, day: String, end: Date, loaded: Loaded, verification: EPCSDailyReport.Verification?,
        review: EPCSReportReview?
    ) async throws -> EPCSDailyReport {
        func name(_ id: UUID?) -> String? { id.map { loaded.names[$0] ?? "deleted user \($0.uuidString.prefix(8))" } }
        let calendar = EPCSDay.calendar
        let start = practice.epcsWorkingHoursStart, finish = practice.epcsWorkingHoursEnd
        // Failed signings per prescriber: from the threshold on, each of them is flagged and the prescriber is one incident.
        var failures: [UUID: Int] = [:]
        for event in loaded.events where event.event == AuditEventType.epcsSigningFailed.rawValue {
            if let who = event.subjectID ?? event.actorID { failures[who, default: 0] += 1 }
        }
        var rows: [EPCSDailyReport.Row] = []
        var incidents: [EPCSDailyReport.Incident] = []
        var repeatedCounted = Set<UUID>()
        for event in loaded.events {
            let details = Self.details(event)
            let time = AuditLog.date(event.occurredMS)
            let person = event.subjectID ?? event.actorID
            var flag: String?
            switch event.event {
            case AuditEventType.epcsUnauthorizedAttempt.rawValue: flag = Flag.unauthorized
            case AuditEventType.auditIntegrityFailed.rawValue: flag = Flag.integrity
            case AuditEventType.epcsTokenReportedLost.rawValue: flag = Flag.lostToken
            case AuditEventType.epcsGrantApproved.rawValue:
                let parts = calendar.dateComponents([.hour, .weekday], from: time)
                if EPCS.isOutsideWorkingHours(hour: parts.hour ?? 0, weekday: parts.weekday ?? 1, start: start, end: finish) {
                    flag = Flag.afterHours
                }
            case AuditEventType.epcsSigningFailed.rawValue:
                if let person, failures[person, default: 0] >= EPCS.repeatedFailureThreshold { flag = Flag.repeatedFailures }
            case let type where Self.lockoutEvents.contains(type):
                if let person, loaded.prescribers.contains(person) { flag = Flag.lockout }
            default: break
            }
            rows.append(
                .init(
                    seq: event.seq, time: time, type: event.event, actor: name(event.actorID), subject: name(event.subjectID),
                    details: details, incident: flag))
            guard let flag else { continue }
            if flag == Flag.repeatedFailures {
                guard let person, repeatedCounted.insert(person).inserted else { continue }
                incidents.append(
                    .init(
                        reason: flag,
                        detail: "\(failures[person] ?? 0) failed EPCS signings by \(name(person) ?? "a prescriber") on \(day)",
                        seq: event.seq, time: time, subject: name(person)))
            } else {
                incidents.append(
                    .init(
                        reason: flag, detail: Self.incidentDetail(event.event, details: details, time: time, hours: (start, finish)),
                        seq: event.seq, time: time, subject: name(event.subjectID ?? event.actorID)))
            }
        }
        if let verification, !verification.intact {
            incidents.append(
                .init(
                    reason: Flag.integrity, detail: verification.problem ?? verification.summary, seq: nil, time: verification.verifiedAt,
                    subject: nil))
        }
        // Revocations one approver made that no second approver had confirmed when the day ended.
        let open = loaded.grants.filter { grant in
            guard grant.status == .revoked, let revokedAt = grant.revokedAt, revokedAt < end else { return false }
            return grant.revocationConfirmedAt.map { $0 >= end } ?? true
        }.sorted { ($0.revokedAt ?? .distantPast) < ($1.revokedAt ?? .distantPast) }
        let revocations = open.map { grant in
            EPCSDailyReport.OpenRevocation(
                grant: grant.shortID, username: name(grant.$user.id) ?? "", revokedAt: grant.revokedAt ?? end,
                revokedBy: name(grant.revokedBy) ?? "", reason: grant.revocationReason ?? "")
        }
        for revocation in revocations {
            incidents.append(
                .init(
                    reason: Flag.unconfirmedRevocation,
                    detail:
                        "grant \(revocation.grant) of \(revocation.username), revoked by \(revocation.revokedBy) at \(revocation.revokedAt.ISO8601Format()), was not confirmed by a second approver",
                    seq: nil, time: revocation.revokedAt, subject: revocation.username))
        }
        var reviewed: EPCSDailyReport.Review?
        if let review {
            let names = try await reviewerName(review.reviewedBy, known: loaded.names)
            reviewed = .init(reviewedBy: names, reviewedAt: review.reviewedAt, note: review.note, incidents: review.incidents)
        }
        return EPCSDailyReport(
            practiceId: try practice.requireID(), practiceName: practice.name, day: day, generatedAt: now,
            workingHours: String(format: "%02d:00–%02d:00 UTC, Monday to Friday", start, finish),
            events: rows, incidents: incidents, incidentCount: incidents.count, revocationsAwaitingConfirmation: revocations,
            verification: verification, review: reviewed)
    }

    private func reviewerName(_ id: UUID, known: [UUID: String]) async throws -> String {
        if let name = known[id] { return name }
        return try await User.find(id, on: database)?.username ?? "deleted user \(id.uuidString.prefix(8))"
    }

    private static func incidentDetail(_ type: String, details: [String: String], time: Date, hours: (Int, Int)) -> String {
        switch type {
        case AuditEventType.epcsGrantApproved.rawValue:
            "grant \(details["grant"] ?? "") approved at \(time.ISO8601Format()), outside working hours \(String(format: "%02d:00–%02d:00", hours.0, hours.1)) UTC on weekdays"
        case AuditEventType.epcsUnauthorizedAttempt.rawValue:
            [details["action"], details["reason"]].compactMap { $0 }.joined(separator: ": ")
        default:
            EPCSDailyReport.detailsText(details)
        }
    }
}

extension Array where Element: Hashable {
    fileprivate var asSet: Set<Element> { Set(self) }
}

// MARK: the prescriber's monthly log

/// Every EPCS signing of one prescriber in a month (21 CFR 1311.120(b)(27), 1311.102(j)): the step-ups whose two
/// factors were proven, with what was signed and how.
struct EPCSMonthlyLog: Sendable, Equatable {
    struct Signing: Sendable, Equatable {
        var time: Date
        var summary: String
        var actionHash: String
        var attestationHash: String?
        /// The assertion's `amr` values.
        var factors: [String]
        var deaNumber: String?
        var status: String
    }

    var month: String
    var signings: [Signing]

    /// `month` as YYYY-MM; nil (or empty) is the current month.
    static func validatedMonth(_ text: String?, now: Date) throws -> (month: String, start: Date, end: Date) {
        let month = (text?.isEmpty ?? true) ? String(EPCSDay.string(now).prefix(7)) : text!
        guard let range = EPCSDay.month(month) else { throw EPCSReport.DayError.invalidMonth(month) }
        return (month, range.start, range.end)
    }

    static func build(database: any Database, userID: UUID, month: String?, now: Date) async throws -> EPCSMonthlyLog {
        let (name, start, end) = try validatedMonth(month, now: now)
        let rows = try await StepUpChallenge.query(on: database).filter(\.$user.$id == userID)
            .filter(\.$actionType == StepUpChallenge.epcsActionType).filter(\.$status ~~ [.verified, .completed])
            .filter(\.$authTime >= start).filter(\.$authTime < end).sort(\.$authTime).all()
        let grantIDs = Array(Set(rows.compactMap(\.epcsGrantID)))
        let grants =
            grantIDs.isEmpty
            ? [:]
            : Dictionary(
                try await EPCSGrant.query(on: database).filter(\.$id ~~ grantIDs).all().map { (try $0.requireID(), $0.deaNumber) },
                uniquingKeysWith: { a, _ in a })
        let signings = rows.map { row in
            Signing(
                time: row.authTime ?? row.createdAt, summary: row.summary, actionHash: row.actionHash, attestationHash: row.attestationHash,
                factors: (row.amr ?? "").split(separator: " ").map(String.init), deaNumber: row.epcsGrantID.flatMap { grants[$0] },
                status: row.status.rawValue)
        }
        return EPCSMonthlyLog(month: name, signings: signings)
    }

    func csv() -> String {
        var lines = ["time,summary,action_hash,attestation_hash,factors,dea_number,status"]
        for signing in signings {
            let cells = [
                signing.time.ISO8601Format(), signing.summary, signing.actionHash, signing.attestationHash ?? "",
                signing.factors.joined(separator: " "), signing.deaNumber ?? "", signing.status,
            ]
            lines.append(cells.map(AuditQuery.csvCell).joined(separator: ","))
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    /// Whether the user has or had an EPCS permission (their page is linked from home).
    static func isPrescriber(userID: UUID, database: any Database) async throws -> Bool {
        try await EPCSGrant.query(on: database).filter(\.$user.$id == userID).filter(\.$status ~~ [.active, .revoked]).first() != nil
    }
}

// MARK: the daily analysis

/// §1311.150(b): the audit trail is analysed at least once every calendar day. Once per UTC day (whichever instance
/// comes first; a unique row per practice and day makes it once), the maintenance task builds yesterday's report for
/// every practice with EPCS grants and, when it has potential incidents, raises an alert for the approvers.
final class EPCSDailyAnalysis: Model, @unchecked Sendable {
    static let schema = "epcs_daily_analyses"
    static let alertKind = "daily_report_incidents"

    @ID(key: .id) var id: UUID?
    @Field(key: "practice_id") var practiceID: UUID
    @Field(key: "day") var day: String
    @Field(key: "analysed_at") var analysedAt: Date
    @Field(key: "incidents") var incidents: Int
    @Field(key: "intact") var intact: Bool

    init() {}

    struct Outcome: Equatable {
        var day: String
        var analysed: [UUID]
        var alerts: Int
    }

    /// Days before yesterday that are analysed too when they were missed (the server was down over a whole day).
    static let catchUpDays = 7

    /// Analyses the day before `now` for each practice not yet analysed, and catches up on missed days of the last
    /// week (days before a practice's first grant are skipped); cheap when every practice already was.
    /// `analysed` lists the practices analysed for yesterday, `alerts` counts the alerts raised for any day.
    @discardableResult
    static func run(database: any Database, now: Date, verifier: EPCSAuditVerifier? = nil) async throws -> Outcome {
        let today = EPCSDay.start(EPCSDay.string(now))!
        let days = (1...(catchUpDays + 1)).reversed().map { EPCSDay.string(today.addingTimeInterval(-86_400 * Double($0))) }
        let yesterday = days.last!
        // The first grant of each practice: nothing to analyse before it.
        var firstGrant: [UUID: String] = [:]
        for grant in try await EPCSGrant.query(on: database).field(\.$practiceID).field(\.$enteredAt).all() {
            let day = EPCSDay.string(grant.enteredAt)
            if firstGrant[grant.practiceID].map({ day < $0 }) ?? true { firstGrant[grant.practiceID] = day }
        }
        let done = Set(
            try await EPCSDailyAnalysis.query(on: database).filter(\.$day ~~ days).all().map { "\($0.practiceID.uuidString)/\($0.day)" })
        var todo: [(day: String, practiceID: UUID)] = []
        for day in days {
            for (practiceID, first) in firstGrant.sorted(by: { $0.key.uuidString < $1.key.uuidString })
            where (day == yesterday || first <= day) && !done.contains("\(practiceID.uuidString)/\(day)") {
                todo.append((day, practiceID))
            }
        }
        var outcome = Outcome(day: yesterday, analysed: [], alerts: 0)
        guard !todo.isEmpty else { return outcome }
        let reports = EPCSReport(database: database, now: now, verifier: try verifier ?? EPCSAuditVerifier.of(database))
        let verification = try await reports.verifier.verify(on: database, now: now) // one walk of the chain for all practices and days
        for (day, practiceID) in todo {
            guard let practice = try await Practice.find(practiceID, on: database) else { continue }
            let report = try await reports.build(practice: practice, day: day, verification: verification)
            let created = try await database.transaction { db -> Bool in
                let rows = try await db.sql.raw(
                    """
                    INSERT INTO \(ident: schema) (id, practice_id, day, analysed_at, incidents, intact)
                    VALUES (\(bind: UUID()), \(bind: practiceID), \(bind: day), \(bind: now), \(bind: report.incidentCount), \(bind: verification.intact))
                    ON CONFLICT (practice_id, day) DO NOTHING RETURNING id
                    """
                ).all()
                guard !rows.isEmpty else { return false } // another instance analysed it first
                if !verification.intact, day == yesterday {
                    try await AuditLog.append(
                        AuditEntry(
                            type: .auditIntegrityFailed, practiceID: practiceID, ip: "maintenance",
                            details: ["day": day, "problem": String((verification.problem ?? "").prefix(500))]), on: db, now: now)
                }
                if report.incidentCount > 0 {
                    let noun = report.incidentCount == 1 ? "potential security incident" : "potential security incidents"
                    try await EPCSAlert(
                        practiceID: practiceID, kind: alertKind, subjectID: nil,
                        message: "\(report.incidentCount) \(noun) in the EPCS report of \(day)", now: now
                    ).create(on: db)
                }
                return true
            }
            if created {
                if day == yesterday { outcome.analysed.append(practiceID) }
                if report.incidentCount > 0 { outcome.alerts += 1 }
            }
        }
        return outcome
    }
}

struct CreateEPCSDailyAnalysis: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(EPCSDailyAnalysis.schema)
            .id()
            .field("practice_id", .uuid, .required, .references(Practice.schema, .id, onDelete: .cascade))
            .field("day", .string, .required)
            .field("analysed_at", .datetime, .required)
            .field("incidents", .int, .required)
            .field("intact", .bool, .required)
            .unique(on: "practice_id", "day")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(EPCSDailyAnalysis.schema).delete()
    }
}

// MARK: the administration home

/// The EPCS panel on an approver's home page: open alerts, reports awaiting review, open incidents and the duty.
struct EPCSHomePanel: Encodable {
    struct Alert: Encodable {
        var message: String
        var time: String
    }

    struct Incident: Encodable {
        var day: String
        var count: Int
        var link: String
    }

    var alerts: [Alert]
    var alertsLink = AdminPath.epcs.string
    var unreviewed: Int
    var reportsLink = AdminPath.epcsReports.string
    var incidents: [Incident]
    var openIncidents: Int
    var duty = EPCSDailyReport.reportingDuty

    static func make(for session: CurrentSession, database: any Database, now: Date) async throws -> EPCSHomePanel? {
        guard session.user.epcsApprover else { return nil }
        let reports = try EPCSReport(database: database, now: now)
        let pending = try await reports.pending(practiceID: session.practiceID)
        let alerts = try await EPCSAlert.query(on: database).filter(\.$practiceID == session.practiceID).filter(\.$acknowledgedAt == nil)
            .sort(\.$createdAt, .descending).limit(20).all()
        return EPCSHomePanel(
            alerts: alerts.map { Alert(message: $0.message, time: SecurityWebController.format($0.createdAt)) },
            unreviewed: pending.days.count,
            incidents: pending.days.filter { $0.incidents > 0 }.map {
                Incident(day: $0.day, count: $0.incidents, link: AdminPath.epcsReport($0.day).string)
            },
            openIncidents: pending.openIncidents)
    }
}
