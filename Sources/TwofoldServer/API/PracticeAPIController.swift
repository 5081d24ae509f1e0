import Fluent
import Vapor

/// `/api/v1/practice…`: administration over the API, for users with Manage Accounts.
struct PracticeAPIController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let practice = routes.grouped(SessionGuard(requirement: .signedIn, style: .api)).grouped(AdminGuard()).grouped("practice")
        practice.get(use: show)
        practice.patch(use: update)
        practice.get("users", use: users)
        practice.post("users", ":id", "two-factor", "setup", use: setUp)
        practice.post("users", ":id", "two-factor", "disable", use: disable)
        practice.get("audit", use: audit)
        try practice.register(collection: ApplicationsAPIController())
    }

    struct PracticeDTO: Content {
        var id: UUID
        var name: String
        var mandatoryTwoFactor: Bool
        var rememberBrowserDays: Int
        var inactivityMinutes: Int
        var otpDigits: Int
        var allowSMS: Bool
        var allowTOTP: Bool
        var allowPush: Bool
        var allowPasskeys: Bool
        var allowPasswordless: Bool
        var refuseClonedPasskeys: Bool
        var sessionLifetimeHours: Int
        var accessTokenMinutes: Int
        var refreshTokenDays: Int

        init(_ practice: Practice) {
            id = practice.id!
            name = practice.name
            mandatoryTwoFactor = practice.mandatoryTwoFactor
            rememberBrowserDays = practice.rememberBrowserDays
            inactivityMinutes = practice.inactivityMinutes
            otpDigits = practice.otpDigits
            allowSMS = practice.allowSMS
            allowTOTP = practice.allowTOTP
            allowPush = practice.allowPush
            allowPasskeys = practice.allowPasskeys
            allowPasswordless = practice.allowPasswordless
            refuseClonedPasskeys = practice.refuseClonedPasskeys
            sessionLifetimeHours = practice.sessionLifetimeHours
            accessTokenMinutes = practice.accessTokenMinutes
            refreshTokenDays = practice.refreshTokenDays
        }
    }

    struct PracticePatch: Content {
        var adminPassword: String?
        var name: String?
        var mandatoryTwoFactor: Bool?
        var rememberBrowserDays: Int?
        var inactivityMinutes: Int?
        var otpDigits: Int?
        var allowSMS: Bool?
        var allowTOTP: Bool?
        var allowPush: Bool?
        var allowPasskeys: Bool?
        var allowPasswordless: Bool?
        var refuseClonedPasskeys: Bool?
        var sessionLifetimeHours: Int?
        var accessTokenMinutes: Int?
        var refreshTokenDays: Int?
    }

    struct AdminPasswordRequest: Content {
        var adminPassword: String?
    }

    struct TwoFactorStatus: Content {
        var status: String
        var factorKind: String?
        var factorShortId: String?
    }

    struct UserDTO: Content {
        var id: UUID
        var username: String
        var firstName: String
        var lastName: String
        var email: String
        var cellPhone: String?
        var role: String
        var manageAccounts: Bool
        var primaryProviderId: UUID?
        var twoFactor: TwoFactorStatus
    }

    struct UsersPage: Content {
        var users: [UserDTO]
        var total: Int
        var page: Int
        var pageCount: Int
    }

    static func service(_ req: Request) throws -> AdminService {
        try AdminService(request: req, admin: try req.requireSession())
    }

    @Sendable func show(req: Request) async throws -> PracticeDTO {
        PracticeDTO(try req.requireSession().practice)
    }

    @Sendable func update(req: Request) async throws -> PracticeDTO {
        let body = try req.content.decode(PracticePatch.self)
        let change = AdminService.SettingsChange(
            name: body.name, mandatoryTwoFactor: body.mandatoryTwoFactor, rememberBrowserDays: body.rememberBrowserDays,
            inactivityMinutes: body.inactivityMinutes, otpDigits: body.otpDigits, allowSMS: body.allowSMS, allowTOTP: body.allowTOTP, allowPush: body.allowPush,
            allowPasskeys: body.allowPasskeys, allowPasswordless: body.allowPasswordless, refuseClonedPasskeys: body.refuseClonedPasskeys,
            sessionLifetimeHours: body.sessionLifetimeHours, accessTokenMinutes: body.accessTokenMinutes, refreshTokenDays: body.refreshTokenDays)
        return PracticeDTO(try await Self.service(req).updateSettings(change, adminPassword: body.adminPassword))
    }

    @Sendable func users(req: Request) async throws -> UsersPage {
        let page = try await Self.service(req).directory.page(search: try? req.query.get(String.self, at: "q"), page: try req.boundedQuery("page", in: QueryBounds.page) ?? 1)
        let users = page.rows.map { row -> UserDTO in
            let status: TwoFactorStatus = switch row.twoFactor {
            case .active(let kind, let shortID): TwoFactorStatus(status: "active", factorKind: kind.rawValue, factorShortId: shortID)
            case .requiredNotSetUp: TwoFactorStatus(status: "required")
            case .inactive: TwoFactorStatus(status: "inactive")
            }
            let user = row.user
            return UserDTO(id: user.id!, username: user.username, firstName: user.firstName, lastName: user.lastName, email: user.email,
                           cellPhone: user.cellPhone, role: user.role.rawValue, manageAccounts: user.has(.manageAccounts),
                           primaryProviderId: user.primaryProviderID, twoFactor: status)
        }
        return UsersPage(users: users, total: page.total, page: page.page, pageCount: page.pageCount)
    }

    @Sendable func setUp(req: Request) async throws -> HTTPStatus {
        let id = try AdminWebController.userID(req)
        _ = try await Self.service(req).requireTwoFactor(of: id, adminPassword: try req.content.decode(AdminPasswordRequest.self).adminPassword)
        return .noContent
    }

    @Sendable func disable(req: Request) async throws -> HTTPStatus {
        let id = try AdminWebController.userID(req)
        _ = try await Self.service(req).disableTwoFactor(of: id, adminPassword: try req.content.decode(AdminPasswordRequest.self).adminPassword)
        return .noContent
    }

    @Sendable func audit(req: Request) async throws -> AuditQuery.Result {
        let session = try req.requireSession()
        return try await AuditQuery(database: req.db, practiceID: session.practiceID).run(try AuditQuery.filter(from: req))
    }
}
