import Fluent
import TwofoldAPI
import Vapor

/// `/api/v1/practice…`: administration over the API, for users with Manage Accounts.
struct PracticeAPIController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let practice = routes.grouped(SessionGuard(requirement: .signedIn, style: .api)).grouped(AdminGuard())
        practice.get(APIPath.practice, use: show)
        practice.patch(APIPath.practice, use: update)
        practice.get(APIPath.practiceUsers, use: users)
        practice.post(APIPath.practiceUsers, use: createUser)
        practice.post(APIPath.practiceUserResendInvitation(.placeholder), use: resendInvitation)
        practice.delete(APIPath.practiceUserInvitation(.placeholder), use: revokeInvitation)
        practice.post(APIPath.practiceUserSetUp(.placeholder), use: setUp)
        practice.post(APIPath.practiceUserDisable(.placeholder), use: disable)
        practice.get(APIPath.practiceAudit, use: audit)
        try practice.register(collection: ApplicationsAPIController())
    }

    struct AdminPasswordRequest: Content {
        var adminPassword: String?
    }

    static func service(_ req: Request) throws -> AdminService {
        try AdminService(context: req.serviceContext, admin: try req.requireSession())
    }

    @Sendable func show(req: Request) async throws -> API.Practice {
        try API.Practice(try req.requireSession().practice)
    }

    /// Bounds are the policy's (``PracticeSettings/problems(policy:)``): a value outside them is a 400 naming the field.
    @Sendable func update(req: Request) async throws -> API.Practice {
        let body = try req.apiBody(API.UpdatePracticeRequest.self)
        return try API.Practice(try await Self.service(req).updateSettings(PracticeSettings.Patch(body), adminPassword: body.adminPassword))
    }

    @Sendable func users(req: Request) async throws -> API.UsersPage {
        let page = try await Self.service(req).directory.page(
            search: try? req.query.get(String.self, at: "q"), page: try req.boundedQuery("page", in: QueryBounds.page) ?? 1)
        let users = try page.rows.map { row -> API.StaffMember in
            let status: API.StaffMember.TwoFactorPayload =
                switch row.twoFactor {
                case .active(let kind, let shortID): .init(status: .active, factorKind: kind.rawValue, factorShortId: shortID)
                case .requiredNotSetUp: .init(status: .required)
                case .inactive: .init(status: .inactive)
                }
            let user = row.user
            return API.StaffMember(
                id: try user.requireID().uuidString, username: user.username, firstName: user.firstName, lastName: user.lastName,
                email: user.email, cellPhone: user.cellPhone, role: user.role.rawValue, manageAccounts: user.has(.manageAccounts),
                primaryProviderId: user.primaryProviderID?.uuidString, twoFactor: status)
        }
        return API.UsersPage(users: users, total: page.total, page: page.page, pageCount: page.pageCount)
    }

    /// Adds a staff member: with an invitation by email (the default), or with a temporary password.
    @Sendable func createUser(req: Request) async throws -> Response {
        let body = try req.apiBody(API.CreateUserRequest.self)
        let role: User.Role =
            switch body.role ?? .staff {
            case .provider: .provider
            case .staff: .staff
            }
        let input = AdminService.StaffInput(
            username: body.username, firstName: body.firstName, lastName: body.lastName, email: body.email,
            cellPhone: body.cell, role: role, manageAccounts: body.manageAccounts ?? false,
            primaryProviderID: try APIField.uuid(body.primaryProviderId, "primaryProviderId"))
        let service = try Self.service(req)
        let created: API.CreatedUser
        if body.invite ?? true {
            let (user, invitation) = try await service.inviteStaff(
                input, adminPassword: body.adminPassword, invitations: InvitationService(request: req))
            created = API.CreatedUser(userId: try user.requireID().uuidString, invitation: API.Invitation(invitation))
        } else {
            let user = try await service.createStaff(
                input, temporaryPassword: body.temporaryPassword ?? "", adminPassword: body.adminPassword)
            created = API.CreatedUser(userId: try user.requireID().uuidString, invitation: nil)
        }
        return try await created.encodeResponse(status: .created, for: req)
    }

    @Sendable func resendInvitation(req: Request) async throws -> API.Invitation {
        let id = try AdminWebController.userID(req)
        let password = try req.optionalAPIBody(API.AdminPasswordConfirmation.self)?.adminPassword
        return API.Invitation(
            try await Self.service(req).resendInvitation(of: id, adminPassword: password, invitations: InvitationService(request: req)))
    }

    @Sendable func revokeInvitation(req: Request) async throws -> HTTPStatus {
        let id = try AdminWebController.userID(req)
        let password = try req.optionalAPIBody(API.AdminPasswordConfirmation.self)?.adminPassword
        try await Self.service(req).revokeInvitation(of: id, adminPassword: password, invitations: InvitationService(request: req))
        return .noContent
    }

    @Sendable func setUp(req: Request) async throws -> HTTPStatus {
        let id = try AdminWebController.userID(req)
        _ = try await Self.service(req).requireTwoFactor(
            of: id, adminPassword: try req.apiBody(API.AdminPasswordConfirmation.self).adminPassword)
        return .noContent
    }

    @Sendable func disable(req: Request) async throws -> HTTPStatus {
        let id = try AdminWebController.userID(req)
        _ = try await Self.service(req).disableTwoFactor(
            of: id, adminPassword: try req.apiBody(API.AdminPasswordConfirmation.self).adminPassword)
        return .noContent
    }

    @Sendable func audit(req: Request) async throws -> API.AuditPage {
        let session = try req.requireSession()
        return API.AuditPage(try await AuditQuery(database: req.db, practiceID: session.practiceID).run(try AuditQuery.filter(from: req)))
    }
}

