import Fluent
import Vapor

/// "Forgot password?", the reset link's page, the email confirmation link's page, and the administrator's
/// "Send a password reset link".
struct PasswordResetWebController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.get(WebPath.forgotPassword, use: showForgot)
        routes.post(WebPath.forgotPassword, use: submitForgot)
        routes.get(WebPath.passwordReset(.placeholder), use: showReset)
        routes.post(WebPath.passwordReset(.placeholder), use: submitReset)
        routes.post(WebPath.passwordResetSMS(.placeholder), use: sendSMS)
        routes.get(WebPath.emailConfirm(.placeholder), use: showConfirm)
        routes.post(WebPath.emailConfirm(.placeholder), use: submitConfirm)
        let admin = routes.grouped(SessionGuard(requirement: .signedIn, style: .web)).grouped(AdminGuard())
        admin.get(AdminPath.passwordReset(.placeholder), use: confirmAdminReset)
        admin.post(AdminPath.passwordReset(.placeholder), use: adminReset)
    }

    // MARK: forgot password

    struct ForgotPage: Encodable {
        var layout: Layout
        /// The answer after a request: the same words whether or not an account matched.
        var sent: Bool
        var action = WebPath.forgotPassword.string
        var loginLink = WebPath.login.string
        var minutes: Int
    }

    struct ForgotForm: Content {
        var login: String?
    }

    @Sendable func showForgot(req: Request) async throws -> Response {
        try await req.render(
            "forgot-password",
            ForgotPage(
                layout: req.layout("Forgot password?", practice: try await LoginWebController.brandName(req)), sent: false,
                minutes: req.policy.passwordReset.linkLifetimeMinutes))
    }

    @Sendable func submitForgot(req: Request) async throws -> Response {
        let login = (try req.content.decode(ForgotForm.self).login ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        let brand = try await LoginWebController.brandName(req)
        guard !login.isEmpty else {
            return try await req.render(
                "forgot-password",
                ForgotPage(
                    layout: req.layout("Forgot password?", practice: brand, error: PasswordResetError.emptyLogin.reason), sent: false,
                    minutes: req.policy.passwordReset.linkLifetimeMinutes),
                status: .badRequest)
        }
        try await req.passwordResets.requestLink(login: login)
        return try await req.render(
            "forgot-password",
            ForgotPage(
                layout: req.layout("Forgot password?", practice: brand), sent: true, minutes: req.policy.passwordReset.linkLifetimeMinutes))
    }

    // MARK: the reset link

    struct ResetPage: Encodable {
        var layout: Layout
        /// `form`, `invalid` (expired, used or unknown link) or `administrator` (a code is needed and nothing can give one).
        var state: String
        var action: String
        var smsAction: String
        var forgotLink = WebPath.forgotPassword.string
        var loginLink = WebPath.login.string
        var username: String
        var minimumLength: Int
        var askCode: Bool
        var hasApp: Bool
        var smsAvailable: Bool
        var smsSentTo: String?
        var recoveryCodesLeft: Int
        /// The user has a second factor: the next sign-in asks for it.
        var hasSecondFactor = false
    }

    struct ResetForm: Content {
        var newPassword: String?
        var confirmPassword: String?
        var code: String?
    }

    static func token(_ req: Request) -> String { req.parameters.get("token") ?? "" }

    static func renderReset(_ req: Request, token: String, error: String?, status: HTTPResponseStatus, smsSentTo: String? = nil)
        async throws -> Response
    {
        let target: PasswordResetService.Target
        do {
            target = try await req.passwordResets.target(token: token)
        } catch let error as PasswordResetError {
            let page = ResetPage(
                layout: req.layout("Link expired", practice: try await LoginWebController.brandName(req), error: nil), state: "invalid",
                action: "", smsAction: "",
                username: "", minimumLength: 0, askCode: false, hasApp: false, smsAvailable: false, recoveryCodesLeft: 0)
            return try await req.render("reset-password", page, status: error.status)
        }
        let page = ResetPage(
            layout: req.layout("Choose a new password", practice: target.practice.name, error: error),
            state: target.needsAdministrator ? "administrator" : "form",
            action: WebPath.passwordReset(token).string, smsAction: WebPath.passwordResetSMS(token).string,
            username: target.user.username, minimumLength: target.rules.minimumLength, askCode: target.requiresCode,
            hasApp: target.codeFactors.contains { $0.kind == .totp }, smsAvailable: target.smsFactor != nil, smsSentTo: smsSentTo,
            recoveryCodesLeft: target.recoveryCodesLeft, hasSecondFactor: !target.factors.isEmpty)
        // The link's token is in the address; SecurityHeaders sends no Referer to keep it from other sites.
        return try await req.render("reset-password", page, status: status)
    }

    @Sendable func showReset(req: Request) async throws -> Response {
        try await Self.renderReset(req, token: Self.token(req), error: nil, status: .ok)
    }

    @Sendable func submitReset(req: Request) async throws -> Response {
        let token = Self.token(req)
        let form = try req.content.decode(ResetForm.self)
        do {
            try await req.passwordResets.reset(
                token: token, password: form.newPassword ?? "", confirmation: form.confirmPassword ?? "", code: form.code)
            let response = req.redirect(to: WebPath.login, notice: .passwordResetDone)
            let secure = req.twofold.configuration.secureCookies
            response.cookies[req.sessionCookieName] = SessionCookie.expired(secure: secure)
            response.cookies[req.rememberCookieName] = SessionCookie.expired(secure: secure)
            return response
        } catch let error as any AbortError {
            let response = try await Self.renderReset(req, token: token, error: error.reason, status: error.status)
            response.headers.add(contentsOf: error.headers)
            return response
        }
    }

    @Sendable func sendSMS(req: Request) async throws -> Response {
        let token = Self.token(req)
        do {
            let masked = try await req.passwordResets.sendSMS(token: token)
            return try await Self.renderReset(req, token: token, error: nil, status: .ok, smsSentTo: masked)
        } catch let error as any AbortError {
            return try await Self.renderReset(req, token: token, error: error.reason, status: error.status)
        }
    }

    // MARK: email confirmation

    struct ConfirmPage: Encodable {
        var layout: Layout
        /// `form`, `done` or `invalid`.
        var state: String
        var action: String
        var address: String
        var link: String
    }

    @Sendable func showConfirm(req: Request) async throws -> Response {
        let token = Self.token(req)
        // Opening the link only shows the question: mail scanners that fetch links must not confirm an address.
        guard let (confirmation, _) = try await req.emailVerification.confirmation(token: token) else {
            return try await Self.renderConfirm(req, state: "invalid", token: token, address: "", status: .gone)
        }
        return try await Self.renderConfirm(req, state: "form", token: token, address: confirmation.email, status: .ok)
    }

    @Sendable func submitConfirm(req: Request) async throws -> Response {
        let token = Self.token(req)
        guard let user = try await req.emailVerification.confirm(token: token) else {
            return try await Self.renderConfirm(req, state: "invalid", token: token, address: "", status: .gone)
        }
        return try await Self.renderConfirm(req, state: "done", token: token, address: user.email, status: .ok)
    }

    static func renderConfirm(_ req: Request, state: String, token: String, address: String, status: HTTPResponseStatus) async throws
        -> Response
    {
        let signedIn = req.currentSession?.record.stage == .signedIn
        var practiceName = req.currentSession?.practice.name
        if practiceName == nil { practiceName = try await LoginWebController.brandName(req) }
        let page = ConfirmPage(
            layout: req.layout("Confirm your email address", practice: practiceName),
            state: state, action: WebPath.emailConfirm(token).string, address: address,
            link: signedIn ? WebPath.profile.string : WebPath.login.string)
        return try await req.render("email-confirm", page, status: status)
    }

    // MARK: administrator

    @Sendable func confirmAdminReset(req: Request) async throws -> Response {
        let user = try await AdminWebController.service(req).directory.user(try AdminWebController.userID(req))
        return try await Self.renderAdminConfirm(req, user: user, error: nil, status: .ok)
    }

    @Sendable func adminReset(req: Request) async throws -> Response {
        let service = try AdminWebController.service(req)
        let id = try AdminWebController.userID(req)
        let user = try await service.directory.user(id)
        do {
            _ = try await service.sendPasswordReset(
                to: id, adminPassword: try req.content.decode(AdminWebController.PasswordForm.self).adminPassword,
                resets: req.passwordResets)
            return req.redirect(to: AdminPath.user(id), notice: .passwordResetSent)
        } catch let error as any AbortError {
            return try await Self.renderAdminConfirm(req, user: user, error: error.reason, status: error.status)
        }
    }

    static func renderAdminConfirm(_ req: Request, user: User, error: String?, status: HTTPResponseStatus) async throws -> Response {
        let verified = user.emailVerifiedAt != nil && !user.email.isEmpty
        let practice = try req.requireSession().practice
        let userID = try user.requireID()
        var lines = [
            "The link goes to \(user.email)\(user.pendingEmail.map { " (not to \($0), which is waiting for confirmation)" } ?? ""). It works once, for \(req.policy.passwordReset.linkLifetimeMinutes) minutes; \(user.firstName)'s current password keeps working until they use it.",
            "Setting the new password signs \(user.firstName) out everywhere and forgets their remembered browsers; they still need their second factor at the next sign-in.",
        ]
        if practice.resetRequiresSecondFactor {
            lines.append("Your practice asks for a code from their second factor (or a recovery code) before the new password is accepted.")
        }
        let context = StaffPages.ConfirmPage(
            layout: req.layout("Send a password reset link", error: error), heading: "Send \(user.fullName) a password reset link?",
            lines: lines, blocked: verified ? nil : PasswordResetError.noVerifiedEmail(name: user.fullName).reason,
            fixLink: verified ? nil : AdminPath.edit(userID).string,
            action: AdminPath.passwordReset(userID).string, button: "Send a password reset link", danger: false,
            backLink: AdminPath.user(userID).string)
        return try await req.render("admin-confirm", context, status: status)
    }
}
