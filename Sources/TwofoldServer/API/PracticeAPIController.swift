import Fluent
import Vapor

/// `/api/v1/practice…`: administration over the API, for users with Manage Accounts.
struct PracticeAPIController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let practice = routes.grouped(SessionGuard(requirement: .signedIn, style: .api)).grouped(AdminGuard()).grouped("practice")
        practice.get(use: show)
        practice.patch(use: update)
        practice.get("users", use: users)
        practice.post("users", use: createUser)
        practice.post("users", ":id", "invitation", "resend", use: resendInvitation)
        practice.delete("users", ":id", "invitation", use: revokeInvitation)
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
        var resetRequiresSecondFactor: Bool
        /// Lockouts and administrators' actions are also emailed here; absent when not set.
        var notificationCopyAddress: String?

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
            resetRequiresSecondFactor = practice.resetRequiresSecondFactor
            notificationCopyAddress = practice.notificationCopyAddress
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
        var resetRequiresSecondFactor: Bool?
        /// An email address, or "" to remove it; absent leaves it.
        var notificationCopyAddress: String?
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
            sessionLifetimeHours: body.sessionLifetimeHours, accessTokenMinutes: body.accessTokenMinutes, refreshTokenDays: body.refreshTokenDays,
            resetRequiresSecondFactor: body.resetRequiresSecondFactor, notificationCopyAddress: body.notificationCopyAddress)
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

    struct CreateUserRequest: Content {
        var username: String?
        var firstName: String?
        var lastName: String?
        var email: String?
        var cell: String?
        var role: String?
        var manageAccounts: Bool?
        var primaryProviderId: UUID?
        /// true (the default): email an invitation; false: set `temporaryPassword`, to be changed at first sign-in.
        var invite: Bool?
        var temporaryPassword: String?
        var adminPassword: String?
    }

    struct InvitationDTO: Content {
        var expiresAt: Date
        var sentCount: Int

        init(_ invitation: Invitation) {
            expiresAt = invitation.expiresAt
            sentCount = invitation.sentCount
        }
    }

    struct CreatedUser: Content {
        var userId: UUID
        /// null (not absent) when a temporary password was set.
        var invitation: InvitationDTO?

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(userId, forKey: .userId)
            try container.encode(invitation, forKey: .invitation)
        }
    }

    /// Adds a staff member: with an invitation by email (the default), or with a temporary password.
    @Sendable func createUser(req: Request) async throws -> Response {
        let body = try req.content.decode(CreateUserRequest.self)
        let role: User.Role
        switch body.role?.lowercased() ?? "staff" {
        case "provider": role = .provider
        case "staff": role = .staff
        default: throw AdminError.invalid("role must be provider or staff.")
        }
        let input = AdminService.StaffInput(
            username: body.username ?? "", firstName: body.firstName ?? "", lastName: body.lastName ?? "", email: body.email ?? "",
            cellPhone: body.cell, role: role, manageAccounts: body.manageAccounts ?? false, primaryProviderID: body.primaryProviderId)
        let service = try Self.service(req)
        let created: CreatedUser
        if body.invite ?? true {
            let (user, invitation) = try await service.inviteStaff(input, adminPassword: body.adminPassword)
            created = CreatedUser(userId: try user.requireID(), invitation: InvitationDTO(invitation))
        } else {
            let user = try await service.createStaff(input, temporaryPassword: body.temporaryPassword ?? "", adminPassword: body.adminPassword)
            created = CreatedUser(userId: try user.requireID(), invitation: nil)
        }
        return try await created.encodeResponse(status: .created, for: req)
    }

    @Sendable func resendInvitation(req: Request) async throws -> InvitationDTO {
        let id = try AdminWebController.userID(req)
        let password = (try? req.content.decode(AdminPasswordRequest.self))?.adminPassword
        return InvitationDTO(try await Self.service(req).resendInvitation(of: id, adminPassword: password))
    }

    @Sendable func revokeInvitation(req: Request) async throws -> HTTPStatus {
        let id = try AdminWebController.userID(req)
        let password = (try? req.content.decode(AdminPasswordRequest.self))?.adminPassword
        try await Self.service(req).revokeInvitation(of: id, adminPassword: password)
        return .noContent
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
