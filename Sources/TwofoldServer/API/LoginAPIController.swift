import Fluent
import Vapor

/// `/api/v1/login…`: the sign-in state machine for API clients (bearer tokens).
struct LoginAPIController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let login = routes.grouped("login")
        login.post(use: login(req:))
        let pending = login.grouped(SessionGuard(requirement: .secondFactor, style: .api))
        pending.post("verify", use: verify)
        pending.post("sms", use: sms)
        pending.post("recovery", use: recovery)
        pending.post("push", use: startPush)
        pending.get("push", ":challengeID", use: pushStatus)
        routes.post("logout", use: logout)
    }

    @Sendable func login(req: Request) async throws -> LoginResponse {
        let body = try req.content.decode(LoginRequest.self)
        let started = try await SignInService(request: req).passwordStep(
            username: body.username, password: body.password, channel: .api, rememberToken: body.rememberToken)
        let status: String = switch started.session.stage {
        case .signedIn: "authenticated"
        case .secondFactor: "second_factor_required"
        case .enrollment: "enrollment_required"
        }
        let hasPhone = started.factors.contains { $0.kind == .sms }
        return LoginResponse(
            status: status, token: started.token,
            factors: started.session.stage == .secondFactor ? started.factors.map(FactorDTO.init) : [],
            smsAvailable: started.practice.allowSMS && hasPhone && started.session.stage == .secondFactor,
            rememberBrowserDays: started.practice.rememberBrowserDays)
    }

    @Sendable func verify(req: Request) async throws -> AuthenticatedResponse {
        let session = try req.requireSession()
        let body = try req.content.decode(VerifyRequest.self)
        let service = SignInService(request: req)
        let factor = try await service.verifyCode(body.code, factorID: body.factorId, session: session)
        let finished = try await service.finish(session: session, method: factor.kind.rawValue, factor: factor, remember: body.rememberBrowser == true)
        var response = AuthenticatedResponse()
        response.token = finished.token
        response.rememberToken = finished.rememberToken
        return response
    }

    @Sendable func sms(req: Request) async throws -> SMSSentResponse {
        let session = try req.requireSession()
        let sentTo = try await SignInService(request: req).sendSignInSMS(session: session)
        return SMSSentResponse(sentTo: sentTo, expiresInSeconds: Int(SMSCode.lifetime))
    }

    @Sendable func recovery(req: Request) async throws -> AuthenticatedResponse {
        let session = try req.requireSession()
        let body = try req.content.decode(CodeRequest.self)
        let service = SignInService(request: req)
        let left = try await service.verifyRecoveryCode(body.code, session: session)
        let finished = try await service.finish(session: session, method: "recovery_code", factor: nil, remember: false)
        return AuthenticatedResponse(token: finished.token, recoveryCodesLeft: left)
    }

    struct PushStartRequest: Content {
        var factorId: UUID?
    }

    struct PushStartResponse: Content {
        var challengeId: UUID
        var number: Int
        var expiresAt: Date
    }

    struct PushStatusResponse: Content {
        var status: String
        var rememberToken: String?
        /// Once authenticated: the session's new bearer token.
        var token: String?
    }

    @Sendable func startPush(req: Request) async throws -> PushStartResponse {
        let session = try req.requireSession()
        let body = (try? req.content.decode(PushStartRequest.self)) ?? PushStartRequest()
        let challenge = try await PushService(request: req).startChallenge(
            user: session.user, practice: session.practice, factorID: body.factorId, purpose: .signIn, sessionID: session.record.id)
        return PushStartResponse(challengeId: challenge.id!, number: challenge.number, expiresAt: challenge.expiresAt)
    }

    /// Polled by the client; the first poll that sees the approval signs the session in.
    @Sendable func pushStatus(req: Request) async throws -> PushStatusResponse {
        let session = try req.requireSession()
        let service = PushService(request: req)
        let challenge = try await service.signInChallenge(try req.parameters.require("challengeID", as: UUID.self), session: session)
        let status = challenge.visibleStatus(now: req.now)
        guard status == "approved" else { return PushStatusResponse(status: status) }
        guard try await service.claimSignIn(challenge, session: session) else { throw PushError.challengeClosed }
        let finished = try await SignInService(request: req).finish(session: session, method: "push", factor: try await challenge.$factor.get(on: req.db),
                                                                    remember: (try? req.query.get(Bool.self, at: "rememberBrowser")) == true)
        let response = PushStatusResponse(status: "authenticated", rememberToken: finished.rememberToken, token: finished.token)
        return response
    }

    @Sendable func logout(req: Request) async throws -> HTTPStatus {
        guard let session = req.currentSession else { throw Abort(.unauthorized, reason: "There is no session to end.") }
        try await session.record.delete(on: req.db)
        try await req.audit(.signOut, practiceID: session.practiceID, actorID: session.userID)
        return .noContent
    }
}
