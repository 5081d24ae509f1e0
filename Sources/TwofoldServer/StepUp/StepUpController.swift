import Fluent
import TwofoldCore
import Vapor

/// `/api/v1/step-up…` for integrating software (API key), and the public keys at `/.well-known/jwks.json`.
struct StepUpController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let stepUp = routes.grouped("api", "v1", "step-up").grouped(APIKeyGuard())
        stepUp.on(.POST, body: .collect(maxSize: "8kb"), use: create)
        stepUp.get(":id", use: status)
        stepUp.on(.POST, ":id", "verify", body: .collect(maxSize: "4kb"), use: verify)
        stepUp.on(.POST, ":id", "push", body: .collect(maxSize: "4kb"), use: push)
        stepUp.on(.POST, ":id", "webauthn", "options", body: .collect(maxSize: "4kb"), use: passkeyOptions)
        stepUp.on(.POST, ":id", "webauthn", body: .collect(maxSize: "64kb"), use: passkey)
        routes.get(".well-known", "jwks.json", use: jwks)
        if let app = routes as? Application, app.twofold.configuration.publicURL == nil, app.environment != .testing,
           (app.environment.arguments.dropFirst().first ?? "serve") == "serve" {
            app.logger.warning("TWOFOLD_PUBLIC_URL is not set: step-up answers 503 except on this machine's loopback address (http://localhost…), because an assertion's issuer must not come from the Host header. Set TWOFOLD_PUBLIC_URL to the address users reach Twofold at.")
        }
    }

    struct CreateRequest: Content {
        var userId: UUID?
        var username: String?
        var action: StepUpService.Action
    }

    struct CreateResponse: Content {
        var challengeId: UUID
        var methods: [String]
        var expiresAt: Date
        /// A page where the user can complete the step-up in their browser.
        var url: String
        /// The `aud` of the assertion: this API key's id. Only this key can read, verify or poll the step-up.
        var audience: String
        /// For `action.type` "epcs": the exact text the prescriber is shown (prescriptions, name, DEA number and the
        /// statement of 21 CFR 1311.140(a)(3)), its SHA-256 (in the assertion's `epcs.attestation_sha256`), and the
        /// factors needed at once: the password and a hard token.
        var attestation: String?
        var attestationHash: String?
        var factorsRequired: [String]?
    }

    struct VerifyRequest: Content {
        var code: String
        /// Required for an EPCS signing: the prescriber's password (the knowledge factor).
        var password: String?
    }

    /// The password of an EPCS signing sent with a push or passkey proof.
    struct KnowledgeFactor: Content {
        var password: String?
    }

    struct AssertionResponse: Content {
        var status: String
        var assertion: String?
    }

    struct PushRequest: Content {
        var factorId: UUID?
        var password: String?
    }

    struct PushResponse: Content {
        var pushChallengeId: UUID
        /// Show this number to the user; they enter it on the device.
        var number: Int
        var expiresAt: Date
    }

    @Sendable func create(req: Request) async throws -> Response {
        guard let key = req.apiKey else { throw Abort(.unauthorized) }
        let body = try req.content.decode(CreateRequest.self)
        let service = StepUpService(request: req)
        let (challenge, methods) = try await service.create(key: key, userID: body.userId, username: body.username, action: body.action)
        let response = CreateResponse(challengeId: challenge.id!, methods: methods, expiresAt: challenge.expiresAt,
                                      url: try service.issuer() + WebPath.stepUp(challenge.id!).string,
                                      audience: challenge.apiKeyID.uuidString, attestation: try await service.attestationDocument(challenge),
                                      attestationHash: challenge.attestationHash, factorsRequired: challenge.isEPCS ? ["password", "hard_token"] : nil)
        return try await response.encodeResponse(status: .created, for: req)
    }

    @Sendable func verify(req: Request) async throws -> AssertionResponse {
        guard let key = req.apiKey else { throw Abort(.unauthorized) }
        let body = try req.content.decode(VerifyRequest.self)
        let service = StepUpService(request: req)
        let challenge = try await service.load(try req.parameters.require("id", as: UUID.self), for: key)
        try await service.verifyCode(challenge, code: body.code, password: body.password)
        guard let assertion = try await service.issueAssertion(challenge) else { throw StepUpError.closed("completed") }
        return AssertionResponse(status: "completed", assertion: assertion)
    }

    @Sendable func push(req: Request) async throws -> PushResponse {
        guard let key = req.apiKey else { throw Abort(.unauthorized) }
        let body = (try? req.content.decode(PushRequest.self)) ?? PushRequest()
        let service = StepUpService(request: req)
        let challenge = try await service.load(try req.parameters.require("id", as: UUID.self), for: key)
        let push = try await service.startPush(challenge, factorID: body.factorId, password: body.password)
        return PushResponse(pushChallengeId: push.id!, number: push.number, expiresAt: push.expiresAt)
    }

    @Sendable func passkeyOptions(req: Request) async throws -> RequestOptionsJSON {
        guard let key = req.apiKey else { throw Abort(.unauthorized) }
        let service = StepUpService(request: req)
        return try await service.passkeyOptions(try await service.load(try req.parameters.require("id", as: UUID.self), for: key))
    }

    @Sendable func passkey(req: Request) async throws -> AssertionResponse {
        guard let key = req.apiKey else { throw Abort(.unauthorized) }
        let body = try PasskeyAPIController.decode(PasskeyAPIController.SignInRequest.self, from: req)
        let service = StepUpService(request: req)
        let challenge = try await service.load(try req.parameters.require("id", as: UUID.self), for: key)
        let knowledge = try? req.content.decode(KnowledgeFactor.self)
        try await service.verifyPasskey(challenge, assertion: body.credential, password: knowledge?.password)
        guard let assertion = try await service.issueAssertion(challenge) else { throw StepUpError.closed("completed") }
        return AssertionResponse(status: "completed", assertion: assertion)
    }

    /// Polled by the integrator: once the user has proven a factor (push, or the browser page), the first poll gets the assertion.
    @Sendable func status(req: Request) async throws -> AssertionResponse {
        guard let key = req.apiKey else { throw Abort(.unauthorized) }
        let service = StepUpService(request: req)
        let challenge = try await service.load(try req.parameters.require("id", as: UUID.self), for: key)
        try await service.collectPush(challenge)
        if challenge.visibleStatus(now: req.now) == "verified", let assertion = try await service.issueAssertion(challenge) {
            return AssertionResponse(status: "completed", assertion: assertion)
        }
        return AssertionResponse(status: challenge.visibleStatus(now: req.now))
    }

    /// The public keys of every signing algorithm, current and recently retired (RFC 7517 §5).
    @Sendable func jwks(req: Request) async throws -> Response {
        let response = try await req.tokenSigner.jwks().encodeResponse(for: req)
        response.headers.replaceOrAdd(name: .cacheControl, value: "public, max-age=300")
        return response
    }
}

