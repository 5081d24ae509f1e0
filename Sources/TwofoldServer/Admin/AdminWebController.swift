import Fluent
import Vapor

/// The administration pages: Staff Members, one user, set up / disable 2FA, practice settings, audit log.
struct AdminWebController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let admin = routes.grouped(SessionGuard(requirement: .signedIn, style: .web)).grouped(AdminGuard()).grouped("admin")
        admin.get("staff", use: staff)
        admin.get("staff", "new", use: newStaff)
        admin.post("staff", use: createStaff)
        admin.get("staff", ":id", use: showUser)
        admin.get("staff", ":id", "edit", use: editStaff)
        admin.post("staff", ":id", "edit", use: updateStaff)
        admin.get("staff", ":id", "delete", use: confirmDelete)
        admin.post("staff", ":id", "delete", use: deleteStaff)
        admin.get("staff", ":id", "two-factor", "setup", use: confirmSetUp)
        admin.post("staff", ":id", "two-factor", "setup", use: setUp)
        admin.post("staff", ":id", "two-factor", "disable", use: disable)
        admin.post("staff", ":id", "invitation", "resend", use: resendInvitation)
        admin.get("staff", ":id", "invitation", "revoke", use: confirmRevokeInvitation)
        admin.post("staff", ":id", "invitation", "revoke", use: revokeInvitation)
        admin.get("practice", use: practice)
        admin.post("practice", use: updatePractice)
        admin.get("audit", use: audit)
        admin.get("audit.csv", use: auditCSV)
        try routes.register(collection: ApplicationPages())
    }

    static func service(_ req: Request) throws -> AdminService {
        try AdminService(request: req, admin: try req.requireSession())
    }

    static func userID(_ req: Request) throws -> UUID {
        guard let id = req.parameters.get("id", as: UUID.self) else { throw AdminError.userNotFound }
        return id
    }

    struct PasswordForm: Content {
        var adminPassword: String?
    }

    // MARK: staff list

    @Sendable func staff(req: Request) async throws -> Response {
        try await StaffPages.list(req, error: nil, status: .ok)
    }

    // MARK: create / edit / delete

    @Sendable func newStaff(req: Request) async throws -> Response {
        try await StaffPages.form(req, user: nil, input: nil, error: nil, status: .ok)
    }

    @Sendable func createStaff(req: Request) async throws -> Response {
        let form = try req.content.decode(StaffPages.StaffForm.self)
        do {
            // An invitation by email unless the administrator chose to set a temporary password.
            if form.sendsInvitation {
                _ = try await Self.service(req).inviteStaff(form.input, adminPassword: form.adminPassword)
                return req.redirect(to: AdminPath.staff.string + "?notice=\(Notice.invitationSent.rawValue)")
            }
            let user = try await Self.service(req).createStaff(form.input, temporaryPassword: form.temporaryPassword ?? "", adminPassword: form.adminPassword)
            return req.redirect(to: AdminPath.staff.string + "?notice=staff-created&user=\(user.username)")
        } catch let error as any AbortError {
            return try await StaffPages.form(req, user: nil, input: form, error: error.reason, status: error.status)
        }
    }

    @Sendable func showUser(req: Request) async throws -> Response {
        try await StaffPages.user(req, id: try Self.userID(req), error: nil, status: .ok)
    }

    @Sendable func editStaff(req: Request) async throws -> Response {
        let user = try await Self.service(req).directory.user(try Self.userID(req))
        return try await StaffPages.form(req, user: user, input: nil, error: nil, status: .ok)
    }

    @Sendable func updateStaff(req: Request) async throws -> Response {
        let id = try Self.userID(req)
        let service = try Self.service(req)
        let user = try await service.directory.user(id)
        let form = try req.content.decode(StaffPages.StaffForm.self)
        do {
            _ = try await service.updateStaff(id, form.input, adminPassword: form.adminPassword)
            return req.redirect(to: AdminPath.staff.string + "?notice=staff-updated")
        } catch let error as any AbortError {
            return try await StaffPages.form(req, user: user, input: form, error: error.reason, status: error.status)
        }
    }

    @Sendable func confirmDelete(req: Request) async throws -> Response {
        let user = try await Self.service(req).directory.user(try Self.userID(req))
        return try await StaffPages.confirm(req, .delete(user), error: nil, status: .ok)
    }

    @Sendable func deleteStaff(req: Request) async throws -> Response {
        let service = try Self.service(req)
        let id = try Self.userID(req)
        let user = try await service.directory.user(id)
        do {
            try await service.deleteStaff(id, adminPassword: try req.content.decode(PasswordForm.self).adminPassword)
            return req.redirect(to: AdminPath.staff.string + "?notice=staff-deleted")
        } catch let error as any AbortError {
            return try await StaffPages.confirm(req, .delete(user), error: error.reason, status: error.status)
        }
    }

    // MARK: two-factor authentication

    @Sendable func confirmSetUp(req: Request) async throws -> Response {
        let user = try await Self.service(req).directory.user(try Self.userID(req))
        return try await StaffPages.confirm(req, .setUp(user), error: nil, status: .ok)
    }

    @Sendable func setUp(req: Request) async throws -> Response {
        let service = try Self.service(req)
        let id = try Self.userID(req)
        let user = try await service.directory.user(id)
        do {
            _ = try await service.requireTwoFactor(of: id, adminPassword: try req.content.decode(PasswordForm.self).adminPassword)
            return req.redirect(to: AdminPath.staff.string + "?notice=two-factor-set-up")
        } catch let error as any AbortError {
            return try await StaffPages.confirm(req, .setUp(user), error: error.reason, status: error.status)
        }
    }

    @Sendable func disable(req: Request) async throws -> Response {
        let id = try Self.userID(req)
        do {
            _ = try await Self.service(req).disableTwoFactor(of: id, adminPassword: try req.content.decode(PasswordForm.self).adminPassword)
            return req.redirect(to: AdminPath.user(id).string + "?notice=two-factor-disabled")
        } catch let error as any AbortError where error.status != .notFound {
            return try await StaffPages.user(req, id: id, error: error.reason, status: error.status)
        }
    }

    // MARK: invitations

    @Sendable func resendInvitation(req: Request) async throws -> Response {
        let id = try Self.userID(req)
        do {
            _ = try await Self.service(req).resendInvitation(of: id, adminPassword: try req.content.decode(PasswordForm.self).adminPassword)
            return req.redirect(to: AdminPath.user(id).string + "?notice=\(Notice.invitationResent.rawValue)")
        } catch let error as any AbortError where error.status != .notFound {
            return try await StaffPages.user(req, id: id, error: error.reason, status: error.status)
        }
    }

    @Sendable func confirmRevokeInvitation(req: Request) async throws -> Response {
        let user = try await Self.service(req).directory.user(try Self.userID(req))
        return try await StaffPages.confirm(req, .revokeInvitation(user), error: nil, status: .ok)
    }

    @Sendable func revokeInvitation(req: Request) async throws -> Response {
        let service = try Self.service(req)
        let id = try Self.userID(req)
        let user = try await service.directory.user(id)
        do {
            try await service.revokeInvitation(of: id, adminPassword: try req.content.decode(PasswordForm.self).adminPassword)
            return req.redirect(to: AdminPath.user(id).string + "?notice=\(Notice.invitationRevoked.rawValue)")
        } catch let error as any AbortError {
            return try await StaffPages.confirm(req, .revokeInvitation(user), error: error.reason, status: error.status)
        }
    }

    // MARK: practice settings and audit

    @Sendable func practice(req: Request) async throws -> Response {
        try await PracticePages.settings(req, error: nil, status: .ok)
    }

    @Sendable func updatePractice(req: Request) async throws -> Response {
        let form = try req.content.decode(PracticePages.SettingsForm.self)
        do {
            _ = try await Self.service(req).updateSettings(form.change, adminPassword: form.adminPassword)
            return req.redirect(to: AdminPath.practice.string + "?notice=settings-saved")
        } catch let error as any AbortError {
            return try await PracticePages.settings(req, error: error.reason, status: error.status)
        }
    }

    @Sendable func audit(req: Request) async throws -> Response {
        try await PracticePages.audit(req)
    }

    @Sendable func auditCSV(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let filter = try AuditQuery.filter(from: req)
        let csv = try await AuditQuery(database: req.db, practiceID: session.practiceID).csv(filter)
        let response = Response(status: .ok, body: .init(string: csv))
        response.headers.contentType = HTTPMediaType(type: "text", subType: "csv", parameters: ["charset": "utf-8"])
        response.headers.contentDisposition = .init(.attachment, filename: "twofold-audit.csv")
        return response
    }
}

