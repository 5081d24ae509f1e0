import Fluent
import Vapor

/// The sign-in pages: password, second factor, recovery code, sign-out.
struct LoginWebController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.get(WebPath.login, use: showLogin)
        routes.post(WebPath.login, use: submitLogin)
        routes.post(WebPath.logout, use: logout)
        let pending = routes.grouped(SessionGuard(requirement: .secondFactor, style: .web))
        pending.get(WebPath.twoFactor, use: showTwoFactor)
        pending.post(WebPath.twoFactor, use: submitTwoFactor)
        pending.post(WebPath.twoFactorSMS, use: sendSMS)
        pending.get(WebPath.recovery, use: showRecovery)
        pending.post(WebPath.recovery, use: submitRecovery)
        routes.grouped(SessionGuard(requirement: .signedIn, style: .web)).get(WebPath.home, use: home)
    }

    // MARK: password

    struct LoginPage: Encodable {
        var layout: Layout
        var username: String
        /// Some practice on this server allows passwordless sign-in with passkeys.
        var passwordless: Bool
        var passkeyAction = WebPath.loginPasskey.string
        var passkeyOptions = APIPath.passkeySignInOptions.string

        init(layout: Layout, username: String, request: Request) async throws {
            self.layout = layout
            self.username = username
            self.passwordless = try await Practice.query(on: request.db).filter(\.$allowPasswordless == true).first() != nil
        }
    }

    struct LoginForm: Content {
        var username: String?
        var password: String?
    }

    @Sendable func showLogin(req: Request) async throws -> Response {
        // An application asked for a fresh sign-in (OpenID Connect prompt=login or max_age): the form is shown even
        // to a signed-in browser; signing in replaces the session.
        let forApplication = (try? req.query.get(String.self, at: "continue")) == "oidc" && req.cookies[OIDCController.pendingCookie] != nil
        if let session = req.currentSession, !forApplication { return req.redirect(to: Self.destination(for: session.record.stage)) }
        let error =
            req.sessionExpired || (try? req.query.get(String.self, at: "expired")) != nil
            ? Notice.expired.message(PageLimits(req.policy)) : nil
        let username = String(((try? req.query.get(String.self, at: "username")) ?? "").prefix(100))
        return try await req.render(
            "login",
            try await LoginPage(
                layout: req.layout("Sign in", practice: try await Self.brandName(req), error: error), username: username, request: req))
    }

    @Sendable func submitLogin(req: Request) async throws -> Response {
        let form = try req.content.decode(LoginForm.self)
        let username = (form.username ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        do {
            let started = try await SignInService(context: req.serviceContext).passwordStep(
                username: username, password: form.password ?? "", channel: .web,
                rememberToken: req.cookies[req.rememberCookieName]?.string, replacing: req.presentedSession)
            let response = req.redirect(to: Self.destination(for: started.session.stage))
            response.cookies[req.sessionCookieName] = SessionCookie.value(started.token, secure: req.twofold.configuration.secureCookies)
            return response
        } catch let error as SignInError {
            let page = try await LoginPage(
                layout: req.layout("Sign in", practice: try await Self.brandName(req), error: error.reason),
                username: String(username.prefix(100)), request: req)
            let response = try await req.render("login", page, status: error.status)
            response.headers.add(contentsOf: error.headers)
            return response
        }
    }

    static func destination(for stage: SessionRecord.Stage) -> WebPath {
        switch stage {
        case .secondFactor: .twoFactor
        case .enrollment: .setup
        case .signedIn: .home
        }
    }

    /// The practice's name on the sign-in page when this server hosts a single practice.
    static func brandName(_ req: Request) async throws -> String? {
        let practices = try await Practice.query(on: req.db).limit(2).all()
        return practices.count == 1 ? practices[0].name : nil
    }

    @Sendable func logout(req: Request) async throws -> Response {
        if let session = req.currentSession {
            try await Self.endSession(req, session: session, via: nil)
        }
        let response = req.redirect(to: WebPath.login, notice: .signedOut)
        response.cookies[req.sessionCookieName] = SessionCookie.expired(secure: req.twofold.configuration.secureCookies)
        return response
    }

    // MARK: second factor

    struct MethodView: Encodable {
        var id: String
        var nickname: String
        var kind: String
        var kindName: String
        var primary: Bool
        var link: String
    }

    struct TwoFactorPage: Encodable {
        var layout: Layout
        var current: MethodView?
        var others: [MethodView]
        var smsAvailable: Bool
        var smsSentTo: String?
        var usingSMS: Bool
        var usingPush: Bool
        var usingPasskey: Bool
        var hasPasskey: Bool
        var passkeyAction = WebPath.twoFactorPasskey.string
        var passkeyOptions = APIPath.passkeySignInOptions.string
        var rememberDays: Int
        var recoveryLink = WebPath.recovery.string
        var digits: Int
    }

    struct TwoFactorForm: Content {
        var code: String?
        var factorId: UUID?
        var method: String?
        var remember: String?
    }

    @Sendable func showTwoFactor(req: Request) async throws -> Response {
        try await Self.renderTwoFactor(req, method: try? req.query.get(String.self, at: "method"), error: nil, status: .ok, smsSentTo: nil)
    }

    /// The second-factor page (also shown by the push and passkey pages after a refused proof).
    static func renderTwoFactor(_ req: Request, method: String?, error: String?, status: HTTPResponseStatus, smsSentTo: String?)
        async throws -> Response
    {
        let session = try req.requireSession()
        let factors = try await SignInService(context: req.serviceContext).activeFactors(of: session.user)
        let views = try factors.map { factor in
            let id = try factor.requireID().uuidString
            return MethodView(
                id: id, nickname: factor.nickname, kind: factor.kind.rawValue, kindName: factor.kind.displayName,
                primary: factor.isPrimary, link: WebPath.twoFactor.string(query: ["method": id]))
        }
        let usingSMS = method == "sms" || smsSentTo != nil
        let current =
            usingSMS
            ? nil : (views.first { $0.id == method } ?? (method == "passkey" ? views.first { $0.kind == "webauthn" } : nil) ?? views.first)
        let hasPhone = factors.contains { $0.kind == .sms }
        let page = TwoFactorPage(
            layout: req.layout("Two-factor authentication", error: error),
            current: current, others: views.filter { $0.id != current?.id },
            smsAvailable: session.practice.allowSMS && hasPhone, smsSentTo: smsSentTo,
            usingSMS: usingSMS || current?.kind == "sms", usingPush: !usingSMS && current?.kind == "push",
            usingPasskey: !usingSMS && current?.kind == "webauthn", hasPasskey: factors.contains { $0.kind == .webauthn },
            rememberDays: session.practice.rememberBrowserDays,
            digits: current?.kind == "totp"
                ? (factors.first { $0.id?.uuidString == current?.id }?.digits ?? 6) : max(6, session.practice.otpDigits))
        return try await req.render("two-factor", page, status: status)
    }

    @Sendable func submitTwoFactor(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(TwoFactorForm.self)
        let service = SignInService(context: req.serviceContext)
        do {
            let factor = try await service.verifyCode(
                form.code ?? "", factorID: form.method == "sms" ? nil : form.factorId, session: session)
            return try await service.finish(session: session, method: factor.kind.rawValue, factor: factor, remember: form.remember != nil)
                .webResponse(req)
        } catch let error as SignInError where error == .pendingSignInCancelled {
            return try await LoginWebController.loginPage(req, error: error.reason, status: error.status, clearingSession: true)
        } catch let error as any AbortError {
            let method = form.method ?? form.factorId?.uuidString
            let response = try await Self.renderTwoFactor(req, method: method, error: error.reason, status: error.status, smsSentTo: nil)
            response.headers.add(contentsOf: error.headers)
            return response
        }
    }

    /// Signs the session out: it ends here, and every application that received tokens in it is told over the
    /// back channel (a clinic's workstations are shared: signing out of one place signs out of all).
    /// - Parameter client: the application that asked for the sign-out (OpenID Connect RP-initiated logout), if any.
    static func endSession(_ req: Request, session: CurrentSession, via client: OIDCClient?) async throws {
        let sessionID = try session.record.requireID()
        try await session.record.delete(on: req.db)
        var details: [String: String] = [:]
        if let client { details = ["client_id": client.clientID, "application": client.name] }
        try await req.audit(
            client == nil ? .signOut : .oidcLogout, practiceID: session.practiceID, actorID: session.userID, details: details)
        try await OIDCService.sessionEnded(req, sessionID: sessionID, userID: session.userID)
    }

    static func loginPage(_ req: Request, error: String, status: HTTPResponseStatus, clearingSession: Bool) async throws -> Response {
        let page = try await LoginPage(
            layout: Layout(title: "Sign in", practiceName: try await brandName(req), csrf: req.anonymousCSRFToken, error: error),
            username: "", request: req)
        let response = try await req.render("login", page, status: status)
        if clearingSession {
            response.cookies[req.sessionCookieName] = SessionCookie.expired(secure: req.twofold.configuration.secureCookies)
        }
        return response
    }

    @Sendable func sendSMS(req: Request) async throws -> Response {
        let session = try req.requireSession()
        do {
            let masked = try await SignInService(context: req.serviceContext).sendSignInSMS(session: session)
            return try await Self.renderTwoFactor(req, method: "sms", error: nil, status: .ok, smsSentTo: masked)
        } catch let error as any AbortError {
            return try await Self.renderTwoFactor(req, method: "sms", error: error.reason, status: error.status, smsSentTo: nil)
        }
    }

    // MARK: recovery codes

    struct RecoveryPage: Encodable {
        var layout: Layout
        var backLink = WebPath.twoFactor.string
    }

    struct RecoveryForm: Content {
        var code: String?
    }

    @Sendable func showRecovery(req: Request) async throws -> Response {
        try await req.render("recovery", RecoveryPage(layout: req.layout("Use a recovery code")))
    }

    @Sendable func submitRecovery(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(RecoveryForm.self)
        do {
            let service = SignInService(context: req.serviceContext)
            _ = try await service.verifyRecoveryCode(form.code ?? "", session: session)
            return try await service.finish(session: session, method: "recovery_code", factor: nil, remember: false).webResponse(req)
        } catch let error as SignInError where error == .pendingSignInCancelled {
            return try await LoginWebController.loginPage(req, error: error.reason, status: error.status, clearingSession: true)
        } catch let error as any AbortError {
            return try await req.render(
                "recovery", RecoveryPage(layout: req.layout("Use a recovery code", error: error.reason)), status: error.status)
        }
    }

    // MARK: home

    struct HomePage: Encodable {
        struct Application: Encodable {
            var name: String
            var startURL: String
        }

        var layout: Layout
        var firstName: String
        var twoFactorOn: Bool
        var securityLink = WebPath.security.string
        var recoveryCodesLeft: Int
        /// The practice's enabled applications that registered a start URL: Twofold as the practice's front door.
        var applications: [Application] = []
        /// For EPCS access approvers: open alerts, reports awaiting review and open incidents (21 CFR 1311.150(c)).
        var epcs: EPCSHomePanel? = nil
        /// For prescribers who have or had EPCS permission: their monthly log of signings.
        var epcsLogLink: String? = nil
    }

    @Sendable func home(req: Request) async throws -> Response {
        let session = try req.requireSession()
        // Every sign-in path ends here; an application waiting for this sign-in gets its answer now.
        if let waiting = OIDCController.waitingAuthorization(req) { return waiting }
        let left = try await RecoveryCodeService(context: req.serviceContext).remaining(userID: session.userID)
        let applications = try await OIDCClient.query(on: req.db).filter(\.$practice.$id == session.practiceID).filter(\.$enabled == true)
            .filter(\.$startURL != nil).sort(\.$name).all()
            .compactMap { client in client.startURL.map { HomePage.Application(name: client.name, startURL: $0) } }
        let epcs = try await EPCSHomePanel.make(for: session, database: req.db, now: req.now)
        let prescriber = try await EPCSMonthlyLog.isPrescriber(userID: session.userID, database: req.db)
        return try await req.render(
            "home",
            HomePage(
                layout: req.layout("Home"), firstName: session.user.firstName,
                twoFactorOn: session.hasActiveFactor, recoveryCodesLeft: left,
                applications: applications, epcs: epcs,
                epcsLogLink: prescriber ? WebPath.epcsLog.string : nil))
    }
}

extension Request {
    /// The session a guarded route is guaranteed to have.
    func requireSession() throws -> CurrentSession {
        guard let session = currentSession else { throw Abort(.unauthorized, reason: "Sign in first.") }
        return session
    }
}

extension SignInService.Finished {
    /// The browser's answer to a finished sign-in: the new session cookie, the remembered-browser cookie if one was
    /// made, and the home page (which resumes an application's waiting sign-in).
    func webResponse(_ req: Request) -> Response {
        let response = req.redirect(to: WebPath.home.string)
        let secure = req.twofold.configuration.secureCookies
        response.cookies[req.sessionCookieName] = SessionCookie.value(token, secure: secure)
        if let rememberToken {
            response.cookies[req.rememberCookieName] = SessionCookie.value(rememberToken, secure: secure, maxAge: rememberDays * 86_400)
        }
        return response
    }
}
