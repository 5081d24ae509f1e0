import Fluent
import Foundation
import Vapor

/// Reads one practice's audit events with filters, for the audit page, the API and CSV export.
struct AuditQuery {
    static let pageSize = 100

    struct Filter {
        var from: Date?
        var to: Date?
        /// A username; matches events where that user is the actor or the subject.
        var user: String?
        var type: String?
        var page: Int?
    }

    /// One event as the audit page, the API (`API.AuditEvent`), CSV and the signed JSON export show it. A JSON export
    /// holds it as ``AuditExportManifest/encoder(pretty:)`` writes it, with the time to the millisecond.
    struct Entry: Codable, Sendable, Equatable {
        /// The chain (one per writer) and the event's place in it; together they name the event.
        var chain: String
        var seq: Int64
        var time: Date
        var event: String
        var actor: String?
        var subject: String?
        var ip: String
        var userAgent: String
        var details: [String: String]
    }

    /// One page of events, for the audit page and, as `API.AuditPage`, the API.
    struct Result: Sendable {
        var events: [Entry]
        var total: Int
        var page: Int
        var pageCount: Int
    }

    let database: any Database
    let practiceID: UUID

    /// The dates a filter may name: every database Twofold supports stores them, and no audit event lies outside.
    static let dateBounds = Date(timeIntervalSince1970: 0)...Date(timeIntervalSince1970: 253_402_300_799)

    /// Reads `from`, `to` (a day like 2026-11-25, or an ISO 8601 time), `user`, `type` and `page` from the query string.
    /// - Throws: a 400 for a date that is not one, lies outside 1970–9999 or has `from` after `to`, and for a page
    ///   that is not a whole number from 1 to 1,000,000.
    static func filter(from req: Request) throws -> Filter {
        func date(_ name: String, endOfDay: Bool) throws -> Date? {
            guard let text = try? req.query.get(String.self, at: name), !text.isEmpty else { return nil }
            let day = DateFormatter()
            day.dateFormat = "yyyy-MM-dd"
            day.timeZone = TimeZone(identifier: "UTC")
            day.isLenient = false
            var parsed: Date?
            if text.count == 10, let date = day.date(from: text) {
                parsed = endOfDay ? date.addingTimeInterval(86_399.999) : date
            } else if text.count <= 40, let date = try? Date(text, strategy: .iso8601) {
                parsed = date
            }
            guard let parsed, dateBounds.contains(parsed) else {
                throw Abort(
                    .badRequest, reason: "\(name) must be a day like 2026-11-25 or a time like 2026-11-25T14:00:00Z, from 1970 to 9999.")
            }
            return parsed
        }
        let page = try req.boundedQuery("page", in: QueryBounds.page)
        let from = try date("from", endOfDay: false), to = try date("to", endOfDay: true)
        if let from, let to, from > to { throw Abort(.badRequest, reason: "from must not be later than to.") }
        return Filter(
            from: from, to: to,
            user: try? req.query.get(String.self, at: "user"), type: try? req.query.get(String.self, at: "type"), page: page)
    }

