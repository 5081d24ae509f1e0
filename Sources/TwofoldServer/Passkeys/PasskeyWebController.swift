import Foundation
import TwofoldCore
import Vapor

/// The passkey pages. The browser's few lines of script (twofold.js) fetch options from the JSON API, run the
/// WebAuthn ceremony and post the resulting credential here as an ordinary form, so sessions, cookies and
/// error pages work as for every other method.
struct PasskeyWebController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.grouped(SessionGuard(requirement: .enrollmentOrSignedIn, style: .web)).post(WebPath.setupPasskey, use: register)
        routes.grouped(SessionGuard(requirement: .secondFactor, style: .web)).post(WebPath.twoFactorPasskey, use: secondFactor)
        routes.post(WebPath.loginPasskey, use: passwordless)
    }

    struct CredentialForm: Content {
        var credential: String?
        var nickname: String?
        var remember: String?
    }

    static func credential<T: Decodable>(_ type: T.Type, in form: CredentialForm) throws -> T {
        guard let text = form.credential, !text.isEmpty, text.utf8.count <= 64_000,
            let value = try? JSONDecoder().decode(type, from: Data(text.utf8))
        else { throw PasskeyError.invalidCredential }
        return value
    }

    @Sendable func register(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(CredentialForm.self)
        do {
            let credential = try Self.credential(RegistrationResponseJSON.self, in: form)
            let activation = try await PasskeyService(context: req.serviceContext).register(
                credential, nickname: form.nickname, session: session)
            return try await activation.page(req)
        } catch let error as any AbortError {
            return try await SetupWebController.renderChoose(req, error: error.reason, status: error.status)
        }
    }

    @Sendable func secondFactor(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(CredentialForm.self)
        do {
            let assertion = try Self.credential(AuthenticationResponseJSON.self, in: form)
            let factor = try await PasskeyService(context: req.serviceContext).verifySecondFactor(assertion, session: session)
            return try await SignInService(context: req.serviceContext).finish(
                session: session, method: "webauthn", factor: factor, remember: form.remember != nil
            ).webResponse(req)
        } catch let error as SignInError where error == .pendingSignInCancelled {
            return try await LoginWebController.loginPage(req, error: error.reason, status: error.status, clearingSession: true)
        } catch let error as any AbortError {
            let response = try await LoginWebController.renderTwoFactor(
                req, method: "passkey", error: error.reason, status: error.status, smsSentTo: nil)
            response.headers.add(contentsOf: error.headers)
            return response
        }
    }

    @Sendable func passwordless(req: Request) async throws -> Response {
        let form = try req.content.decode(CredentialForm.self)
        do {
            let assertion = try Self.credential(AuthenticationResponseJSON.self, in: form)
            let started = try await PasskeyService(context: req.serviceContext).passwordless(
                assertion, channel: .web, replacing: req.presentedSession)
            let response = req.redirect(to: LoginWebController.destination(for: started.session.stage))
            response.cookies[req.sessionCookieName] = SessionCookie.value(started.token, secure: req.twofold.configuration.secureCookies)
            return response
        } catch let error as any AbortError {
            let response = try await LoginWebController.loginPage(req, error: error.reason, status: error.status, clearingSession: false)
            response.headers.add(contentsOf: error.headers)
            return response
        }
    }
}
