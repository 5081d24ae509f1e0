import Fluent
import TwofoldCore
import Vapor

/// The enrollment pages: choose a method, scan the QR code or confirm a texted code, save recovery codes.
struct SetupWebController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let setup = routes.grouped(SessionGuard(requirement: .enrollmentOrSignedIn, style: .web))
        setup.get(WebPath.setup, use: chooseMethod)
        setup.post(WebPath.setupApp, use: startApp)
        setup.get(WebPath.setupAppFactor(.placeholder), use: showApp)
        setup.post(WebPath.setupAppFactor(.placeholder), use: confirm)
        setup.post(WebPath.setupSMS, use: startSMS)
        setup.get(WebPath.setupSMSFactor(.placeholder), use: showSMS)
        setup.post(WebPath.setupSMSFactor(.placeholder), use: confirm)
        setup.post(WebPath.setupSMSResend(.placeholder), use: resendSMS)
        setup.post(WebPath.recoveryCodesSaved, use: codesSaved)
    }

    struct ChoosePage: Encodable {
        var layout: Layout
        var mustEnroll: Bool
        var needsPassword: Bool
        var allowTOTP: Bool
        var allowSMS: Bool
        var allowPush: Bool
        var allowPasskeys: Bool
        var cellPhone: String?
        var appAction = WebPath.setupApp.string
        var smsAction = WebPath.setupSMS.string
        var pushAction = WebPath.setupPushStart.string
        var passkeyAction = WebPath.setupPasskey.string
        var passkeyOptions = APIPath.mePasskeyRegistrationOptions.string
        var profileLink = WebPath.profile.string
        var cancelLink = WebPath.security.string
    }

    struct StartForm: Content {
        var password: String?
        var nickname: String?
    }

    @Sendable func chooseMethod(req: Request) async throws -> Response {
        try await Self.renderChoose(req, error: nil, status: .ok)
    }

    /// The page that lists the methods to set up (also shown by the push and passkey set-up pages on an error).
    static func renderChoose(_ req: Request, error: String?, status: HTTPResponseStatus) async throws -> Response {
        let session = try req.requireSession()
        let page = ChoosePage(
            layout: req.layout("Set up two-factor authentication", error: error),
            mustEnroll: session.record.stage == .enrollment || session.mustEnroll,
            needsPassword: !Reauthentication.isFresh(session, at: req.now, policy: req.policy),
            allowTOTP: session.practice.allowTOTP, allowSMS: session.practice.allowSMS, allowPush: session.practice.allowPush,
            allowPasskeys: session.practice.allowPasskeys, cellPhone: session.user.cellPhone.map(SMSCodeService.maskedPhone))
        return try await req.render("setup-choose", page, status: status)
    }

    @Sendable func startApp(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(StartForm.self)
        do {
            try await Reauthentication(context: req.serviceContext).confirm(password: form.password, session: session)
            let enrollment = try await FactorService(context: req.serviceContext).beginTOTP(session: session, nickname: form.nickname)
            return req.redirect(to: WebPath.setupAppFactor(try enrollment.factor.requireID()).string)
        } catch let error as any AbortError {
            return try await Self.renderChoose(req, error: error.reason, status: error.status)
        }
    }

    struct AppPage: Encodable {
        var layout: Layout
        var qrSVG: String
        var groupedKey: String
        var nickname: String
        var digits: Int
        var action: String
        var restartAction = WebPath.setupApp.string
        var issuer: String
        var account: String
    }

    struct CodeForm: Content {
        var code: String?
    }

    @Sendable func showApp(req: Request) async throws -> Response {
        try await renderApp(req, error: nil, status: .ok)
    }

    func renderApp(_ req: Request, error: String?, status: HTTPResponseStatus) async throws -> Response {
        let session = try req.requireSession()
        let id = try req.parameters.require("factorID", as: UUID.self)
        let enrollment: FactorService.TOTPEnrollment
        do {
            enrollment = try await FactorService(context: req.serviceContext).pendingTOTP(id: id, session: session)
        } catch let failure as FactorError {
            return try await Self.renderChoose(req, error: failure.reason, status: failure.status)
        }
        let page = AppPage(
            layout: req.layout("Set up your authenticator app", error: error), qrSVG: enrollment.qrSVG,
            groupedKey: enrollment.secret.base32Grouped, nickname: enrollment.factor.nickname, digits: enrollment.factor.digits,
            action: WebPath.setupAppFactor(id).string, issuer: enrollment.uri.issuer ?? "", account: enrollment.uri.account)
        return try await req.render("setup-app", page, status: status)
    }

    @Sendable func confirm(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let id = try req.parameters.require("factorID", as: UUID.self)
        let form = try req.content.decode(CodeForm.self)
        do {
            let activation = try await FactorService(context: req.serviceContext).activate(id: id, code: form.code ?? "", session: session)
            return try await activation.page(req)
        } catch let error as FactorError where error == .wrongCode {
            return req.route?.path == WebPath.setupSMSFactor(.placeholder).pattern
                ? try await renderSMS(req, error: error.reason, status: error.status)
                : try await renderApp(req, error: error.reason, status: error.status)
        } catch let error as any AbortError {
            return try await Self.renderChoose(req, error: error.reason, status: error.status)
        }
    }

    @Sendable func startSMS(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(StartForm.self)
        do {
            try await Reauthentication(context: req.serviceContext).confirm(password: form.password, session: session)
            let factor = try await FactorService(context: req.serviceContext).beginSMS(session: session, nickname: form.nickname)
            return req.redirect(to: WebPath.setupSMSFactor(try factor.requireID()).string)
        } catch let error as any AbortError {
            return try await Self.renderChoose(req, error: error.reason, status: error.status)
        }
    }

    struct SMSPage: Encodable {
        var layout: Layout
        var phone: String
        var digits: Int
        var action: String
        var resendAction: String
    }

    @Sendable func showSMS(req: Request) async throws -> Response {
        try await renderSMS(req, error: nil, status: .ok)
    }

    func renderSMS(_ req: Request, error: String?, status: HTTPResponseStatus) async throws -> Response {
        let session = try req.requireSession()
        let id = try req.parameters.require("factorID", as: UUID.self)
        let factor = try await FactorService(context: req.serviceContext).ownFactor(id, session: session)
        guard factor.kind == .sms, factor.status == .pending else {
            return try await Self.renderChoose(req, error: FactorError.notPending.reason, status: .conflict)
        }
        let page = SMSPage(
            layout: req.layout("Confirm your cell phone", error: error), phone: SMSCodeService.maskedPhone(factor.phone ?? ""),
            digits: factor.digits, action: WebPath.setupSMSFactor(id).string, resendAction: WebPath.setupSMSResend(id).string)
        return try await req.render("setup-sms", page, status: status)
    }

    @Sendable func resendSMS(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let id = try req.parameters.require("factorID", as: UUID.self)
        do {
            _ = try await FactorService(context: req.serviceContext).resendSMS(id: id, session: session)
            return req.redirect(to: WebPath.setupSMSFactor(id), notice: .smsSent)
        } catch let error as any AbortError {
            return try await renderSMS(req, error: error.reason, status: error.status)
        }
    }

    @Sendable func codesSaved(req: Request) async throws -> Response {
        struct Form: Content { var saved: String? }
        let form = try req.content.decode(Form.self)
        guard form.saved != nil else {
            throw Abort(.badRequest, reason: "Tick “I have saved these codes” once you have stored them somewhere safe.")
        }
        return req.redirect(to: WebPath.home, notice: .enabled)
    }
}

/// The page that shows new recovery codes, once.
enum RecoveryCodesPage {
    struct Context: Encodable {
        var layout: Layout
        var codes: [String]
        var download: String
        var firstTime: Bool
        var action = WebPath.recoveryCodesSaved.string
    }

    static func render(_ req: Request, codes: [RecoveryCode], firstTime: Bool) async throws -> Response {
        let values = codes.map(\.value)
        let practice = req.currentSession?.practice.name ?? "Twofold"
        let text =
            "\(practice) recovery codes for \(req.currentSession?.user.username ?? "")\nEach code works once.\n\n"
            + values.joined(separator: "\n") + "\n"
        let download = "data:text/plain;charset=utf-8," + (text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")
        let response = try await req.render(
            "recovery-codes",
            Context(layout: req.layout("Save your recovery codes"), codes: values, download: download, firstTime: firstTime))
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }
}
