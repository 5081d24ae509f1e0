import Fluent
import TwofoldAPI
import TwofoldCore
import Vapor

/// `/api/v1/step-up…` for integrating software (API key), and the public keys at `/.well-known/jwks.json`.
struct StepUpController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let stepUp = routes.grouped(APIKeyGuard())
        stepUp.on(.POST, APIPath.stepUps, body: .collect(maxSize: "8kb"), use: create)
        stepUp.get(APIPath.stepUp(.placeholder), use: status)
        stepUp.on(.POST, APIPath.stepUpVerify(.placeholder), body: .collect(maxSize: "4kb"), use: verify)
        stepUp.on(.POST, APIPath.stepUpPush(.placeholder), body: .collect(maxSize: "4kb"), use: push)
        stepUp.on(.POST, APIPath.stepUpPasskeyOptions(.placeholder), body: .collect(maxSize: "4kb"), use: passkeyOptions)
        stepUp.on(.POST, APIPath.stepUpPasskey(.placeholder), body: .collect(maxSize: "64kb"), use: passkey)
        routes.get(OIDCPath.jwks, use: jwks)
        if let app = routes as? Application, app.twofold.configuration.publicURL == nil, app.environment != .testing,
            (app.environment.arguments.dropFirst().first ?? "serve") == "serve"
        {
            app.logger.warning(
                "TWOFOLD_PUBLIC_URL is not set: step-up answers 503 except on this machine's loopback address (http://localhost…), because an assertion's issuer must not come from the Host header. Set TWOFOLD_PUBLIC_URL to the address users reach Twofold at."
            )
        }
    }

    /// The password of an EPCS signing sent with a passkey proof.
    struct KnowledgeFactor: Content {
        var password: String?
    }

    @Sendable func create(req: Request) async throws -> Response {
        guard let key = req.apiKey else { throw Abort(.unauthorized) }
        let body = try req.apiBody(API.CreateStepUpRequest.self)
        let service = StepUpService(context: req.serviceContext, publicIssuer: req.stepUpIssuer)
        let action = StepUpService.Action(type: body.action._type, summary: body.action.summary, hash: body.action.hash)
        let (challenge, methods) = try await service.create(
            key: key, userID: try APIField.uuid(body.userId, "userId"), username: body.username,
            action: action)
        let id = try challenge.requireID()
        // `url`: a page where the user can complete the step-up in their browser. `audience`: the assertion's `aud`, this
        // API key's id. For an EPCS signing, the attestation the prescriber is shown and the factors needed at once.
        let response = API.StepUpCreated(
            challengeId: id.uuidString, methods: try methods.map { try API.StepUpCreated.MethodsPayloadPayload.documented($0) },
            expiresAt: challenge.expiresAt,
            url: try service.issuer() + WebPath.stepUp(id).string,
            audience: challenge.apiKeyID.uuidString, attestation: try await service.attestationDocument(challenge),
            attestationHash: challenge.attestationHash, factorsRequired: challenge.isEPCS ? [.password, .hardToken] : nil)
        return try await response.encodeResponse(status: .created, for: req)
    }

    @Sendable func verify(req: Request) async throws -> API.StepUpAssertion {
        guard let key = req.apiKey else { throw Abort(.unauthorized) }
        let body = try req.apiBody(API.VerifyStepUpRequest.self)
        let service = StepUpService(context: req.serviceContext, publicIssuer: req.stepUpIssuer)
        let challenge = try await service.load(try req.parameters.id("id", notFound: StepUpError.notFound), for: key)
        try await service.verifyCode(challenge, code: body.code, password: body.password)
        guard let assertion = try await service.issueAssertion(challenge) else { throw StepUpError.closed("completed") }
        return API.StepUpAssertion(status: .completed, assertion: assertion)
    }

    @Sendable func push(req: Request) async throws -> API.StepUpPush {
        guard let key = req.apiKey else { throw Abort(.unauthorized) }
        let body = try req.optionalAPIBody(API.PushStepUpRequest.self)
        let service = StepUpService(context: req.serviceContext, publicIssuer: req.stepUpIssuer)
        let challenge = try await service.load(try req.parameters.id("id", notFound: StepUpError.notFound), for: key)
        let push = try await service.startPush(challenge, factorID: try APIField.uuid(body?.factorId, "factorId"), password: body?.password)
        return API.StepUpPush(pushChallengeId: try push.requireID().uuidString, number: push.number, expiresAt: push.expiresAt)
    }

    @Sendable func passkeyOptions(req: Request) async throws -> RequestOptionsJSON {
        guard let key = req.apiKey else { throw Abort(.unauthorized) }
        let service = StepUpService(context: req.serviceContext, publicIssuer: req.stepUpIssuer)
        return try await service.passkeyOptions(
            try await service.load(try req.parameters.id("id", notFound: StepUpError.notFound), for: key))
    }

    @Sendable func passkey(req: Request) async throws -> API.StepUpAssertion {
        guard let key = req.apiKey else { throw Abort(.unauthorized) }
        let body = try PasskeyAPIController.decode(PasskeyAPIController.SignInRequest.self, from: req)
        let service = StepUpService(context: req.serviceContext, publicIssuer: req.stepUpIssuer)
        let challenge = try await service.load(try req.parameters.id("id", notFound: StepUpError.notFound), for: key)
        let knowledge = try? req.content.decode(KnowledgeFactor.self)
        try await service.verifyPasskey(challenge, assertion: body.credential, password: knowledge?.password)
        guard let assertion = try await service.issueAssertion(challenge) else { throw StepUpError.closed("completed") }
        return API.StepUpAssertion(status: .completed, assertion: assertion)
    }

    /// Polled by the integrator: once the user has proven a factor (push, or the browser page), the first poll gets the assertion.
    @Sendable func status(req: Request) async throws -> API.StepUpAssertion {
        guard let key = req.apiKey else { throw Abort(.unauthorized) }
        let service = StepUpService(context: req.serviceContext, publicIssuer: req.stepUpIssuer)
        let challenge = try await service.load(try req.parameters.id("id", notFound: StepUpError.notFound), for: key)
        try await service.collectPush(challenge)
        if challenge.visibleStatus(now: req.now) == "verified", let assertion = try await service.issueAssertion(challenge) {
            return API.StepUpAssertion(status: .completed, assertion: assertion)
        }
        return API.StepUpAssertion(status: try .documented(challenge.visibleStatus(now: req.now)))
    }

    /// The public keys of every signing algorithm, current and recently retired (RFC 7517 §5).
    @Sendable func jwks(req: Request) async throws -> Response {
        let response = try await req.tokenSigner.jwks().encodeResponse(for: req)
        response.headers.replaceOrAdd(name: .cacheControl, value: "public, max-age=300")
        return response
    }
}
