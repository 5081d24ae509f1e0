import TwofoldAPI
import TwofoldCore
import Vapor

extension CreationOptionsJSON: Content {}
extension RequestOptionsJSON: Content {}

/// The passkey endpoints of the JSON API, in the WebAuthn Level 3 JSON forms:
/// `POST /api/v1/me/factors/webauthn/options`, `POST /api/v1/me/factors/webauthn`,
/// `POST /api/v1/login/webauthn/options`, `POST /api/v1/login/webauthn`.
struct PasskeyAPIController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let enrolling = routes.grouped(SessionGuard(requirement: .enrollmentOrSignedIn, style: .api))
        enrolling.post(APIPath.mePasskeyRegistrationOptions, use: registrationOptions)
        enrolling.post(APIPath.mePasskey, use: register)
        routes.post(APIPath.passkeySignInOptions, use: signInOptions)
        routes.post(APIPath.passkeySignIn, use: signIn)
    }

    struct RegistrationRequest: Content {
        var credential: RegistrationResponseJSON
        var nickname: String?
    }

    struct SignInRequest: Content {
        var credential: AuthenticationResponseJSON
        var rememberBrowser: Bool?
    }

    static func decode<T: Decodable>(_ type: T.Type, from req: Request) throws -> T {
        do { return try req.content.decode(type) } catch { throw PasskeyError.invalidCredential }
    }

    @Sendable func registrationOptions(req: Request) async throws -> CreationOptionsJSON {
        let session = try req.requireSession()
        let body = try req.optionalAPIBody(API.PasswordConfirmation.self)
        try await Reauthentication(context: req.serviceContext).confirm(password: body?.password, session: session)
        return try await PasskeyService(context: req.serviceContext).registrationOptions(session: session)
    }

    @Sendable func register(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let body = try Self.decode(RegistrationRequest.self, from: req)
        let activation = try await PasskeyService(context: req.serviceContext).register(
            body.credential, nickname: body.nickname, session: session)
        let response = Response(status: .created)
        try response.content.encode(try API.Activation(activation))
        return response
    }

    @Sendable func signInOptions(req: Request) async throws -> RequestOptionsJSON {
        try await PasskeyService(context: req.serviceContext).signInOptions(session: req.currentSession)
    }

    @Sendable func signIn(req: Request) async throws -> API.PasskeySignedIn {
        let body = try Self.decode(SignInRequest.self, from: req)
        let service = PasskeyService(context: req.serviceContext)
        guard let session = req.currentSession else {
            let started = try await service.passwordless(body.credential, channel: .api, replacing: req.presentedSession)
            // A passwordless sign-in opens a new session: its bearer token.
            return API.PasskeySignedIn(status: .authenticated, token: started.token)
        }
        guard session.record.stage == .secondFactor else { throw PasskeyError.alreadySignedIn }
        let factor = try await service.verifySecondFactor(body.credential, session: session)
        let finished = try await SignInService(context: req.serviceContext).finish(
            session: session, method: "webauthn", factor: factor, remember: body.rememberBrowser == true)
        return API.PasskeySignedIn(status: .authenticated, token: finished.token, rememberToken: finished.rememberToken)
    }
}
