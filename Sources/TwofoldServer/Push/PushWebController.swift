import Fluent
import Vapor

/// The browser side of push: approving a sign-in from the device, and enrolling a device.
struct PushWebController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let pending = routes.grouped(SessionGuard(requirement: .secondFactor, style: .web))
        pending.post(WebPath.twoFactorPushStart, use: startSignIn)
        pending.get(WebPath.twoFactorPush(.placeholder), use: signInStatus)
        pending.post(WebPath.twoFactorPush(.placeholder), use: finishSignIn)
        let setup = routes.grouped(SessionGuard(requirement: .enrollmentOrSignedIn, style: .web))
        setup.post(WebPath.setupPushStart, use: startEnrollment)
        setup.get(WebPath.setupPushStatus(.placeholder), use: enrollmentStatus)
        setup.post(WebPath.setupPush(.placeholder), use: finishEnrollment)
    }

    // MARK: sign-in

    struct StartForm: Content {
        var factorId: UUID?
        var remember: String?
    }

    struct WaitPage: Encodable {
        var layout: Layout
        var number: Int
        var device: String
        var statusURL: String
        var finishAction: String
        var remember: Bool
        var rememberDays: Int
        var backLink: String
    }

    @Sendable func startSignIn(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(StartForm.self)
        do {
            let challenge = try await PushService(context: req.serviceContext).startChallenge(
                user: session.user, practice: session.practice, factorID: form.factorId, purpose: .signIn, sessionID: session.record.id)
            return try await renderWait(req, challenge: challenge, remember: form.remember != nil, error: nil)
        } catch let error as any AbortError {
            return try await LoginWebController.renderTwoFactor(
                req, method: form.factorId?.uuidString, error: error.reason, status: error.status, smsSentTo: nil)
        }
    }

    func renderWait(_ req: Request, challenge: PushChallenge, remember: Bool, error: String?) async throws -> Response {
        let session = try req.requireSession()
        let device = try await challenge.$factor.get(on: req.db)
        let path = WebPath.twoFactorPush(try challenge.requireID()).string
        let page = WaitPage(
            layout: req.layout("Approve on your device", error: error), number: challenge.number, device: device.nickname,
            statusURL: path, finishAction: path, remember: remember, rememberDays: session.practice.rememberBrowserDays,
            backLink: WebPath.twoFactor.string(query: ["method": try device.requireID().uuidString]))
        return try await req.render("push-wait", page)
    }

    @Sendable func signInStatus(req: Request) async throws -> PollStatus {
        let session = try req.requireSession()
        let challenge = try await PushService(context: req.serviceContext).signInChallenge(
            try req.parameters.require("challengeID", as: UUID.self), session: session)
        return PollStatus(status: challenge.visibleStatus(now: req.now))
    }

    @Sendable func finishSignIn(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(StartForm.self)
        let service = PushService(context: req.serviceContext)
        let challenge = try await service.signInChallenge(try req.parameters.require("challengeID", as: UUID.self), session: session)
        switch challenge.visibleStatus(now: req.now) {
        case "pending":
            return try await renderWait(
                req, challenge: challenge, remember: form.remember != nil,
                error: "Not approved yet. Open the request on your device and enter the number shown here.")
        case "approved":
            guard try await service.claimSignIn(challenge, session: session) else { throw PushError.challengeClosed }
            return try await SignInService(context: req.serviceContext).finish(
                session: session, method: "push", factor: try await challenge.$factor.get(on: req.db),
                remember: form.remember != nil
            ).webResponse(req)
        case "denied":
            return try await LoginWebController.renderTwoFactor(
                req, method: challenge.$factor.id.uuidString,
                error: "The request was denied on your device.", status: .forbidden, smsSentTo: nil)
        default:
            return try await LoginWebController.renderTwoFactor(
                req, method: challenge.$factor.id.uuidString,
                error: "The request expired. Send a new one.", status: .gone, smsSentTo: nil)
        }
    }

    // MARK: enrollment

    struct EnrollForm: Content {
        var password: String?
        var nickname: String?
    }

    struct EnrollPage: Encodable {
        var layout: Layout
        var qrSVG: String?
        var uri: String?
        var nickname: String
        var statusURL: String
        var finishAction: String
        var restartAction = WebPath.setup.string
    }

    @Sendable func startEnrollment(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(EnrollForm.self)
        do {
            try await Reauthentication(context: req.serviceContext).confirm(password: form.password, session: session)
            let enrollment = try await PushService(context: req.serviceContext).beginEnrollment(
                session: session, nickname: form.nickname, publicBaseURL: req.publicBaseURL)
            return try await renderEnrollment(req, factor: enrollment.factor, qrSVG: enrollment.qrSVG, uri: enrollment.uri, error: nil)
        } catch let error as any AbortError {
            return try await SetupWebController.renderChoose(req, error: error.reason, status: error.status)
        }
    }

    func renderEnrollment(_ req: Request, factor: Factor, qrSVG: String?, uri: String?, error: String?) async throws -> Response {
        let factorID = try factor.requireID()
        let page = EnrollPage(
            layout: req.layout("Set up a push device", error: error), qrSVG: qrSVG, uri: uri, nickname: factor.nickname,
            statusURL: WebPath.setupPushStatus(factorID).string, finishAction: WebPath.setupPush(factorID).string)
        return try await req.render("setup-push", page)
    }

    @Sendable func enrollmentStatus(req: Request) async throws -> PollStatus {
        let session = try req.requireSession()
        let factor = try await FactorService(context: req.serviceContext).ownFactor(
            try req.parameters.require("factorID", as: UUID.self), session: session)
        guard factor.kind == .push else { throw FactorError.notFound }
        return PollStatus(status: factor.status == .active ? "active" : (factor.publicKey == nil ? "waiting" : "enrolled"))
    }

    @Sendable func finishEnrollment(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let id = try req.parameters.require("factorID", as: UUID.self)
        let factor = try await FactorService(context: req.serviceContext).ownFactor(id, session: session)
        guard let activation = try await PushService(context: req.serviceContext).finishEnrollment(factor, session: session) else {
            return try await renderEnrollment(
                req, factor: factor, qrSVG: nil, uri: nil,
                error: "The device has not finished enrolling yet. Scan the code with it (or start again), then continue.")
        }
        return try await activation.page(req)
    }
}
