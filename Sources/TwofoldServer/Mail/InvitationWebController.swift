import Fluent
import Vapor

/// `/invite/{token}`: the page an invited staff member reaches from their email. It names the practice and the
/// person, asks for a password under the password rules (stricter when it will be their only factor), uses the
/// invitation up once, and signs them in through the normal first step: where 2FA is required they enroll next.
struct InvitationWebController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.get(WebPath.invitation(.placeholder), use: show)
        routes.post(WebPath.invitation(.placeholder), use: accept)
    }

    struct Page: Encodable {
        var layout: Layout
        var gone: Bool
        var practiceName: String
        var name: String
        var username: String
        var minimumLength: Int
        var twoFactorRequired: Bool
        var expires: String
        var action: String
    }

    struct AcceptForm: Content {
        var password: String?
        var confirmPassword: String?
    }

    static func token(_ req: Request) -> String { req.parameters.get("token") ?? "" }

    @Sendable func show(req: Request) async throws -> Response {
        do {
            return try await render(req, try await InvitationService(request: req).open(token: Self.token(req)), error: nil, status: .ok)
        } catch let error as InvitationError where error == .gone {
            return try await renderGone(req)
        }
    }

    @Sendable func accept(req: Request) async throws -> Response {
        let form = try req.content.decode(AcceptForm.self)
        let service = InvitationService(request: req)
        let token = Self.token(req)
        do {
            let (user, practice) = try await service.accept(
                token: token, password: form.password ?? "", confirmation: form.confirmPassword ?? "")
            let started = try await SignInService(context: req.serviceContext).passwordChosen(
                user: user, practice: practice, channel: .web, method: "invitation", replacing: req.presentedSession)
            let notice: Notice = started.session.stage == .enrollment ? .invitationAcceptedEnroll : .invitationAccepted
            let response = req.redirect(to: LoginWebController.destination(for: started.session.stage), notice: notice)
            response.cookies[req.sessionCookieName] = SessionCookie.value(started.token, secure: req.twofold.configuration.secureCookies)
            return response
        } catch let error as InvitationError where error == .gone {
            return try await renderGone(req)
        } catch let error as InvitationError {
            return try await render(req, try await service.open(token: token), error: error.reason, status: error.status)
        }
    }

    private func render(_ req: Request, _ opened: InvitationService.Opened, error: String?, status: HTTPResponseStatus) async throws
        -> Response
    {
        let page = Page(
            layout: req.layout("Welcome to Twofold", practice: opened.practice.name, error: error), gone: false,
            practiceName: opened.practice.name, name: opened.user.fullName, username: opened.user.username,
            minimumLength: opened.rules.minimumLength, twoFactorRequired: opened.rules.hasSecondFactor,
            expires: InvitationService.displayDate(opened.invitation.expiresAt), action: WebPath.invitation(Self.token(req)).string)
        let response = try await req.render("invite", page, status: status)
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }

    private func renderGone(_ req: Request) async throws -> Response {
        let page = Page(
            layout: req.layout("This invitation link no longer works", error: nil), gone: true, practiceName: "", name: "", username: "",
            minimumLength: PasswordRules.minimumLength, twoFactorRequired: false, expires: "", action: "")
        return try await req.render("invite", page, status: .gone)
    }
}
