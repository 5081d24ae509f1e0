import Fluent
import TwofoldAPI
import Vapor

/// `/api/v1/login…`: the sign-in state machine for API clients (bearer tokens).
struct LoginAPIController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.post(APIPath.login, use: login(req:))
        let pending = routes.grouped(SessionGuard(requirement: .secondFactor, style: .api))
        pending.post(APIPath.loginVerify, use: verify)
        pending.post(APIPath.loginSMS, use: sms)
        pending.post(APIPath.loginRecovery, use: recovery)
        pending.post(APIPath.loginPush, use: startPush)
        pending.get(APIPath.loginPushStatus(.placeholder), use: pushStatus)
        routes.post(APIPath.logout, use: logout)
    }

    @Sendable func login(req: Request) async throws -> API.LoginResponse {
        let body = try req.apiBody(API.LoginRequest.self)
        let started = try await SignInService(context: req.serviceContext).passwordStep(
            username: body.username, password: body.password, channel: .api, rememberToken: body.rememberToken,
            replacing: req.presentedSession)
        let status: API.LoginResponse.StatusPayload =
            switch started.session.stage {
            case .signedIn: .authenticated
            case .secondFactor: .secondFactorRequired
            case .enrollment: .enrollmentRequired
            }
        let hasPhone = started.factors.contains { $0.kind == .sms }
        return try API.LoginResponse(
            status: status, token: started.token,
            factors: started.session.stage == .secondFactor ? started.factors.map { try API.Factor($0) } : [],
            smsAvailable: started.practice.allowSMS && hasPhone && started.session.stage == .secondFactor,
            rememberBrowserDays: started.practice.rememberBrowserDays)
    }

    @Sendable func verify(req: Request) async throws -> API.AuthenticatedResponse {
        let session = try req.requireSession()
        let body = try req.apiBody(API.VerifyCodeRequest.self)
        let service = SignInService(context: req.serviceContext)
        let factor = try await service.verifyCode(body.code, factorID: try APIField.uuid(body.factorId, "factorId"), session: session)
        let finished = try await service.finish(
            session: session, method: factor.kind.rawValue, factor: factor, remember: body.rememberBrowser == true)
        return API.AuthenticatedResponse(status: .authenticated, token: finished.token, rememberToken: finished.rememberToken)
    }

    @Sendable func sms(req: Request) async throws -> API.SMSSent {
        let session = try req.requireSession()
        let sentTo = try await SignInService(context: req.serviceContext).sendSignInSMS(session: session)
        return API.SMSSent(sentTo: sentTo, expiresInSeconds: Int(req.policy.sms.codeLifetime))
    }

    @Sendable func recovery(req: Request) async throws -> API.AuthenticatedResponse {
        let session = try req.requireSession()
        let body = try req.apiBody(API.CodeRequest.self)
        let service = SignInService(context: req.serviceContext)
        let left = try await service.verifyRecoveryCode(body.code, session: session)
        let finished = try await service.finish(session: session, method: "recovery_code", factor: nil, remember: false)
        return API.AuthenticatedResponse(status: .authenticated, token: finished.token, recoveryCodesLeft: left)
    }

    @Sendable func startPush(req: Request) async throws -> API.PushStarted {
        let session = try req.requireSession()
        let body = try req.optionalAPIBody(API.StartPushSignInRequest.self)
        let challenge = try await PushService(context: req.serviceContext).startChallenge(
            user: session.user, practice: session.practice, factorID: try APIField.uuid(body?.factorId, "factorId"), purpose: .signIn,
            sessionID: session.record.id)
        return API.PushStarted(challengeId: try challenge.requireID().uuidString, number: challenge.number, expiresAt: challenge.expiresAt)
    }

    /// Polled by the client; the first poll that sees the approval signs the session in.
    @Sendable func pushStatus(req: Request) async throws -> API.PushSignInStatus {
        let session = try req.requireSession()
        let service = PushService(context: req.serviceContext)
        let challenge = try await service.signInChallenge(
            try req.parameters.id("challengeID", notFound: PushError.challengeNotFound), session: session)
        let status = challenge.visibleStatus(now: req.now)
        guard status == "approved" else { return API.PushSignInStatus(status: try .documented(status)) }
        guard try await service.claimSignIn(challenge, session: session) else { throw PushError.challengeClosed }
        let finished = try await SignInService(context: req.serviceContext).finish(
            session: session, method: "push", factor: try await challenge.$factor.get(on: req.db),
            remember: (try? req.query.get(Bool.self, at: "rememberBrowser")) == true)
        return API.PushSignInStatus(status: .authenticated, rememberToken: finished.rememberToken, token: finished.token)
    }

    @Sendable func logout(req: Request) async throws -> HTTPStatus {
        guard let session = req.currentSession else { throw Abort(.unauthorized, reason: "There is no session to end.") }
        try await session.record.delete(on: req.db)
        try await req.audit(.signOut, practiceID: session.practiceID, actorID: session.userID)
        return .noContent
    }
}
