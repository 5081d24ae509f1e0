import Fluent
import Foundation
import TwofoldCore
import Vapor

/// `twofold epcs report --practice ID --date YYYY-MM-DD [--json | --csv]`
struct EPCSCommands: AsyncCommandGroup {
    var help: String { "Electronic prescribing of controlled substances (21 CFR 1311)." }
    var commands: [String: any AnyAsyncCommand] { ["report": EPCSReportCommand()] }
}

/// Prints a practice's daily EPCS audit report (§1311.150(b)): the day's EPCS events, the potential security incidents
/// and the audit verification. Exit status 0 whatever the report shows (a failed verification is printed as an
/// incident); non-zero only when the input is wrong.
struct EPCSReportCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "practice", help: "The practice id (from `twofold practice create`).") var practice: String?
        @Option(name: "date", help: "The UTC day, YYYY-MM-DD (today or earlier).") var date: String?
        @Flag(name: "json", help: "Print the report as JSON.") var json: Bool
        @Flag(name: "csv", help: "Print the report as CSV (RFC 4180).") var csv: Bool
    }

    var help: String {
        "Prints the daily EPCS audit report of a practice: events, potential security incidents and the audit verification."
    }

    func run(using context: CommandContext, signature: Signature) async throws {
        guard let practiceText = signature.practice else {
            throw CLIError(
                "--practice is required, e.g. twofold epcs report --practice 3F2504E0-4F89-41D3-9A0C-0305E82C3301 --date 2030-03-18")
        }
        guard let practiceID = UUID(uuidString: practiceText) else {
            throw CLIError("--practice must be a practice id like 3F2504E0-4F89-41D3-9A0C-0305E82C3301")
        }
        guard let date = signature.date else { throw CLIError("--date is required: the UTC day as YYYY-MM-DD, e.g. --date 2030-03-18") }
        guard !(signature.json && signature.csv) else { throw CLIError("choose one of --json and --csv") }
        let app = context.application
        let now = app.twofold.clock.now()
        do {
            _ = try EPCSReport.validatedDay(date, now: now)
        } catch let error as EPCSReport.DayError {
            throw CLIError("--date: " + error.reason)
        }
        try await prepareDatabase(app)
        guard let practice = try await Practice.find(practiceID, on: app.db) else {
            throw CLIError("there is no practice with id \(practiceID.uuidString)")
        }
        let report = try await EPCSReport(database: app.db, now: now).build(practice: practice, day: date)
        if signature.json {
            context.console.output(try report.json().consoleText(), newLine: false)
        } else if signature.csv {
            context.console.output(report.csv().consoleText(), newLine: false)
        } else {
            for line in Self.text(report) { context.console.print(line) }
        }
    }

    /// The report for a terminal.
    static func text(_ report: EPCSDailyReport) -> [String] {
        var lines = ["EPCS daily report of \(report.practiceName) for \(report.day) (UTC); working hours \(report.workingHours)"]
        if let verification = report.verification {
            lines.append("Audit verification: \(verification.summary)")
        }
        lines.append("")
        lines.append("\(report.events.count) EPCS event\(report.events.count == 1 ? "" : "s"):")
        for row in report.events {
            var line = "  #\(row.seq)  \(row.time.ISO8601Format())  \(row.type)"
            if let actor = row.actor { line += "  actor \(actor)" }
            if let subject = row.subject, subject != row.actor { line += "  subject \(subject)" }
            if !row.details.isEmpty { line += "  " + EPCSDailyReport.detailsText(row.details) }
            if let incident = row.incident { line += "  [INCIDENT: \(incident)]" }
            lines.append(line)
        }
        lines.append("")
        lines.append(
            "\(report.incidentCount) potential security incident\(report.incidentCount == 1 ? "" : "s")\(report.incidents.isEmpty ? "." : ":")"
        )
        for incident in report.incidents {
            lines.append("  - \(incident.reason): \(incident.detail)")
        }
        if let review = report.review {
            lines.append(
                "Reviewed by \(review.reviewedBy) at \(review.reviewedAt.ISO8601Format())\(review.note.isEmpty ? "" : ": \(review.note)")")
        } else {
            lines.append("Not reviewed yet.")
        }
        if report.incidentCount > 0 { lines.append(EPCSDailyReport.reportingDuty) }
        return lines
    }
}
