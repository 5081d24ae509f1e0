import Fluent
import Vapor

/// The administration pages: Staff Members, one user, set up / disable 2FA, practice settings, audit log.
struct AdminWebController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let admin = routes.grouped(SessionGuard(requirement: .signedIn, style: .web)).grouped(AdminGuard())
        admin.get(AdminPath.staff, use: staff)
        admin.get(AdminPath.newStaff, use: newStaff)
        admin.post(AdminPath.staff, use: createStaff)
        admin.get(AdminPath.user(.placeholder), use: showUser)
        admin.get(AdminPath.edit(.placeholder), use: editStaff)
        admin.post(AdminPath.edit(.placeholder), use: updateStaff)
        admin.get(AdminPath.delete(.placeholder), use: confirmDelete)
        admin.post(AdminPath.delete(.placeholder), use: deleteStaff)
        admin.get(AdminPath.setUp(.placeholder), use: confirmSetUp)
        admin.post(AdminPath.setUp(.placeholder), use: setUp)
        admin.post(AdminPath.disable(.placeholder), use: disable)
        admin.post(AdminPath.resendInvitation(.placeholder), use: resendInvitation)
        admin.get(AdminPath.revokeInvitation(.placeholder), use: confirmRevokeInvitation)
        admin.post(AdminPath.revokeInvitation(.placeholder), use: revokeInvitation)
        admin.get(AdminPath.practice, use: practice)
        admin.post(AdminPath.practice, use: updatePractice)
        admin.get(AdminPath.audit, use: audit)
        admin.get(AdminPath.auditCSV, use: auditCSV)
        admin.get(AdminPath.auditExport, use: auditExport)
        try routes.register(collection: ApplicationPages())
    }

    static func service(_ req: Request) throws -> AdminService {
        try AdminService(context: req.serviceContext, admin: try req.requireSession())
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
                _ = try await Self.service(req).inviteStaff(
                    form.input, adminPassword: form.adminPassword, invitations: InvitationService(request: req))
                return req.redirect(to: AdminPath.staff, notice: .invitationSent)
            }
            let user = try await Self.service(req).createStaff(
                form.input, temporaryPassword: form.temporaryPassword ?? "", adminPassword: form.adminPassword)
            return req.redirect(to: AdminPath.staff, notice: .staffCreated, query: ["user": user.username])
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
            _ = try await service.updateStaff(
                id, form.input, adminPassword: form.adminPassword, emailVerification: req.emailVerification)
            return req.redirect(to: AdminPath.staff, notice: .staffUpdated)
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
            return req.redirect(to: AdminPath.staff, notice: .staffDeleted)
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
            return req.redirect(to: AdminPath.staff, notice: .twoFactorSetUp)
        } catch let error as any AbortError {
            return try await StaffPages.confirm(req, .setUp(user), error: error.reason, status: error.status)
        }
    }

    @Sendable func disable(req: Request) async throws -> Response {
        let id = try Self.userID(req)
        do {
            _ = try await Self.service(req).disableTwoFactor(of: id, adminPassword: try req.content.decode(PasswordForm.self).adminPassword)
            return req.redirect(to: AdminPath.user(id), notice: .twoFactorDisabledByAdmin)
        } catch let error as any AbortError where error.status != .notFound {
            return try await StaffPages.user(req, id: id, error: error.reason, status: error.status)
        }
    }

    // MARK: invitations

    @Sendable func resendInvitation(req: Request) async throws -> Response {
        let id = try Self.userID(req)
        do {
            _ = try await Self.service(req).resendInvitation(
                of: id, adminPassword: try req.content.decode(PasswordForm.self).adminPassword,
                invitations: InvitationService(request: req))
            return req.redirect(to: AdminPath.user(id), notice: .invitationResent)
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
            try await service.revokeInvitation(
                of: id, adminPassword: try req.content.decode(PasswordForm.self).adminPassword,
                invitations: InvitationService(request: req))
            return req.redirect(to: AdminPath.user(id), notice: .invitationRevoked)
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
            _ = try await Self.service(req).updateSettings(form.patch, adminPassword: form.adminPassword)
            return req.redirect(to: AdminPath.practice, notice: .settingsSaved)
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

    /// The events of the filter with a manifest signed by the checkpoint key (`twofold audit verify-export`).
    @Sendable func auditExport(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let filter = try AuditQuery.filter(from: req)
        let bundle = try await AuditExport(database: req.db, practiceID: session.practiceID, now: req.now).json(filter)
        let response = Response(status: .ok, body: .init(data: try AuditExportManifest.encoder(pretty: true).encode(bundle)))
        response.headers.contentType = .json
        response.headers.contentDisposition = .init(.attachment, filename: "twofold-audit-signed.json")
        return response
    }
}
