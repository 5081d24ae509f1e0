import Fluent
import TwofoldCore
import Vapor

/// `/admin/epcs…`: EPCS access approvers, the two-person grants of EPCS permission (21 CFR 1311.125), the practice's
/// EPCS settings, alerts, and an administrator's report of a user's lost or stolen device (§1311.102). Every change
/// is confirmed on a page of its own with the administrator's password, or with a fresh authenticator code where the
/// rule asks the second approver for two-factor authentication.
struct EPCSPages: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let admin = routes.grouped(SessionGuard(requirement: .signedIn, style: .web)).grouped(AdminGuard())
        admin.get(AdminPath.epcs, use: overview)
        admin.post(AdminPath.epcsSettings, use: saveSettings)
        admin.post(AdminPath.epcsAcknowledge(.placeholder), use: acknowledge)
        for action in GrantAction.allCases {
            admin.get(action.route(.placeholder), use: { req in try await grantActionPage(req, action) })
            admin.post(action.route(.placeholder), use: { req in try await performGrantAction(req, action) })
        }
        admin.get(AdminPath.epcsGrant(.placeholder), use: grantForm)
        admin.post(AdminPath.epcsGrant(.placeholder), use: enterGrant)
        admin.get(AdminPath.epcsRevoke(.placeholder), use: revokePage)
        admin.post(AdminPath.epcsRevoke(.placeholder), use: revoke)
        admin.post(AdminPath.epcsApprover(.placeholder), use: designate)
        admin.get(AdminPath.reportLost(user: .placeholder, factor: .placeholder), use: lostDevicePage)
        admin.post(AdminPath.reportLost(user: .placeholder, factor: .placeholder), use: reportLostDevice)
    }

    /// What the second approver does to one grant, each on a page of its own.
    enum GrantAction: String, CaseIterable, Sendable {
        case approve, refuse
        case confirmRevocation = "confirm-revocation"

        func route(_ grantID: UUID) -> AdminPath {
            switch self {
            case .approve: .epcsApprove(grantID)
            case .refuse: .epcsRefuse(grantID)
            case .confirmRevocation: .epcsConfirmRevocation(grantID)
            }
        }

        func path(_ grantID: UUID) -> String { route(grantID).string }
    }

    // MARK: helpers

    static func service(_ req: Request) throws -> EPCSService {
        try EPCSService(context: req.serviceContext, admin: try req.requireSession())
    }

    static func grantID(_ req: Request) throws -> UUID {
        guard let id = req.parameters.get("grantId", as: UUID.self) else { throw EPCSError.grantNotFound }
        return id
    }

    static func factorID(_ req: Request) throws -> UUID {
        guard let id = req.parameters.get("factorId", as: UUID.self) else { throw EPCSError.factorNotFound }
        return id
    }

    static func time(_ date: Date?) -> String? {
        date.map { $0.formatted(Date.FormatStyle(date: .abbreviated, time: .shortened, timeZone: TimeZone(identifier: "UTC")!)) + " UTC" }
    }

    /// Full DEA numbers are for the approvers who manage them; everyone else sees the last four characters.
    static func dea(_ grant: EPCSGrant, viewer: User) -> String {
        viewer.epcsApprover ? grant.deaNumber : (DEANumber(grant.deaNumber)?.masked ?? "*****")
    }

    static func statusLabel(_ status: String) -> String {
        switch status {
        case "pending_approval": "Waiting for a second approver"
        case "active": "Active"
        case "refused": "Refused"
        case "revoked": "Revoked"
        case "revoked_awaiting_confirmation": "Revoked — awaiting a second approver's confirmation"
        case "registration_expired": "DEA registration expired"
        default: status.replacingOccurrences(of: "_", with: " ")
        }
    }

    /// Names of the practice's users by id, for "entered by" and "decided by".
    static func names(_ req: Request, practiceID: UUID, ids: Set<UUID>) async throws -> [UUID: String] {
        guard !ids.isEmpty else { return [:] }
        let users = try await User.query(on: req.db).filter(\.$practice.$id == practiceID).filter(\.$id ~~ Array(ids)).all()
        return Dictionary(uniqueKeysWithValues: users.compactMap { user in user.id.map { ($0, user.fullName) } })
    }

    static func openGrant(_ req: Request, userID: UUID) async throws -> EPCSGrant? {
        try await EPCSGrant.query(on: req.db).filter(\.$user.$id == userID).filter(\.$status ~~ [.active, .pendingApproval]).with(\.$user)
            .first()
    }

    // MARK: overview

    struct ApproverRow: Encodable {
        var name: String
        var username: String
        var registrant: Bool
        var link: String
    }

    struct GrantRow: Encodable {
        var id: String
        var prescriber: String
        var prescriberLink: String
        var dea: String
        var states: String
        var expires: String
        var status: String
        var statusLabel: String
        var enteredBy: String
        var enteredAt: String
        var decidedBy: String?
        var decidedAt: String?
        var revokedBy: String?
        var revokedAt: String?
        var revocationReason: String?
        var approveLink: String?
        var refuseLink: String?
        var revokeLink: String?
        var confirmRevocationLink: String?
    }

    struct AlertRow: Encodable {
        var message: String
        var created: String
        var acknowledgeAction: String
    }

    struct TokenOption: Encodable {
        var name: String
        var value: String
        var label: String
        var checked: Bool
    }

    struct OverviewPage: Encodable {
        var layout: Layout
        var isApprover: Bool
        var isRegistrant: Bool
        var approvers: [ApproverRow]
        var approverWarning: String?
        var grants: [GrantRow]
        var alerts: [AlertRow]
        var tokens: [TokenOption]
        var securityKeyAAGUIDs: String
        var workingHoursStart: String
        var workingHoursEnd: String
        var workingHoursStartRange: PracticePages.Bounds
        var workingHoursEndRange: PracticePages.Bounds
        var trustAnchorsConfigured: Bool
        var settingsAction = AdminPath.epcsSettings.string
        var reportsLink = AdminPath.epcsReports.string
        var staffLink = AdminPath.staff.string
    }

    struct SettingsForm: Content {
        var securityKeyAAGUIDs: String?
        var workingHoursStart: String?
        var workingHoursEnd: String?
        var adminPassword: String?
    }

    func renderOverview(
        _ req: Request, settingsForm: SettingsForm? = nil, tokensChosen: [EPCS.Token]? = nil, error: String? = nil,
        status: HTTPResponseStatus = .ok
    ) async throws -> Response {
        let service = try Self.service(req)
        let viewer = service.admin.user
        let practice = service.admin.practice
        let now = req.now
        let approvers = try await service.approvers()
        var warning: String?
        if approvers.count < 2 || !approvers.contains(where: \.deaRegistrant) {
            warning =
                "This practice has \(approvers.count) EPCS access approver\(approvers.count == 1 ? "" : "s")"
                + (approvers.contains(where: \.deaRegistrant) ? "" : " and none of them is a DEA registrant")
                + ". Granting EPCS permission needs at least two approvers, at least one of them a DEA registrant (21 CFR 1311.125(a)). Designate them on each user's page under Staff."
        }
        let grants = try await service.grants()
        var ids = Set<UUID>()
        for grant in grants {
            ids.insert(grant.enteredBy)
            for id in [grant.decidedBy, grant.revokedBy, grant.revocationConfirmedBy].compactMap({ $0 }) { ids.insert(id) }
        }
        let names = try await Self.names(req, practiceID: service.admin.practiceID, ids: ids)
        let rows = try grants.map { grant -> GrantRow in
            let id = try grant.requireID()
            let visible = grant.visibleStatus(now: now)
            let prescriberID = grant.$user.id
            let mayDecide = viewer.epcsApprover && grant.enteredBy != viewer.id && prescriberID != viewer.id
            var row = GrantRow(
                id: grant.shortID, prescriber: grant.user.fullName, prescriberLink: AdminPath.user(prescriberID).string,
                dea: Self.dea(grant, viewer: viewer),
                states: grant.stateList.joined(separator: ", "), expires: grant.deaExpiresOn, status: visible,
                statusLabel: Self.statusLabel(visible),
                enteredBy: names[grant.enteredBy] ?? "a former user", enteredAt: Self.time(grant.enteredAt) ?? "",
                decidedBy: grant.decidedBy.map { names[$0] ?? "a former user" }, decidedAt: Self.time(grant.decidedAt),
                revokedBy: grant.revokedBy.map { names[$0] ?? "a former user" }, revokedAt: Self.time(grant.revokedAt),
                revocationReason: grant.revocationReason)
            if grant.status == .pendingApproval, mayDecide {
                row.approveLink = GrantAction.approve.path(id)
                row.refuseLink = GrantAction.refuse.path(id)
            }
            if grant.status == .active, viewer.epcsApprover {
                row.revokeLink = AdminPath.epcsRevoke(prescriberID).string
            }
            if visible == "revoked_awaiting_confirmation", viewer.epcsApprover, grant.revokedBy != viewer.id, prescriberID != viewer.id {
                row.confirmRevocationLink = GrantAction.confirmRevocation.path(id)
            }
            return row
        }
        let alerts = try await service.openAlerts().map { alert in
            AlertRow(
                message: alert.message, created: Self.time(alert.createdAt) ?? "",
                acknowledgeAction: AdminPath.epcsAcknowledge(try alert.requireID()).string)
        }
        let saved = EPCSService.settings(of: practice)
        let chosen = tokensChosen ?? EPCS.Token.list(practice.epcsTokens)
        let page = OverviewPage(
            layout: req.layout("EPCS", error: error), isApprover: viewer.epcsApprover, isRegistrant: viewer.deaRegistrant,
            approvers: try approvers.map {
                ApproverRow(
                    name: $0.fullName, username: $0.username, registrant: $0.deaRegistrant, link: AdminPath.user(try $0.requireID()).string)
            },
            approverWarning: warning, grants: rows, alerts: alerts,
            tokens: EPCS.Token.allCases.map {
                TokenOption(name: "token_" + $0.rawValue, value: $0.rawValue, label: $0.label, checked: chosen.contains($0))
            },
            securityKeyAAGUIDs: settingsForm?.securityKeyAAGUIDs ?? saved.securityKeyAAGUIDs.joined(separator: "\n"),
            workingHoursStart: settingsForm?.workingHoursStart ?? String(saved.workingHoursStart),
            workingHoursEnd: settingsForm?.workingHoursEnd ?? String(saved.workingHoursEnd),
            workingHoursStartRange: PracticePages.Bounds(req.policy.practice.epcsWorkingHoursStart),
            workingHoursEndRange: PracticePages.Bounds(req.policy.practice.epcsWorkingHoursEnd),
            trustAnchorsConfigured: req.epcsRules.trustAnchorsConfigured)
        return try await req.render("admin-epcs", page, status: status)
    }

    @Sendable func overview(req: Request) async throws -> Response {
        try await renderOverview(req)
    }

    @Sendable func saveSettings(req: Request) async throws -> Response {
        let form = try req.content.decode(SettingsForm.self)
        let tokens = EPCS.Token.allCases.filter { token in
            ((try? req.content.get(String.self, at: "token_" + token.rawValue)) ?? "").isEmpty == false
        }
        do {
            func hour(_ text: String?) throws -> Int {
                guard let value = Int((text ?? "").trimmingCharacters(in: .whitespaces)) else {
                    throw EPCSService.workingHoursRule(req.policy)
                }
                return value
            }
            let settings = EPCSService.Settings(
                eligibleTokens: tokens.map(\.rawValue),
                securityKeyAAGUIDs: (form.securityKeyAAGUIDs ?? "").split(whereSeparator: { $0 == "," || $0.isWhitespace }).map(
                    String.init),
                workingHoursStart: try hour(form.workingHoursStart), workingHoursEnd: try hour(form.workingHoursEnd))
            _ = try await Self.service(req).updateSettings(settings, adminPassword: form.adminPassword)
            return req.redirect(to: AdminPath.epcs, notice: .epcsSettingsSaved)
        } catch let error as any AbortError {
            return try await renderOverview(req, settingsForm: form, tokensChosen: tokens, error: error.reason, status: error.status)
        }
    }

    @Sendable func acknowledge(req: Request) async throws -> Response {
        guard let id = req.parameters.get("alertId", as: UUID.self) else { throw Abort(.notFound, reason: "There is no such alert.") }
        do {
            try await Self.service(req).acknowledge(alertID: id)
            return req.redirect(to: AdminPath.epcs, notice: .epcsAlertAcknowledged)
        } catch let error as any AbortError {
            return try await renderOverview(req, error: error.reason, status: error.status)
        }
    }

    // MARK: one grant: approve, refuse, confirm a revocation; revoke a user's permission

    struct Detail: Encodable {
        var label: String
        var value: String
    }

    /// A page about one grant (or one device) with the form that acts on it.
    struct ActionPage: Encodable {
        var layout: Layout
        var heading: String
        var lines: [String]
        var details: [Detail]
        var blocked: String?
        var action: String
        var needsCode: Bool
        var needsReason: Bool
        var needsPassword: Bool
        var button: String
        var danger: Bool
        var backLink: String
        /// The second approver may send the step to their push device instead of typing a code.
        var pushAvailable = false
        /// A push request was sent: the number to enter on the device, and the request to continue with.
        var pushNumber: Int? = nil
        var pushChallengeID: String? = nil
    }

    struct GrantActionForm: Content {
        var code: String?
        var reason: String?
        var adminPassword: String?
        /// "1": send the step to the approver's push device.
        var push: String?
        var pushChallengeId: UUID?
    }

    static func details(_ grant: EPCSGrant, viewer: User, names: [UUID: String], now: Date) -> [Detail] {
        var details = [
            Detail(label: "Prescriber", value: "\(grant.user.fullName) (\(grant.user.username))"),
            Detail(label: "DEA registration number", value: dea(grant, viewer: viewer)),
            Detail(label: "Registration valid through", value: grant.deaExpiresOn),
            Detail(label: "States", value: grant.stateList.joined(separator: ", ")),
            Detail(
                label: "Identity proofing",
                value: "\(grant.proofingProvider), \(grant.proofingDate), \(grant.proofingLevel), reference \(grant.proofingReference)"),
            Detail(label: "Entered by", value: "\(names[grant.enteredBy] ?? "a former user"), \(time(grant.enteredAt) ?? "")"),
            Detail(label: "Status", value: statusLabel(grant.visibleStatus(now: now))),
        ]
        if let decidedBy = grant.decidedBy {
            details.append(Detail(label: "Decided by", value: "\(names[decidedBy] ?? "a former user"), \(time(grant.decidedAt) ?? "")"))
        }
        if let revokedBy = grant.revokedBy {
            details.append(
                Detail(
                    label: "Revoked by",
                    value: "\(names[revokedBy] ?? "a former user"), \(time(grant.revokedAt) ?? ""): \(grant.revocationReason ?? "")"))
        }
        return details
    }

    /// Why the signed-in approver cannot take this step, shown instead of the form (the service decides again, and
    /// records an attempt by someone who may not).
    static func blocked(_ action: GrantAction, grant: EPCSGrant, viewer: User, hasApp: Bool, now: Date) -> String? {
        guard viewer.epcsApprover else { return EPCSError.notApprover.reason }
        switch action {
        case .approve:
            if grant.$user.id == viewer.id { return EPCSError.ownPermission.reason }
            if grant.enteredBy == viewer.id { return EPCSError.ownGrant.reason }
            if !viewer.deaRegistrant { return EPCSError.approverNotRegistrant.reason }
            if grant.status != .pendingApproval { return EPCSError.notPending(grant.visibleStatus(now: now)).reason }
            if !hasApp { return EPCSError.noAuthenticatorApp.reason + " You can also approve on a push device." }
        case .refuse:
            if grant.status != .pendingApproval { return EPCSError.notPending(grant.visibleStatus(now: now)).reason }
        case .confirmRevocation:
            if grant.status != .revoked { return EPCSError.notPending(grant.visibleStatus(now: now)).reason }
            if grant.revocationConfirmedAt != nil { return EPCSError.alreadyConfirmed.reason }
            if grant.$user.id == viewer.id { return EPCSError.ownPermission.reason }
            if grant.revokedBy == viewer.id {
                return
                    "You revoked this permission, so a second approver must confirm the revocation (21 CFR 1311.125(c): two different people)."
            }
            if !viewer.deaRegistrant { return EPCSError.approverNotRegistrant.reason }
            if !hasApp { return EPCSError.noAuthenticatorApp.reason }
        }
        return nil
    }

    func renderGrantAction(
        _ req: Request, _ action: GrantAction, grant: EPCSGrant, error: String? = nil,
        status: HTTPResponseStatus = .ok, push: PushChallenge? = nil
    ) async throws -> Response {
        let session = try req.requireSession()
        let viewer = session.user
        let ids = Set([grant.enteredBy] + [grant.decidedBy, grant.revokedBy].compactMap { $0 })
        let names = try await Self.names(req, practiceID: session.practiceID, ids: ids)
        let kinds = try await Factor.activeKinds(of: session.userID, on: req.db)
        let hasPush = kinds.contains(.push)
        let hasApp = kinds.contains(.totp) || hasPush
        let name = grant.user.fullName
        let (heading, lines, button, danger): (String, [String], String, Bool) =
            switch action {
            case .approve:
                (
                    "Approve EPCS permission for \(name)?",
                    [
                        "Check the DEA registration and the identity-proofing record below against the documents of the credential service provider. Once you approve, \(name) can sign controlled-substance prescriptions with two-factor authentication.",
                        "21 CFR 1311.125 asks two people to set this permission: the approver who entered it and you, a DEA registrant, confirming with the second factor of your own two-factor authentication.",
                    ], "Approve EPCS permission", false
                )
            case .refuse:
                (
                    "Refuse EPCS permission for \(name)?",
                    [
                        "\(name) gets no permission to sign controlled-substance prescriptions. A new grant needs two approvers again."
                    ], "Refuse", true
                )
            case .confirmRevocation:
                (
                    "Confirm the revocation for \(name)?",
                    [
                        "The permission stopped at once when it was revoked. As the second approver you confirm the revocation with a code from your authenticator app (21 CFR 1311.125(c))."
                    ], "Confirm revocation", false
                )
            }
        let page = ActionPage(
            layout: req.layout(heading, error: error), heading: heading, lines: lines,
            details: Self.details(grant, viewer: viewer, names: names, now: req.now),
            blocked: Self.blocked(action, grant: grant, viewer: viewer, hasApp: hasApp, now: req.now),
            action: action.path(try grant.requireID()),
            needsCode: action != .refuse, needsReason: action == .refuse, needsPassword: action == .refuse, button: button, danger: danger,
            backLink: AdminPath.epcs.string, pushAvailable: action != .refuse && hasPush, pushNumber: push?.number,
            pushChallengeID: push?.id?.uuidString)
        return try await req.render("admin-epcs-action", page, status: status)
    }

    @Sendable func grantActionPage(_ req: Request, _ action: GrantAction) async throws -> Response {
        let grant = try await Self.service(req).grant(try Self.grantID(req))
        return try await renderGrantAction(req, action, grant: grant)
    }

    @Sendable func performGrantAction(_ req: Request, _ action: GrantAction) async throws -> Response {
        let service = try Self.service(req)
        let grantID = try Self.grantID(req)
        let grant = try await service.grant(grantID)
        let form = try req.content.decode(GrantActionForm.self)
        do {
            let notice: Notice
            let step = action == .approve ? "approve_grant" : "confirm_revocation"
            if action != .refuse, form.push != nil {
                let push = try await service.startPush(grantID: grantID, action: step)
                return try await renderGrantAction(req, action, grant: grant, push: push)
            }
            let proof: ApproverProof = form.pushChallengeId.map { .push(challengeID: $0) } ?? .code(form.code)
            switch action {
            case .approve:
                _ = try await service.approve(grantID: grantID, proof: proof)
                notice = .epcsGrantApproved
            case .refuse:
                _ = try await service.refuse(grantID: grantID, reason: form.reason, adminPassword: form.adminPassword)
                notice = .epcsGrantRefused
            case .confirmRevocation:
                _ = try await service.confirmRevocation(grantID: grantID, proof: proof)
                notice = .epcsRevocationConfirmed
            }
            return req.redirect(to: AdminPath.epcs, notice: notice)
        } catch let error as any AbortError {
            let fresh = try await service.grant(grantID)
            return try await renderGrantAction(req, action, grant: fresh, error: error.reason, status: error.status)
        }
    }

    func renderRevoke(_ req: Request, user: User, error: String? = nil, status: HTTPResponseStatus = .ok) async throws -> Response {
        let session = try req.requireSession()
        let userID = try user.requireID()
        let grant = try await Self.openGrant(req, userID: userID)
        var details: [Detail] = []
        if let grant {
            let names = try await Self.names(
                req, practiceID: session.practiceID, ids: Set([grant.enteredBy] + [grant.decidedBy].compactMap { $0 }))
            details = Self.details(grant, viewer: session.user, names: names, now: req.now)
        }
        let blocked =
            !session.user.epcsApprover ? EPCSError.notApprover.reason : (grant == nil ? EPCSError.noActiveGrant(user.fullName).reason : nil)
        let heading = "Revoke EPCS permission for \(user.fullName)?"
        let page = ActionPage(
            layout: req.layout(heading, error: error), heading: heading,
            lines: [
                "\(user.fullName) can no longer sign controlled-substance prescriptions from the moment you confirm (21 CFR 1311.125(d): the day a reason is known — a lost token, a registration that ended, someone who left the practice).",
                "A second approver then confirms the revocation with their authenticator app. Granting it again needs two approvers.",
            ], details: details, blocked: blocked, action: AdminPath.epcsRevoke(userID).string, needsCode: false, needsReason: true,
            needsPassword: true, button: "Revoke EPCS permission", danger: true, backLink: AdminPath.user(userID).string)
        return try await req.render("admin-epcs-action", page, status: status)
    }

    @Sendable func revokePage(req: Request) async throws -> Response {
        let user = try await AdminWebController.service(req).directory.user(try AdminWebController.userID(req))
        return try await renderRevoke(req, user: user)
    }

    @Sendable func revoke(req: Request) async throws -> Response {
        let user = try await AdminWebController.service(req).directory.user(try AdminWebController.userID(req))
        let form = try req.content.decode(GrantActionForm.self)
        do {
            _ = try await Self.service(req).revoke(userID: try user.requireID(), reason: form.reason, adminPassword: form.adminPassword)
            return req.redirect(to: AdminPath.epcs, notice: .epcsGrantRevoked)
        } catch let error as any AbortError {
            return try await renderRevoke(req, user: user, error: error.reason, status: error.status)
        }
    }

    // MARK: entering a grant

    struct GrantForm: Content {
        var deaNumber: String?
        var deaExpiresOn: String?
        var states: String?
        var proofingProvider: String?
        var proofingDate: String?
        var proofingLevel: String?
        var proofingReference: String?
        var adminPassword: String?

        var input: EPCSGrantInput {
            EPCSGrantInput(
                deaNumber: deaNumber ?? "", deaExpiresOn: (deaExpiresOn ?? "").trimmingCharacters(in: .whitespaces),
                states: (states ?? "").split(whereSeparator: { $0 == "," || $0 == ";" || $0.isWhitespace }).map(String.init),
                proofing: EPCSProofing(
                    provider: proofingProvider ?? "", date: proofingDate ?? "", level: proofingLevel ?? "",
                    reference: proofingReference ?? ""))
        }
    }

    struct GrantFormPage: Encodable {
        var layout: Layout
        var name: String
        var username: String
        var blocked: String?
        var action: String
        var deaNumber: String
        var deaExpiresOn: String
        var states: String
        var proofingProvider: String
        var proofingDate: String
        var proofingLevel: String
        var proofingReference: String
        var levels = ["IAL2", "IAL3"]
        var backLink: String
        var overviewLink = AdminPath.epcs.string
    }

    func renderGrantForm(_ req: Request, user: User, form: GrantForm?, error: String? = nil, status: HTTPResponseStatus = .ok) async throws
        -> Response
    {
        let service = try Self.service(req)
        let viewer = service.admin.user
        let userID = try user.requireID()
        var blocked: String?
        if !viewer.epcsApprover {
            blocked = EPCSError.notApprover.reason
        } else if user.id == viewer.id {
            blocked = EPCSError.ownPermission.reason
        } else if user.role != .provider {
            blocked = EPCSError.notProvider(user.fullName).reason
        } else {
            let approvers = try await service.approvers()
            if approvers.count < 2 || !approvers.contains(where: \.deaRegistrant) {
                blocked = EPCSError.tooFewApprovers.reason
            } else if try await Self.openGrant(req, userID: userID) != nil {
                blocked = EPCSError.alreadyOpen(user.fullName).reason
            }
        }
        let page = GrantFormPage(
            layout: req.layout("EPCS permission for \(user.fullName)", error: error), name: user.fullName, username: user.username,
            blocked: blocked,
            action: AdminPath.epcsGrant(userID).string, deaNumber: form?.deaNumber ?? "", deaExpiresOn: form?.deaExpiresOn ?? "",
            states: form?.states ?? "", proofingProvider: form?.proofingProvider ?? "", proofingDate: form?.proofingDate ?? "",
            proofingLevel: form?.proofingLevel ?? "IAL2", proofingReference: form?.proofingReference ?? "",
            backLink: AdminPath.user(userID).string)
        return try await req.render("admin-epcs-grant", page, status: status)
    }

    @Sendable func grantForm(req: Request) async throws -> Response {
        let user = try await AdminWebController.service(req).directory.user(try AdminWebController.userID(req))
        return try await renderGrantForm(req, user: user, form: nil)
    }

    @Sendable func enterGrant(req: Request) async throws -> Response {
        let user = try await AdminWebController.service(req).directory.user(try AdminWebController.userID(req))
        let form = try req.content.decode(GrantForm.self)
        do {
            _ = try await Self.service(req).enter(userID: try user.requireID(), input: form.input, adminPassword: form.adminPassword)
            return req.redirect(to: AdminPath.epcs, notice: .epcsGrantEntered)
        } catch let error as any AbortError {
            return try await renderGrantForm(req, user: user, form: form, error: error.reason, status: error.status)
        }
    }

    // MARK: approvers (from the user's page)

    struct ApproverForm: Content {
        var approver: String?
        var registrant: String?
        var adminPassword: String?
    }

    @Sendable func designate(req: Request) async throws -> Response {
        let id = try AdminWebController.userID(req)
        let form = try req.content.decode(ApproverForm.self)
        do {
            _ = try await Self.service(req).designate(
                userID: id, approver: !(form.approver ?? "").isEmpty, registrant: !(form.registrant ?? "").isEmpty,
                adminPassword: form.adminPassword)
            return req.redirect(to: AdminPath.user(id), notice: .epcsApproverSaved)
        } catch let error as any AbortError where error.status != .notFound {
            return try await StaffPages.user(req, id: id, error: error.reason, status: error.status)
        }
    }

    /// The EPCS part of a user's page: their approver designation, their permission, and what the viewer may do.
    struct UserSection: Encodable {
        var isApprover: Bool
        var isRegistrant: Bool
        var hasManageAccounts: Bool
        var approverAction: String
        var isProvider: Bool
        var grantStatus: String?
        var grantStatusLabel: String?
        var grantDEA: String?
        var grantExpires: String?
        var enterGrantLink: String?
        var revokeLink: String?
        var overviewLink = AdminPath.epcs.string
    }

    static func userSection(_ req: Request, user: User, viewer: User) async throws -> UserSection {
        let id = try user.requireID()
        let latest = try await EPCSGrant.query(on: req.db).filter(\.$user.$id == id).sort(\.$enteredAt, .descending).first()
        let open = latest.map { $0.status == .active || $0.status == .pendingApproval } ?? false
        let visible = latest?.visibleStatus(now: req.now)
        return UserSection(
            isApprover: user.epcsApprover, isRegistrant: user.deaRegistrant, hasManageAccounts: user.has(.manageAccounts),
            approverAction: AdminPath.epcsApprover(id).string, isProvider: user.role == .provider,
            grantStatus: visible, grantStatusLabel: visible.map(statusLabel), grantDEA: latest.map { dea($0, viewer: viewer) },
            grantExpires: latest?.deaExpiresOn,
            enterGrantLink: user.role == .provider && !open ? AdminPath.epcsGrant(id).string : nil,
            revokeLink: open ? AdminPath.epcsRevoke(id).string : nil)
    }

    // MARK: a lost or stolen device, reported by an administrator

    func renderLostDevice(_ req: Request, user: User, factor: Factor, error: String? = nil, status: HTTPResponseStatus = .ok) async throws
        -> Response
    {
        let userID = try user.requireID()
        let grant = try await Self.openGrant(req, userID: userID)
        let heading = "Report \(user.fullName)'s device lost or stolen?"
        var lines = [
            "\u{201C}\(factor.nickname)\u{201D} (\(factor.kind.displayName)) stops working at once and is removed from \(user.firstName)'s account; the browsers it helped remember are forgotten.",
            "The practice's EPCS access approvers are alerted, and the report is recorded in the audit log (21 CFR 1311.102).",
        ]
        if grant != nil {
            lines.insert(
                "\(user.fullName)'s permission to sign controlled-substance prescriptions is revoked at once and needs two approvers to be granted again.",
                at: 1)
        }
        let page = ActionPage(
            layout: req.layout(heading, error: error), heading: heading, lines: lines,
            details: [
                Detail(label: "Device", value: "\(factor.nickname) (\(factor.kind.displayName), \(factor.shortID))"),
                Detail(label: "Added", value: Self.time(factor.createdAt) ?? ""),
                Detail(label: "Last used", value: Self.time(factor.lastUsedAt) ?? "never"),
            ],
            blocked: nil, action: AdminPath.reportLost(user: userID, factor: try factor.requireID()).string, needsCode: false,
            needsReason: false, needsPassword: true, button: "Report lost or stolen", danger: true, backLink: AdminPath.user(userID).string)
        return try await req.render("admin-epcs-action", page, status: status)
    }

    static func userAndFactor(_ req: Request) async throws -> (User, Factor) {
        let user = try await AdminWebController.service(req).directory.user(try AdminWebController.userID(req))
        let userID = try user.requireID()
        guard let factor = try await Factor.query(on: req.db).filter(\.$id == (try factorID(req))).filter(\.$user.$id == userID).first()
        else { throw EPCSError.factorNotFound }
        return (user, factor)
    }

    @Sendable func lostDevicePage(req: Request) async throws -> Response {
        let (user, factor) = try await Self.userAndFactor(req)
        return try await renderLostDevice(req, user: user, factor: factor)
    }

    @Sendable func reportLostDevice(req: Request) async throws -> Response {
        let (user, factor) = try await Self.userAndFactor(req)
        let session = try req.requireSession()
        do {
            try await AdminService(context: req.serviceContext, admin: session).confirmAdminPassword(
                try req.content.decode(AdminWebController.PasswordForm.self).adminPassword)
            _ = try await LostDeviceReport(context: req.serviceContext).report(
                factorID: try factor.requireID(), of: user, practice: session.practice, reportedBy: session.userID)
            return req.redirect(to: AdminPath.user(try user.requireID()), notice: .deviceReportedLost)
        } catch let error as any AbortError {
            return try await renderLostDevice(req, user: user, factor: factor, error: error.reason, status: error.status)
        }
    }
}