/// Addresses of the administration pages.
enum AdminPath {
    case staff
    case newStaff
    case user(UUID)
    case edit(UUID)
    case delete(UUID)
    case setUp(UUID)
    case disable(UUID)
    case resendInvitation(UUID)
    case revokeInvitation(UUID)
    case practice
    case audit
    case auditCSV
    case applications
    case newApplication
    case editApplication(String)
    case applicationSecret(String)
    case disableApplication(String)
    case enableApplication(String)
    case deleteApplication(String)
    case epcs
    case epcsSettings
    case epcsReports
    case epcsAcknowledge(UUID)
    case epcsApprove(UUID)
    case epcsRefuse(UUID)
    case epcsConfirmRevocation(UUID)
    case epcsGrant(UUID)
    case epcsRevoke(UUID)
    case epcsApprover(UUID)
    case reportLost(user: UUID, factor: UUID)
    case passwordReset(UUID)

    var string: String {
        switch self {
        case .staff: "/admin/staff"
        case .newStaff: "/admin/staff/new"
        case .user(let id): "/admin/staff/\(id.uuidString)"
        case .edit(let id): "/admin/staff/\(id.uuidString)/edit"
        case .delete(let id): "/admin/staff/\(id.uuidString)/delete"
        case .setUp(let id): "/admin/staff/\(id.uuidString)/two-factor/setup"
        case .disable(let id): "/admin/staff/\(id.uuidString)/two-factor/disable"
        case .resendInvitation(let id): "/admin/staff/\(id.uuidString)/invitation/resend"
        case .revokeInvitation(let id): "/admin/staff/\(id.uuidString)/invitation/revoke"
        case .practice: "/admin/practice"
        case .audit: "/admin/audit"
        case .auditCSV: "/admin/audit.csv"
        case .applications: "/admin/applications"
        case .newApplication: "/admin/applications/new"
        case .editApplication(let clientID): "/admin/applications/\(clientID)/edit"
        case .applicationSecret(let clientID): "/admin/applications/\(clientID)/secret"
        case .disableApplication(let clientID): "/admin/applications/\(clientID)/disable"
        case .enableApplication(let clientID): "/admin/applications/\(clientID)/enable"
        case .deleteApplication(let clientID): "/admin/applications/\(clientID)/delete"
        case .epcs: "/admin/epcs"
        case .epcsSettings: "/admin/epcs/settings"
        case .epcsReports: "/admin/epcs/reports"
        case .epcsAcknowledge(let id): "/admin/epcs/alerts/\(id.uuidString)/acknowledge"
        case .epcsApprove(let id): "/admin/epcs/grants/\(id.uuidString)/approve"
        case .epcsRefuse(let id): "/admin/epcs/grants/\(id.uuidString)/refuse"
        case .epcsConfirmRevocation(let id): "/admin/epcs/grants/\(id.uuidString)/confirm-revocation"
        case .epcsGrant(let id): "/admin/staff/\(id.uuidString)/epcs/grant"
        case .epcsRevoke(let id): "/admin/staff/\(id.uuidString)/epcs/revoke"
        case .epcsApprover(let id): "/admin/staff/\(id.uuidString)/epcs/approver"
        case .reportLost(let user, let factor): "/admin/staff/\(user.uuidString)/factors/\(factor.uuidString)/report-lost"
        case .passwordReset(let id): "/admin/staff/\(id.uuidString)/password-reset"
        }
    }
}
