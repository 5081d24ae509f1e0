import Fluent
import TwofoldCore
import Vapor

/// Rendering of the practice settings and the audit log pages.
enum PracticePages {
    /// The settings form as posted; field names are ``PracticeSettings`` names.
    struct SettingsForm: Content {
        var name: String?
        var mandatoryTwoFactor: String?
        var rememberBrowserDays: Int?
        var inactivityMinutes: Int?
        var otpDigits: Int?
        var allowSMS: String?
        var allowTOTP: String?
        var allowPush: String?
        var allowPasskeys: String?
        var allowPasswordless: String?
        var refuseClonedPasskeys: String?
        var sessionLifetimeHours: Int?
        var accessTokenMinutes: Int?
        var refreshTokenDays: Int?
        var resetRequiresSecondFactor: String?
        var notificationCopyAddress: String?
        var adminPassword: String?

        /// Checkboxes send nothing when unticked, so a submitted form states every switch.
        var patch: PracticeSettings.Patch {
            PracticeSettings.Patch(
                name: name, mandatoryTwoFactor: mandatoryTwoFactor != nil, rememberBrowserDays: rememberBrowserDays,
                inactivityMinutes: inactivityMinutes, otpDigits: otpDigits, allowSMS: allowSMS != nil, allowTOTP: allowTOTP != nil,
                allowPush: allowPush != nil, allowPasskeys: allowPasskeys != nil, allowPasswordless: allowPasswordless != nil,
                refuseClonedPasskeys: refuseClonedPasskeys != nil, sessionLifetimeHours: sessionLifetimeHours,
                accessTokenMinutes: accessTokenMinutes, refreshTokenDays: refreshTokenDays,
                resetRequiresSecondFactor: resetRequiresSecondFactor != nil, notificationCopyAddress: notificationCopyAddress)
        }
    }

    /// An input's allowed values, for its `min`/`max` attributes and its label.
    struct Bounds: Encodable {
        var min: Int
        var max: Int

        init(_ bounded: Bounded<Int>) {
            min = bounded.lowerBound
            max = bounded.upperBound
        }
    }

    struct AllBounds: Encodable {
        var rememberBrowserDays: Bounds
        var inactivityMinutes: Bounds
        var sessionLifetimeHours: Bounds
        var accessTokenMinutes: Bounds
        var refreshTokenDays: Bounds
    }

    /// The settings page: the practice's ``PracticeSettings`` as they are (the form's fields read `settings.…`), and
    /// what the inputs need from ``TwofoldPolicy/PracticeSettings`` (lengths, bounds, digit choices).
    struct SettingsPage: Encodable {
        var layout: Layout
        var settings: PracticeSettings
        var nameMaxLength: Int
        var bounds: AllBounds
        var otpDigitChoices: [Int]

        init(layout: Layout, settings: PracticeSettings, policy: TwofoldPolicy.PracticeSettings) {
            self.layout = layout
            self.settings = settings
            nameMaxLength = policy.nameLength.upperBound
            bounds = AllBounds(
                rememberBrowserDays: Bounds(policy.rememberBrowserDays), inactivityMinutes: Bounds(policy.inactivityMinutes),
                sessionLifetimeHours: Bounds(policy.sessionLifetimeHours), accessTokenMinutes: Bounds(policy.accessTokenMinutes),
                refreshTokenDays: Bounds(policy.refreshTokenDays))
            otpDigitChoices = Array(policy.otpDigits.range)
        }
    }

    static func settings(_ req: Request, error: String?, status: HTTPResponseStatus) async throws -> Response {
        let session = try req.requireSession()
        let practice = try await Practice.find(session.practiceID, on: req.db) ?? session.practice
        let context = SettingsPage(
            layout: req.layout("Practice settings", error: error), settings: practice.settings, policy: req.policy.practice)
        return try await req.render("admin-practice", context, status: status)
    }

    struct AuditRow: Encodable {
        var chain: String
        var seq: Int64
        var time: String
        var event: String
        var actor: String
        var subject: String
        var ip: String
        var userAgent: String
        var details: String
    }

    struct AuditPage: Encodable {
        var layout: Layout
        var rows: [AuditRow]
        var from: String
        var to: String
        var user: String
        var type: String
        var types: [String]
        var total: Int
        var page: Int
        var pageCount: Int
        var previousLink: String?
        var nextLink: String?
        var csvLink: String
        var exportLink: String
    }

    static func audit(_ req: Request) async throws -> Response {
        let session = try req.requireSession()
        let filter = try AuditQuery.filter(from: req)
        let fromText = (try? req.query.get(String.self, at: "from")) ?? ""
        let toText = (try? req.query.get(String.self, at: "to")) ?? ""
        let result = try await AuditQuery(database: req.db, practiceID: session.practiceID).run(filter)
        let rows = result.events.map { entry in
            AuditRow(
                chain: entry.chain, seq: entry.seq, time: SecurityWebController.format(entry.time), event: entry.event,
                actor: entry.actor ?? "",
                subject: entry.subject ?? "", ip: entry.ip, userAgent: UserAgentSummary.describe(entry.userAgent),
                details: entry.details.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", "))
        }
        // The filters in use, carried by the paging, CSV and export links.
        let filters = [
            URLQueryItem(name: "from", value: fromText), URLQueryItem(name: "to", value: toText),
            URLQueryItem(name: "user", value: filter.user), URLQueryItem(name: "type", value: filter.type),
        ]
        func link(_ page: Int) -> String { AdminPath.audit.string(query: filters + [URLQueryItem(name: "page", value: String(page))]) }
        let context = AuditPage(
            layout: req.layout("Audit log"), rows: rows, from: fromText, to: toText, user: filter.user ?? "", type: filter.type ?? "",
            types: AuditEventType.allCases.map(\.rawValue).sorted(), total: result.total, page: result.page, pageCount: result.pageCount,
            previousLink: result.page > 1 ? link(result.page - 1) : nil,
            nextLink: result.page < result.pageCount ? link(result.page + 1) : nil,
            csvLink: AdminPath.auditCSV.string(query: filters), exportLink: AdminPath.auditExport.string(query: filters))
        return try await req.render("admin-audit", context)
    }
}
