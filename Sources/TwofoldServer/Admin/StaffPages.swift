import Fluent
import Vapor

/// Rendering of the staff list, a user's page, the staff form and the confirmation pages.
enum StaffPages {
    struct StaffRow: Encodable {
        var id: String
        var username: String
        var name: String
        var email: String
        var primaryProvider: String
        var cell: String
        var twoFactor: String
        var twoFactorState: String
        var canSetUp: Bool
        /// "Invited" (with "expires …") until the staff member accepts their invitation; "Invitation expired" / "withdrawn".
        var invitation: String?
        var invitationDetail: String?
        var invitationState: String?
        var viewLink: String
        var editLink: String
        var deleteLink: String
        var setUpLink: String
    }

    struct ListPage: Encodable {
        var layout: Layout
        var rows: [StaffRow]
        var search: String
        var total: Int
        var page: Int
        var pageCount: Int
        var previousLink: String?
        var nextLink: String?
        var newLink = AdminPath.newStaff.string
    }

    static func list(_ req: Request, error: String?, status: HTTPResponseStatus) async throws -> Response {
        let service = try AdminWebController.service(req)
        let search = (try? req.query.get(String.self, at: "q")) ?? ""
        let requested = try req.boundedQuery("page", in: QueryBounds.page) ?? 1
        let page = try await service.directory.page(search: search, page: requested)
        let invitations = try await InvitationService.pending(userIDs: page.rows.compactMap(\.user.id), on: req.db)
        let rows = try page.rows.map { row -> StaffRow in
            let id = try row.user.requireID()
            let (text, state): (String, String) =
                switch row.twoFactor {
                case .active(let kind, let shortID): ("Active: \(kind == .totp ? "app" : "SMS") \(shortID)", "active")
                case .requiredNotSetUp: ("Required — not yet set up", "required")
                case .inactive: ("Inactive", "inactive")
                }
            return StaffRow(
                id: id.uuidString, username: row.user.username, name: row.user.fullName, email: row.user.email,
                primaryProvider: row.primaryProviderName ?? (row.user.role == .provider ? "Provider" : ""),
                cell: row.user.cellPhone ?? "", twoFactor: text, twoFactorState: state, canSetUp: state == "inactive",
                invitation: invitations[id].map { invitationLabel($0.state(at: req.now)) },
                invitationDetail: invitations[id].flatMap { invitationDetail($0, now: req.now) },
                invitationState: invitations[id].map { invitationStateName($0.state(at: req.now)) },
                viewLink: AdminPath.user(id).string, editLink: AdminPath.edit(id).string,
                deleteLink: AdminPath.delete(id).string, setUpLink: AdminPath.setUp(id).string)
        }
        func link(_ number: Int) -> String {
            AdminPath.staff.string(query: [URLQueryItem(name: "q", value: search), URLQueryItem(name: "page", value: String(number))])
        }
        let context = ListPage(
            layout: req.layout("Staff Members", error: error), rows: rows, search: search, total: page.total, page: page.page,
            pageCount: page.pageCount, previousLink: page.page > 1 ? link(page.page - 1) : nil,
            nextLink: page.page < page.pageCount ? link(page.page + 1) : nil)
        return try await req.render("admin-staff", context, status: status)
    }

    static func invitationText(_ invitation: Invitation, now: Date) -> String {
        switch invitation.state(at: now) {
        case .open: "Invited · expires \(InvitationService.displayDate(invitation.expiresAt))"
        case .expired: "Invitation expired \(InvitationService.displayDate(invitation.expiresAt))"
        case .revoked: "Invitation withdrawn"
        case .accepted: "Invitation accepted"
        }
    }

    static func invitationLabel(_ state: Invitation.State) -> String {
        switch state {
        case .open: "Invited"
        case .expired: "Invitation expired"
        case .revoked: "Invitation withdrawn"
        case .accepted: "Invitation accepted"
        }
    }

    static func invitationDetail(_ invitation: Invitation, now: Date) -> String? {
        switch invitation.state(at: now) {
        case .open: "expires \(InvitationService.displayDate(invitation.expiresAt))"
        case .expired: InvitationService.displayDate(invitation.expiresAt)
        case .revoked, .accepted: nil
        }
    }

    static func invitationStateName(_ state: Invitation.State) -> String {
        switch state {
        case .open: "invited"
        case .expired: "expired"
        case .revoked: "revoked"
        case .accepted: "accepted"
        }
    }

