import Fluent
import TwofoldCore
import Vapor

/// `/step-up/{id}`: where a signed-in provider completes a step-up in the browser, for integrators that redirect.
struct StepUpWebController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let page = routes.grouped(SessionGuard(requirement: .signedIn, style: .web))
        page.get(WebPath.stepUp(.placeholder), use: show)
        page.post(WebPath.stepUp(.placeholder), use: submitCode)
        page.post(WebPath.stepUpPush(.placeholder), use: startPush)
        page.get(WebPath.stepUpStatus(.placeholder), use: status)
        page.post(WebPath.stepUpPushFinish(.placeholder), use: finishPush)
        page.post(WebPath.stepUpPasskeyOptions(.placeholder), use: passkeyOptions)
        page.post(WebPath.stepUpPasskey(.placeholder), use: submitPasskey)
    }

    struct Page: Encodable {
        var layout: Layout
        var summary: String
        var actionType: String
        var state: String
        var hasTOTP: Bool
        var hasPush: Bool
        var hasPasskey: Bool
        var passkeyAction: String
        var passkeyOptions: String
        var action: String
        var pushAction: String
        var number: Int?
        var statusURL: String
        var finishAction: String
        /// An EPCS signing: the prescriptions, the practitioner, the DEA number and the statement of §1311.140(a)(3).
        var isEPCS: Bool
        var prescriptions: [String]
        var practitioner: String
        var deaNumber: String
        var attestationStatement: String
        var attestationHash: String
    }

    struct CodeForm: Content {
        var code: String?
        var password: String?
    }

    private struct ServiceKey: StorageKey { typealias Value = StepUpService }

    /// Step-up on this request: its context, and the issuer its assertions would name. One service per request, so
    /// what it loads once (the EPCS grant) is read once however many steps of the request need it.
    private static func service(_ req: Request) -> StepUpService {
        if let service = req.storage[ServiceKey.self] { return service }
        let service = StepUpService(context: req.serviceContext, publicIssuer: req.stepUpIssuer)
        req.storage[ServiceKey.self] = service
        return service
    }

    /// The step-up, if it belongs to the signed-in user (anyone else gets a 404).
    private func own(_ req: Request) async throws -> StepUpChallenge {
        let session = try req.requireSession()
        let challenge = try await Self.service(req).load(
            try req.parameters.require("id", as: UUID.self), practiceID: session.practiceID)
        guard challenge.$user.id == session.userID else { throw StepUpError.notFound }
        return challenge
    }

    func render(_ req: Request, _ challenge: StepUpChallenge, error: String? = nil, number: Int? = nil, status: HTTPResponseStatus = .ok)
        async throws -> Response
    {
        let session = try req.requireSession()
        let service = Self.service(req)
        let methods = try await service.methods(for: session.user, practice: session.practice, epcs: challenge.isEPCS)
        let id = try challenge.requireID()
        let deaNumber = try await service.epcsGrant(of: challenge)?.deaNumber ?? ""
        let title = challenge.isEPCS ? "Sign controlled-substance prescription" : "Confirm a sensitive action"
        let page = Page(
            layout: req.layout(title, error: error), summary: challenge.summary, actionType: challenge.actionType,
            state: challenge.visibleStatus(now: req.now), hasTOTP: methods.contains("totp"), hasPush: methods.contains("push"),
            hasPasskey: methods.contains("webauthn"), passkeyAction: WebPath.stepUpPasskey(id).string,
            passkeyOptions: WebPath.stepUpPasskeyOptions(id).string, action: WebPath.stepUp(id).string,
            pushAction: WebPath.stepUpPush(id).string, number: number, statusURL: WebPath.stepUpStatus(id).string,
            finishAction: WebPath.stepUpPushFinish(id).string,
            isEPCS: challenge.isEPCS, prescriptions: EPCS.summaryLines(challenge.summary), practitioner: session.user.fullName,
            deaNumber: deaNumber, attestationStatement: EPCS.attestationStatement, attestationHash: challenge.attestationHash ?? "")
        return try await req.render("step-up", page, status: status)
    }

    @Sendable func show(req: Request) async throws -> Response {
        try await render(req, try await own(req))
    }

    @Sendable func submitCode(req: Request) async throws -> Response {
        let challenge = try await own(req)
        let form = try req.content.decode(CodeForm.self)
        do {
            try await Self.service(req).verifyCode(challenge, code: form.code ?? "", password: form.password)
            return try await render(req, challenge)
        } catch let error as any AbortError {
            return try await render(req, challenge, error: error.reason, status: error.status)
        }
    }

    @Sendable func passkeyOptions(req: Request) async throws -> RequestOptionsJSON {
        try await Self.service(req).passkeyOptions(try await own(req))
    }

    @Sendable func submitPasskey(req: Request) async throws -> Response {
        let challenge = try await own(req)
        let form = try req.content.decode(PasskeyWebController.CredentialForm.self)
        do {
            let assertion = try PasskeyWebController.credential(AuthenticationResponseJSON.self, in: form)
            let password = try? req.content.decode(CodeForm.self).password
            try await Self.service(req).verifyPasskey(challenge, assertion: assertion, password: password)
            return try await render(req, challenge)
        } catch let error as any AbortError {
            return try await render(req, challenge, error: error.reason, status: error.status)
        }
    }

    @Sendable func startPush(req: Request) async throws -> Response {
        let challenge = try await own(req)
        do {
            let password = try? req.content.decode(CodeForm.self).password
            let push = try await Self.service(req).startPush(challenge, factorID: nil, password: password)
            return try await render(req, challenge, number: push.number)
        } catch let error as any AbortError {
            return try await render(req, challenge, error: error.reason, status: error.status)
        }
    }

    @Sendable func status(req: Request) async throws -> PollStatus {
        let challenge = try await own(req)
        let answered =
            try await PushChallenge.query(on: req.db).filter(\.$stepUpID == challenge.requireID()).filter(\.$status != .pending).count() > 0
        return PollStatus(status: answered ? "answered" : challenge.visibleStatus(now: req.now))
    }

    @Sendable func finishPush(req: Request) async throws -> Response {
        let challenge = try await own(req)
        try await Self.service(req).collectPush(challenge)
        let error =
            challenge.visibleStatus(now: req.now) == "pending"
            ? "Not approved yet. Approve the request on your device, then continue." : nil
        return try await render(req, challenge, error: error)
    }
}