    func run(_ filter: Filter, limit: Int = AuditQuery.pageSize) async throws -> Result {
        var query = AuditEvent.query(on: database).filter(\.$practiceID == practiceID)
        if let from = filter.from { query = query.filter(\.$occurredAt >= from) }
        if let to = filter.to { query = query.filter(\.$occurredAt <= to) }
        if let type = filter.type?.trimmingCharacters(in: .whitespaces), !type.isEmpty { query = query.filter(\.$event == type) }
        if let username = filter.user?.trimmingCharacters(in: .whitespaces), !username.isEmpty {
            let user = try await User.query(on: database).filter(\.$usernameKey == User.key(for: username)).filter(
                \.$practice.$id == practiceID
            ).first()
            let id = user?.id ?? UUID()
            query = query.group(.or) { $0.filter(\.$actorID == id).filter(\.$subjectID == id) }
        }
        let total = try await query.copy().count()
        let page = min(max(1, filter.page ?? 1), QueryBounds.page.upperBound)
        // One stable order across the chains: newest first, then by chain, then by place in the chain.
        let events = try await query.sort(\.$occurredMS, .descending).sort(\.$chainID, .descending).sort(\.$seq, .descending).range(
            ((page - 1) * limit)..<(page * limit)
        ).all()
        let ids = Set(events.flatMap { [$0.actorID, $0.subjectID].compactMap { $0 } })
        let names =
            ids.isEmpty
            ? [:]
            : Dictionary(
                uniqueKeysWithValues: try await User.query(on: database).filter(\.$id ~~ Array(ids)).all().map {
                    (try $0.requireID(), $0.username)
                })
        let entries = events.map { event in
            Entry(
                chain: event.chainID, seq: event.seq, time: AuditLog.date(event.occurredMS), // the covered time; `audit verify` checks occurred_at agrees
                event: event.event,
                actor: event.actorID.map { names[$0] ?? "deleted user \($0.uuidString.prefix(8))" },
                subject: event.subjectID.map { names[$0] ?? "deleted user \($0.uuidString.prefix(8))" },
                ip: event.ip, userAgent: event.userAgent,
                details: (try? JSONDecoder().decode([String: String].self, from: Data(event.details.utf8))) ?? [:])
        }
        return Result(events: entries, total: total, page: page, pageCount: max(1, (total + limit - 1) / limit))
    }

    static let csvHeader = "seq,time,event,actor,subject,ip,user_agent,details,chain"

    /// Every matching event as CSV (RFC 4180), newest first; cells that a spreadsheet would run as a formula are neutralised.
    func csv(_ filter: Filter) async throws -> String {
        try await csvLines(filter).joined(separator: "\r\n") + "\r\n"
    }

    /// The header and one line per matching event, newest first, each with the event it shows.
    func csvRows(_ filter: Filter) async throws -> [(line: String, entry: Entry)] {
        var rows: [(line: String, entry: Entry)] = []
        var pageFilter = filter
        pageFilter.page = 1
        while true {
            let result = try await run(pageFilter, limit: 1000)
            for entry in result.events { rows.append((Self.csvLine(entry), entry)) }
            if (pageFilter.page ?? 1) >= result.pageCount { break }
            pageFilter.page = (pageFilter.page ?? 1) + 1
        }
        return rows
    }

    func csvLines(_ filter: Filter) async throws -> [String] {
        [Self.csvHeader] + (try await csvRows(filter)).map(\.line)
    }

    static func csvLine(_ entry: Entry) -> String {
        let details = entry.details.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
        let cells = [
            String(entry.seq), entry.time.ISO8601Format(),
            entry.event, entry.actor ?? "", entry.subject ?? "", entry.ip, entry.userAgent, details, entry.chain,
        ]
        return cells.map(csvCell).joined(separator: ",")
    }

    /// One quoted CSV cell. Spreadsheets split cells on `,`, on `;` (in locales with a decimal comma), on tabs and
    /// `|`, and run a cell that starts with `=`, `+`, `-` or `@`; so a `'` goes before such a character at the start
    /// of the value and after any of those separators (and line breaks), and the value stays text.
    static func csvCell(_ value: String) -> String {
        let formulaStarts: Set<Unicode.Scalar> = ["=", "+", "-", "@"]
        let separators: Set<Unicode.Scalar> = [",", ";", "\t", "|", "\r", "\n"]
        var cell = String.UnicodeScalarView()
        var startOfCell = true
        for scalar in value.unicodeScalars {
            if startOfCell, formulaStarts.contains(scalar) || (cell.isEmpty && separators.contains(scalar)) {
                cell.append("'")
            }
            cell.append(scalar)
            // spaces and quotes may stand between a separator and the formula
            if separators.contains(scalar) { startOfCell = true } else if scalar != " " && scalar != "\"" { startOfCell = false }
        }
        return "\"" + String(cell).replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}
