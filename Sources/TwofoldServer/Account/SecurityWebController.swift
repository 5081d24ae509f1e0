import Fluent
import TwofoldCore
import Vapor

/// Account › Security: factors, remembered browsers, recovery codes, turning 2FA off; and the profile and password pages.
struct SecurityWebController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let account = routes.grouped(SessionGuard(requirement: .signedIn, style: .web))
        account.get(WebPath.security, use: show)
        account.post(WebPath.securityRecoveryCodes, use: regenerateCodes)
        account.post(WebPath.securityDisable, use: disable)
        account.post(WebPath.securityBrowserRevoke(.placeholder), use: revokeBrowser)
        account.post(WebPath.securityFactorRemove(.placeholder), use: removeFactor)
        account.post(WebPath.securityFactorPrimary(.placeholder), use: makePrimary)
        account.post(WebPath.securityFactorRename(.placeholder), use: renameFactor)
        account.get(WebPath.securityFactorReportLost(.placeholder), use: confirmLostDevice)
        account.post(WebPath.securityFactorReportLost(.placeholder), use: reportLostDevice)
        account.get(WebPath.profile, use: showProfile)
        account.post(WebPath.profile, use: updateProfile)
        let passwordChange = routes.grouped(SessionGuard(requirement: .passwordChange, style: .web))
        passwordChange.get(WebPath.password, use: showPassword)
        passwordChange.post(WebPath.password, use: changePassword)
    }

    struct FactorRow: Encodable {
        var nickname: String
        var kindName: String
        var shortID: String
        var added: String
        var lastUsed: String
        var primary: Bool
        var detail: String?
        var removeAction: String
        var primaryAction: String
        var renameAction: String
        /// The practice counts this device for signing controlled-substance prescriptions (21 CFR 1311.115).
        var epcsEligible: Bool
        var reportLostLink: String
        /// Removing the only method turns 2FA off, so its form also asks for a code.
        var isLast: Bool
    }

    struct BrowserRow: Encodable {
        var summary: String
        var created: String
        var lastUsed: String
        var lastIP: String
        var expires: String
        var revokeAction: String
    }

    struct Page: Encodable {
        var layout: Layout
        var twoFactorOn: Bool
        var required: Bool
        var requiredBy: String
        var email: String
        var cellPhone: String?
        var factors: [FactorRow]
        var browsers: [BrowserRow]
        var recoveryCodesLeft: Int
        var needsPassword: Bool
        var allowPasskeys: Bool
        /// An authenticator app or text message can confirm turning 2FA off; push devices and passkeys show no code.
        var hasCodeMethod: Bool
        var methodsWithoutCodes: String
        var addLink = WebPath.setup.string
        var addPasskeyLink = WebPath.setup.string + "#passkey"
        var profileLink = WebPath.profile.string
        var passwordLink = WebPath.password.string
        var regenerateAction = WebPath.securityRecoveryCodes.string
        var disableAction = WebPath.securityDisable.string
    }

    /// The masked phone of a text-message method; whether a passkey is synced or bound to one device.
    static func detail(of factor: Factor) -> String? {
        if factor.kind == .webauthn { return factor.backupEligible == true ? "synced passkey" : "device-bound" }
        return factor.phone.map(SMSCodeService.maskedPhone)
    }

    static func format(_ date: Date?) -> String {
        guard let date else { return "Never" }
        return date.formatted(Date.FormatStyle(date: .abbreviated, time: .shortened, timeZone: TimeZone(identifier: "UTC")!)) + " UTC"
    }

    @Sendable func show(req: Request) async throws -> Response {
        try await render(req, error: nil, status: .ok)
    }

    func render(_ req: Request, error: String?, status: HTTPResponseStatus) async throws -> Response {
        let session = try req.requireSession()
        let factors = try await SignInService(context: req.serviceContext).activeFactors(of: session.user)
        let browsers = try await RememberedBrowser.query(on: req.db).filter(\.$user.$id == session.userID)
            .filter(\.$expiresAt > req.now).sort(\.$createdAt, .descending).all()
        let page = Page(
            layout: req.layout("Security", error: error),
            twoFactorOn: !factors.isEmpty, required: session.twoFactorRequired,
            requiredBy: session.practice.mandatoryTwoFactor ? "your practice" : "your practice administrator",
            email: session.user.email, cellPhone: session.user.cellPhone,
            factors: try factors.map { factor in
                let id = try factor.requireID()
                return FactorRow(
                    nickname: factor.nickname, kindName: factor.kind.displayName, shortID: factor.shortID,
                    added: Self.format(factor.createdAt),
                    lastUsed: Self.format(factor.lastUsedAt), primary: factor.isPrimary, detail: Self.detail(of: factor),
                    removeAction: WebPath.securityFactorRemove(id).string,
                    primaryAction: WebPath.securityFactorPrimary(id).string,
                    renameAction: WebPath.securityFactorRename(id).string,
                    epcsEligible: req.epcsRules.isEligible(factor, practice: session.practice),
                    reportLostLink: WebPath.securityFactorReportLost(id).string, isLast: factors.count == 1)
            },
            browsers: try browsers.map { browser in
                BrowserRow(
                    summary: browser.userAgent, created: Self.format(browser.createdAt),
                    lastUsed: Self.format(browser.lastUsedAt ?? browser.createdAt),
                    lastIP: browser.lastIP, expires: Self.format(browser.expiresAt),
                    revokeAction: WebPath.securityBrowserRevoke(try browser.requireID()).string)
            },
            recoveryCodesLeft: try await RecoveryCodeService(context: req.serviceContext).remaining(userID: session.userID),
            needsPassword: !Reauthentication.isFresh(session, at: req.now, policy: req.policy),
            allowPasskeys: session.practice.allowPasskeys,
            hasCodeMethod: factors.contains { $0.kind == .totp || $0.kind == .sms },
            methodsWithoutCodes: Set(factors.map(\.kind.displayName)).sorted().joined(separator: ", ").lowercased())
        return try await req.render("security", page, status: status)
    }

    struct PasswordForm: Content {
        var password: String?
        var code: String?
        var nickname: String?
    }

    /// Runs a change after re-authentication; failures re-render the page with the reason.
    private func change(_ req: Request, notice: Notice, _ body: (CurrentSession, PasswordForm) async throws -> Void) async throws
        -> Response
    {
        let session = try req.requireSession()
        let form = try req.content.decode(PasswordForm.self)
        do {
            try await Reauthentication(context: req.serviceContext).confirm(password: form.password, session: session)
            try await body(session, form)
            return req.redirect(to: WebPath.security, notice: notice)
        } catch let error as any AbortError {
            return try await render(req, error: error.reason, status: error.status)
        }
    }

    @Sendable func regenerateCodes(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(PasswordForm.self)
        do {
            try await Reauthentication(context: req.serviceContext).confirm(password: form.password, session: session)
            let codes = try await RecoveryCodeService(context: req.serviceContext).regenerate(session: session)
            return try await RecoveryCodesPage.render(req, codes: codes, firstTime: false)
        } catch let error as any AbortError {
            return try await render(req, error: error.reason, status: error.status)
        }
    }

    @Sendable func disable(req: Request) async throws -> Response {
        try await change(req, notice: .disabled) { session, form in
            try await FactorService(context: req.serviceContext).disableTwoFactor(code: form.code ?? "", session: session)
        }
    }

    @Sendable func revokeBrowser(req: Request) async throws -> Response {
        try await change(req, notice: .browserRevoked) { session, _ in
            try await ProfileService(context: req.serviceContext).revokeRememberedBrowser(
                id: try req.parameters.require("id", as: UUID.self), session: session)
        }
    }

    @Sendable func removeFactor(req: Request) async throws -> Response {
        try await change(req, notice: .factorRemoved) { session, form in
            try await FactorService(context: req.serviceContext).remove(
                id: try req.parameters.require("id", as: UUID.self), code: form.code, session: session)
        }
    }

    @Sendable func makePrimary(req: Request) async throws -> Response {
        try await change(req, notice: .primaryChanged) { session, _ in
            _ = try await FactorService(context: req.serviceContext).makePrimary(
                id: try req.parameters.require("id", as: UUID.self), session: session)
        }
    }

    @Sendable func renameFactor(req: Request) async throws -> Response {
        try await change(req, notice: .factorRenamed) { session, form in
            _ = try await FactorService(context: req.serviceContext).rename(
                id: try req.parameters.require("id", as: UUID.self), nickname: form.nickname ?? "", session: session)
        }
    }

    // MARK: a lost or stolen device

    struct LostDevicePage: Encodable {
        var layout: Layout
        var nickname: String
        var kindName: String
        var shortID: String
        var hasEPCSPermission: Bool
        var isLast: Bool
        var action: String
        var backLink = WebPath.security.string
    }

    /// One of the signed-in user's own devices (anyone else's is not found).
    private func ownFactor(_ req: Request) async throws -> Factor {
        let session = try req.requireSession()
        guard let id = req.parameters.get("id", as: UUID.self),
            let factor = try await Factor.query(on: req.db).filter(\.$id == id).filter(\.$user.$id == session.userID).first()
        else { throw EPCSError.factorNotFound }
        return factor
    }

    func renderLostDevice(_ req: Request, factor: Factor, error: String?, status: HTTPResponseStatus) async throws -> Response {
        let session = try req.requireSession()
        let factorID = try factor.requireID()
        let grant = try await EPCSGrant.query(on: req.db).filter(\.$user.$id == session.userID).filter(
            \.$status ~~ [.active, .pendingApproval]
        ).first()
        let others = try await Factor.query(on: req.db).filter(\.$user.$id == session.userID).filter(\.$status == .active).filter(
            \.$id != factorID
        ).count()
        let page = LostDevicePage(
            layout: req.layout("Report a lost or stolen device", error: error), nickname: factor.nickname,
            kindName: factor.kind.displayName, shortID: factor.shortID, hasEPCSPermission: grant != nil,
            isLast: others == 0, action: WebPath.securityFactorReportLost(factorID).string)
        return try await req.render("account-lost-device", page, status: status)
    }

    @Sendable func confirmLostDevice(req: Request) async throws -> Response {
        try await renderLostDevice(req, factor: try await ownFactor(req), error: nil, status: .ok)
    }

    /// §1311.102: the device stops working at once, EPCS signing is suspended (the permission is revoked) and the
    /// practice's approvers are alerted. Always confirmed with the password, however fresh the session.
    @Sendable func reportLostDevice(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let factor = try await ownFactor(req)
        let form = try req.content.decode(PasswordForm.self)
        do {
            guard let password = form.password, !password.isEmpty else { throw Reauthentication.Failure.passwordRequired }
            try await Reauthentication(context: req.serviceContext).confirm(password: password, session: session)
            _ = try await LostDeviceReport(context: req.serviceContext).report(
                factorID: try factor.requireID(), of: session.user, practice: session.practice, reportedBy: session.userID)
            return req.redirect(to: WebPath.security, notice: .deviceReportedLost)
        } catch let error as any AbortError {
            return try await renderLostDevice(req, factor: factor, error: error.reason, status: error.status)
        }
    }

    // MARK: profile and password

    struct ProfilePage: Encodable {
        var layout: Layout
        var firstName: String
        var lastName: String
        var email: String
        var cellPhone: String
        var needsPassword: Bool
        /// A new address waiting for its confirmation link.
        var pendingEmail: String? = nil
        var backLink = WebPath.security.string
    }

    struct ProfileForm: Content {
        var email: String?
        var cellPhone: String?
        var password: String?
    }

    @Sendable func showProfile(req: Request) async throws -> Response {
        try await renderProfile(req, error: nil, status: .ok, form: nil)
    }

    func renderProfile(_ req: Request, error: String?, status: HTTPResponseStatus, form: ProfileForm?) async throws -> Response {
        let session = try req.requireSession()
        let page = ProfilePage(
            layout: req.layout("Profile", error: error), firstName: session.user.firstName, lastName: session.user.lastName,
            email: form?.email ?? session.user.email, cellPhone: form?.cellPhone ?? session.user.cellPhone ?? "",
            needsPassword: !Reauthentication.isFresh(session, at: req.now, policy: req.policy),
            pendingEmail: session.user.pendingEmail)
        return try await req.render("profile", page, status: status)
    }

    @Sendable func updateProfile(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(ProfileForm.self)
        do {
            try await Reauthentication(context: req.serviceContext).confirm(password: form.password, session: session)
            let confirming = try await ProfileService(context: req.serviceContext).update(
                session: session, email: form.email ?? "", cellPhone: form.cellPhone ?? "", verification: req.emailVerification)
            return req.redirect(to: WebPath.security, notice: confirming ? .emailConfirmationSent : .profileUpdated)
        } catch let error as any AbortError {
            return try await renderProfile(req, error: error.reason, status: error.status, form: form)
        }
    }

    struct PasswordPage: Encodable {
        var layout: Layout
        var mustChange = false
        var minimumLength = PasswordRules.minimumLength
        var backLink = WebPath.security.string
    }

    struct ChangePasswordForm: Content {
        var currentPassword: String?
        var newPassword: String?
        var confirmPassword: String?
    }

    @Sendable func showPassword(req: Request) async throws -> Response {
        let user = try req.requireSession().user
        return try await req.render(
            "password",
            PasswordPage(
                layout: req.layout("Change password"), mustChange: user.mustChangePassword,
                minimumLength: try await PasswordRules.context(for: user, on: req.db).minimumLength))
    }

    @Sendable func changePassword(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(ChangePasswordForm.self)
        do {
            let token = try await ProfileService(context: req.serviceContext).changePassword(
                session: session, current: form.currentPassword ?? "", new: form.newPassword ?? "", confirmation: form.confirmPassword ?? ""
            )
            let response = req.redirect(to: WebPath.security, notice: .passwordChanged)
            response.cookies[req.sessionCookieName] = SessionCookie.value(token, secure: req.twofold.configuration.secureCookies)
            response.cookies[req.rememberCookieName] = SessionCookie.expired(secure: req.twofold.configuration.secureCookies)
            return response
        } catch let error as any AbortError {
            let page = PasswordPage(
                layout: req.layout("Change password", error: error.reason),
                minimumLength: try await PasswordRules.context(for: session.user, on: req.db).minimumLength)
            let response = try await req.render("password", page, status: error.status)
            response.headers.add(contentsOf: error.headers)
            return response
        }
    }
}