    // MARK: one user

    /// The user page's invitation card, while the invitation is not accepted.
    struct InvitationSection: Encodable {
        var text: String
        var state: String
        var isOpen: Bool
        var sentCount: Int
        var lastSent: String
        var resendAction: String
        var revokeLink: String
    }

    struct UserPage: Encodable {
        var layout: Layout
        var name: String
        var username: String
        var email: String
        var cell: String
        var role: String
        var manageAccounts: Bool
        var twoFactorRequired: Bool
        var factors: [UserFactorRow]
        var isSelf: Bool
        var disableAction: String
        var setUpLink: String
        var editLink: String
        var epcs: EPCSPages.UserSection
        var invitation: InvitationSection? = nil
        /// A new address the user has not confirmed yet; email keeps going to `email`.
        var pendingEmail: String? = nil
        var emailVerified = false
        var passwordResetLink = ""
        var backLink = AdminPath.staff.string
    }

    struct UserFactorRow: Encodable {
        var text: String
        var epcsEligible: Bool
        var reportLostLink: String
    }

    static func user(_ req: Request, id: UUID, error: String?, status: HTTPResponseStatus) async throws -> Response {
        let service = try AdminWebController.service(req)
        let user = try await service.directory.user(id)
        let factors = try await Factor.query(on: req.db).filter(\.$user.$id == id).filter(\.$status == .active).all()
        var context = UserPage(
            layout: req.layout(user.fullName, error: error), name: user.fullName, username: user.username, email: user.email,
            cell: user.cellPhone ?? "", role: user.role.rawValue, manageAccounts: user.has(.manageAccounts),
            twoFactorRequired: user.twoFactorRequired || service.admin.practice.mandatoryTwoFactor,
            factors: try factors.map { factor in
                UserFactorRow(
                    text: "\(factor.nickname) (\(factor.kind.displayName), \(factor.shortID))\(factor.isPrimary ? " — primary" : "")",
                    epcsEligible: req.epcsRules.isEligible(factor, practice: service.admin.practice),
                    reportLostLink: AdminPath.reportLost(user: id, factor: try factor.requireID()).string)
            },
            isSelf: id == service.admin.userID, disableAction: AdminPath.disable(id).string, setUpLink: AdminPath.setUp(id).string,
            editLink: AdminPath.edit(id).string, epcs: try await EPCSPages.userSection(req, user: user, viewer: service.admin.user))
        context.pendingEmail = user.pendingEmail
        context.emailVerified = user.emailVerifiedAt != nil
        context.passwordResetLink = AdminPath.passwordReset(id).string
        if let invitation = try await InvitationService.pending(userIDs: [id], on: req.db)[id] {
            let state = invitation.state(at: req.now)
            context.invitation = InvitationSection(
                text: invitationText(invitation, now: req.now), state: invitationStateName(state), isOpen: state == .open,
                sentCount: invitation.sentCount, lastSent: InvitationService.displayDate(invitation.lastSentAt),
                resendAction: AdminPath.resendInvitation(id).string, revokeLink: AdminPath.revokeInvitation(id).string)
        }
        return try await req.render("admin-user", context, status: status)
    }

    // MARK: staff form

    struct StaffForm: Content {
        var username: String?
        var firstName: String?
        var lastName: String?
        var email: String?
        var cellPhone: String?
        var role: String?
        var manageAccounts: String?
        var primaryProviderId: String?
        var temporaryPassword: String?
        /// `invite` (email an invitation) or `password` (set a temporary password). Without the field, a form that
        /// gives no temporary password sends an invitation.
        var delivery: String?
        var adminPassword: String?

        var sendsInvitation: Bool {
            switch delivery {
            case "invite": true
            case "password": false
            default: (temporaryPassword ?? "").isEmpty
            }
        }

        var input: AdminService.StaffInput {
            AdminService.StaffInput(
                username: username ?? "", firstName: firstName ?? "", lastName: lastName ?? "", email: email ?? "",
                cellPhone: cellPhone, role: role == "provider" ? .provider : .staff, manageAccounts: manageAccounts != nil,
                primaryProviderID: primaryProviderId.flatMap(UUID.init(uuidString:)))
        }
    }

    struct ProviderOption: Encodable {
        var id: String
        var name: String
        var selected: Bool
    }

