import TwofoldCore
import Vapor

extension CreationOptionsJSON: Content {}
extension RequestOptionsJSON: Content {}

/// The passkey endpoints of the JSON API, in the WebAuthn Level 3 JSON forms:
/// `POST /api/v1/me/factors/webauthn/options`, `POST /api/v1/me/factors/webauthn`,
/// `POST /api/v1/login/webauthn/options`, `POST /api/v1/login/webauthn`.
struct PasskeyAPIController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let enrolling = routes.grouped("me").grouped(SessionGuard(requirement: .enrollmentOrSignedIn, style: .api))
        enrolling.post("factors", "webauthn", "options", use: registrationOptions)
        enrolling.post("factors", "webauthn", use: register)
        routes.post("login", "webauthn", "options", use: signInOptions)
        routes.post("login", "webauthn", use: signIn)
    }

    struct OptionsRequest: Content {
        var password: String?
    }

    struct RegistrationRequest: Content {
        var credential: RegistrationResponseJSON
        var nickname: String?
    }

    struct SignInRequest: Content {
        var credential: AuthenticationResponseJSON
        var rememberBrowser: Bool?
    }

    struct SignInResponse: Content {
        var status = "authenticated"
        /// A passwordless sign-in opens a new session: its bearer token.
        var token: String?
        var rememberToken: String?
    }

    static func decode<T: Decodable>(_ type: T.Type, from req: Request) throws -> T {
        do { return try req.content.decode(type) } catch { throw PasskeyError.invalidCredential }
    }

    @Sendable func registrationOptions(req: Request) async throws -> CreationOptionsJSON {
        let session = try req.requireSession()
        let body = try? req.content.decode(OptionsRequest.self)
        try await Reauthentication(request: req).confirm(password: body?.password, session: session)
        return try await PasskeyService(request: req).registrationOptions(session: session)
    }

    @Sendable func register(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let body = try Self.decode(RegistrationRequest.self, from: req)
        let activation = try await PasskeyService(request: req).register(body.credential, nickname: body.nickname, session: session)
        let response = Response(status: .created)
        try response.content.encode(ActivationResponse(activation))
        return response
    }

    @Sendable func signInOptions(req: Request) async throws -> RequestOptionsJSON {
        try await PasskeyService(request: req).signInOptions(session: req.currentSession)
    }

    @Sendable func signIn(req: Request) async throws -> SignInResponse {
        let body = try Self.decode(SignInRequest.self, from: req)
        let service = PasskeyService(request: req)
        guard let session = req.currentSession else {
            let started = try await service.passwordless(body.credential, channel: .api)
            return SignInResponse(token: started.token)
        }
        guard session.record.stage == .secondFactor else { throw PasskeyError.alreadySignedIn }
        let factor = try await service.verifySecondFactor(body.credential, session: session)
        let finished = try await SignInService(request: req).finish(session: session, method: "webauthn", factor: factor, remember: body.rememberBrowser == true)
        var response = SignInResponse()
        response.token = finished.token
        response.rememberToken = finished.rememberToken
        return response
    }
}