// The API's audit log types and ``AuditQuery``, mapped here only.
extension API.AuditPage: Content {}

extension API.AuditPage {
    /// One page of the practice's audit log as the API shows it.
    init(_ result: AuditQuery.Result) {
        self.init(
            events: result.events.map { entry in
                API.AuditEvent(
                    chain: entry.chain, seq: Int(entry.seq), time: entry.time, event: entry.event, actor: entry.actor,
                    subject: entry.subject, ip: entry.ip, userAgent: entry.userAgent, details: .init(additionalProperties: entry.details))
            }, total: result.total, page: result.page, pageCount: result.pageCount)
    }
}

// The API's practice settings types and ``PracticeSettings``, mapped here only.
extension API.Practice: Content {}
extension API.UpdatePracticeRequest: Content {}

extension API.Practice {
    init(_ practice: Practice) throws {
        let settings = practice.settings
        self.init(
            id: try practice.requireID().uuidString, name: settings.name, mandatoryTwoFactor: settings.mandatoryTwoFactor,
            rememberBrowserDays: settings.rememberBrowserDays, inactivityMinutes: settings.inactivityMinutes, otpDigits: settings.otpDigits,
            allowSMS: settings.allowSMS, allowTOTP: settings.allowTOTP, allowPush: settings.allowPush,
            allowPasskeys: settings.allowPasskeys,
            allowPasswordless: settings.allowPasswordless, refuseClonedPasskeys: settings.refuseClonedPasskeys,
            sessionLifetimeHours: settings.sessionLifetimeHours, accessTokenMinutes: settings.accessTokenMinutes,
            refreshTokenDays: settings.refreshTokenDays, resetRequiresSecondFactor: settings.resetRequiresSecondFactor,
            notificationCopyAddress: settings.notificationCopyAddress)
    }
}

extension PracticeSettings.Patch {
    init(_ body: API.UpdatePracticeRequest) {
        self.init(
            name: body.name, mandatoryTwoFactor: body.mandatoryTwoFactor, rememberBrowserDays: body.rememberBrowserDays,
            inactivityMinutes: body.inactivityMinutes, otpDigits: body.otpDigits, allowSMS: body.allowSMS, allowTOTP: body.allowTOTP,
            allowPush: body.allowPush, allowPasskeys: body.allowPasskeys, allowPasswordless: body.allowPasswordless,
            refuseClonedPasskeys: body.refuseClonedPasskeys, sessionLifetimeHours: body.sessionLifetimeHours,
            accessTokenMinutes: body.accessTokenMinutes, refreshTokenDays: body.refreshTokenDays,
            resetRequiresSecondFactor: body.resetRequiresSecondFactor, notificationCopyAddress: body.notificationCopyAddress)
    }
}

extension API.CreatedUser {
    /// The new staff member with their invitation, or with `"invitation": null` (not absent) when a temporary password
    /// was set: the document's `oneOf` of `Invitation` and `null` is generated as a payload whose second case holds the null.
    init(userId: String, invitation: API.Invitation?) {
        self.init(userId: userId, invitation: invitation.map(InvitationPayload.Invitation) ?? .case2(nil))
    }
}