    struct FormPage: Encodable {
        var layout: Layout
        var isNew: Bool
        var action: String
        var username: String
        var firstName: String
        var lastName: String
        var email: String
        var cellPhone: String
        var isProvider: Bool
        var manageAccounts: Bool
        var providers: [ProviderOption]
        var invite: Bool = true
        var backLink = AdminPath.staff.string
    }

    static func form(_ req: Request, user: User?, input: StaffForm?, error: String?, status: HTTPResponseStatus) async throws -> Response {
        let service = try AdminWebController.service(req)
        let selectedProvider = input?.primaryProviderId ?? user?.primaryProviderID?.uuidString
        let providers = try await service.directory.providers().filter { $0.id != user?.id }.map { provider in
            let id = try provider.requireID().uuidString
            return ProviderOption(id: id, name: "Dr. \(provider.firstName) \(provider.lastName)", selected: id == selectedProvider)
        }
        var context = FormPage(
            layout: req.layout(user == nil ? "Add a staff member" : "Edit \(user!.fullName)", error: error), isNew: user == nil,
            action: try user.map { AdminPath.edit(try $0.requireID()).string } ?? AdminPath.staff.string,
            username: input?.username ?? user?.username ?? "", firstName: input?.firstName ?? user?.firstName ?? "",
            lastName: input?.lastName ?? user?.lastName ?? "", email: input?.email ?? user?.email ?? "",
            cellPhone: input?.cellPhone ?? user?.cellPhone ?? "", isProvider: (input?.role ?? user?.role.rawValue) == "provider",
            manageAccounts: input.map { $0.manageAccounts != nil } ?? user?.has(.manageAccounts) ?? false, providers: providers)
        context.invite = input?.sendsInvitation ?? true
        return try await req.render("admin-staff-form", context, status: status)
    }

    // MARK: confirmations

    enum Confirmation {
        case setUp(User)
        case delete(User)
        case revokeInvitation(User)
    }

    struct ConfirmPage: Encodable {
        var layout: Layout
        var heading: String
        var lines: [String]
        var blocked: String?
        var fixLink: String?
        var action: String
        var button: String
        var danger: Bool
        var backLink = AdminPath.staff.string
    }

    static func confirm(_ req: Request, _ confirmation: Confirmation, error: String?, status: HTTPResponseStatus) async throws -> Response {
        let context: ConfirmPage
        switch confirmation {
        case .setUp(let user):
            let id = try user.requireID()
            let cell = user.cellPhone ?? ""
            context = ConfirmPage(
                layout: req.layout("Set up two-factor authentication", error: error),
                heading: "Set up two-factor authentication for \(user.fullName)",
                lines: [
                    "Email to use: \(user.email)", "Cell phone to use: \(cell.isEmpty ? "none on file" : cell)",
                    "At their next sign-in, \(user.firstName) must set up an authenticator app or confirm a text-message code sent to this cell phone before doing anything else.",
                ],
                blocked: cell.isEmpty ? AdminError.noCellPhone(name: user.fullName).reason : nil,
                fixLink: cell.isEmpty ? AdminPath.edit(id).string : nil,
                action: AdminPath.setUp(id).string, button: "Confirm", danger: false)
        case .delete(let user):
            let id = try user.requireID()
            context = ConfirmPage(
                layout: req.layout("Delete staff member", error: error), heading: "Delete \(user.fullName) (\(user.username))?",
                lines: [
                    "They will no longer be able to sign in. Their sign-in methods are removed.",
                    "The audit log keeps every event about them.",
                ],
                blocked: nil, fixLink: nil, action: AdminPath.delete(id).string, button: "Delete staff member", danger: true)
        case .revokeInvitation(let user):
            let id = try user.requireID()
            context = ConfirmPage(
                layout: req.layout("Withdraw invitation", error: error),
                heading: "Withdraw the invitation of \(user.fullName) (\(user.username))?",
                lines: [
                    "The link in their email stops working at once, and they cannot sign in: their account has no password yet.",
                    "You can send them a new invitation later from their page, or delete the account.",
                ],
                blocked: nil, fixLink: nil, action: AdminPath.revokeInvitation(id).string, button: "Withdraw invitation",
                danger: true,
                backLink: AdminPath.user(id).string)
        }
        return try await req.render("admin-confirm", context, status: status)
    }
}
