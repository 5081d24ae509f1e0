import Fluent
import TwofoldAPI
import Vapor

/// `/api/v1/me…`: the signed-in user's own account and factors.
struct MeAPIController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let enrolling = routes.grouped(SessionGuard(requirement: .enrollmentOrSignedIn, style: .api))
        enrolling.get(APIPath.me, use: show)
        enrolling.post(APIPath.meFactorTOTP, use: startTOTP)
        enrolling.post(APIPath.meFactorSMS, use: startSMS)
        enrolling.post(APIPath.meFactorPush, use: startPush)
        enrolling.post(APIPath.meFactorActivate(.placeholder), use: activate)
        let signedIn = routes.grouped(SessionGuard(requirement: .signedIn, style: .api))
        signedIn.get(APIPath.meFactors, use: factors)
        signedIn.patch(APIPath.meFactor(.placeholder), use: patchFactor)
        signedIn.delete(APIPath.meFactor(.placeholder), use: deleteFactor)
        signedIn.post(APIPath.meRecoveryCodes, use: regenerateCodes)
        signedIn.delete(APIPath.meTwoFactor, use: disable)
        signedIn.get(APIPath.meBrowsers, use: browsers)
        signedIn.delete(APIPath.meBrowser(.placeholder), use: revokeBrowser)
    }

    @Sendable func show(req: Request) async throws -> API.Me {
        let session = try req.requireSession()
        let user = session.user
        return API.Me(
            id: session.userID.uuidString, username: user.username, firstName: user.firstName, lastName: user.lastName, email: user.email,
            cellPhone: user.cellPhone, role: try .documented(user.role.rawValue), permissions: user.permissions,
            practice: .init(id: session.practiceID.uuidString, name: session.practice.name),
            stage: try .documented(session.record.stage.rawValue),
            twoFactorEnabled: session.hasActiveFactor, twoFactorRequired: session.twoFactorRequired,
            recoveryCodesLeft: try await RecoveryCodeService(context: req.serviceContext).remaining(userID: session.userID))
    }

    @Sendable func factors(req: Request) async throws -> [API.Factor] {
        let session = try req.requireSession()
        let rules = req.epcsRules
        return try await SignInService(context: req.serviceContext).activeFactors(of: session.user).map {
            try API.Factor($0, epcsEligible: rules.isEligible($0, practice: session.practice))
        }
    }

    @Sendable func startTOTP(req: Request) async throws -> API.TOTPEnrollment {
        let session = try req.requireSession()
        let body = try req.apiBody(API.NewFactorRequest.self)
        try await Reauthentication(context: req.serviceContext).confirm(password: body.password, session: session)
        let enrollment = try await FactorService(context: req.serviceContext).beginTOTP(session: session, nickname: body.nickname)
        return API.TOTPEnrollment(
            factorId: try enrollment.factor.requireID().uuidString, otpauthURI: enrollment.uri.uri, secret: enrollment.secret.base32,
            qrSVG: enrollment.qrSVG)
    }

    @Sendable func startSMS(req: Request) async throws -> API.SMSEnrollment {
        let session = try req.requireSession()
        let body = try req.apiBody(API.NewFactorRequest.self)
        try await Reauthentication(context: req.serviceContext).confirm(password: body.password, session: session)
        let factor = try await FactorService(context: req.serviceContext).beginSMS(session: session, nickname: body.nickname)
        return API.SMSEnrollment(factorId: try factor.requireID().uuidString, sentTo: SMSCodeService.maskedPhone(factor.phone ?? ""))
    }

    @Sendable func startPush(req: Request) async throws -> API.PushEnrollment {
        let session = try req.requireSession()
        let body = try req.apiBody(API.NewFactorRequest.self)
        try await Reauthentication(context: req.serviceContext).confirm(password: body.password, session: session)
        let enrollment = try await PushService(context: req.serviceContext).beginEnrollment(
            session: session, nickname: body.nickname, publicBaseURL: req.publicBaseURL)
        return API.PushEnrollment(
            factorId: try enrollment.factor.requireID().uuidString, enrollmentURI: enrollment.uri, qrSVG: enrollment.qrSVG,
            expiresAt: enrollment.factor.enrollmentExpiresAt ?? req.now)
    }

    /// Activates a pending factor: with a code for apps and text messages; for a push device, once the device has enrolled.
    @Sendable func activate(req: Request) async throws -> API.Activation {
        let session = try req.requireSession()
        let id = try req.parameters.id("id", notFound: FactorError.notFound)
        let factor = try await FactorService(context: req.serviceContext).ownFactor(id, session: session)
        if factor.kind == .push {
            guard let activation = try await PushService(context: req.serviceContext).finishEnrollment(factor, session: session) else {
                throw Abort(.conflict, reason: "The device has not finished enrolling yet: scan the code with it, then try again.")
            }
            return try API.Activation(activation)
        }
        let body = try req.apiBody(API.CodeRequest.self)
        let activation = try await FactorService(context: req.serviceContext).activate(id: id, code: body.code, session: session)
        return try API.Activation(activation)
    }

    @Sendable func patchFactor(req: Request) async throws -> API.Factor {
        let session = try req.requireSession()
        let body = try req.apiBody(API.UpdateFactorRequest.self)
        let id = try req.parameters.id("id", notFound: FactorError.notFound)
        guard body.nickname != nil || body.primary != nil else { throw Abort(.badRequest, reason: "Send nickname and/or primary: true.") }
        guard body.primary != false else {
            throw Abort(.badRequest, reason: "To change the primary method, make another method primary (primary: true on it).")
        }
        try await Reauthentication(context: req.serviceContext).confirm(password: body.password, session: session)
        let service = FactorService(context: req.serviceContext)
        var factor = try await service.ownFactor(id, session: session)
        if let nickname = body.nickname { factor = try await service.rename(id: id, nickname: nickname, session: session) }
        if body.primary == true { factor = try await service.makePrimary(id: id, session: session) }
        return try API.Factor(factor)
    }

    @Sendable func deleteFactor(req: Request) async throws -> HTTPStatus {
        let session = try req.requireSession()
        let body = try req.optionalAPIBody(API.DeleteFactorRequest.self)
        try await Reauthentication(context: req.serviceContext).confirm(password: body?.password, session: session)
        try await FactorService(context: req.serviceContext).remove(
            id: try req.parameters.id("id", notFound: FactorError.notFound), code: body?.code, session: session)
        return .noContent
    }

    @Sendable func regenerateCodes(req: Request) async throws -> API.RecoveryCodes {
        let session = try req.requireSession()
        let body = try req.optionalAPIBody(API.PasswordConfirmation.self)
        try await Reauthentication(context: req.serviceContext).confirm(password: body?.password, session: session)
        let codes = try await RecoveryCodeService(context: req.serviceContext).regenerate(session: session)
        return API.RecoveryCodes(recoveryCodes: codes.map(\.value))
    }

    @Sendable func disable(req: Request) async throws -> HTTPStatus {
        let session = try req.requireSession()
        let body = try req.apiBody(API.DisableTwoFactorRequest.self)
        try await Reauthentication(context: req.serviceContext).confirm(password: body.password, session: session)
        try await FactorService(context: req.serviceContext).disableTwoFactor(code: body.code, session: session)
        return .noContent
    }

    @Sendable func browsers(req: Request) async throws -> [API.Browser] {
        let session = try req.requireSession()
        return try await RememberedBrowser.query(on: req.db).filter(\.$user.$id == session.userID).filter(\.$expiresAt > req.now)
            .sort(\.$createdAt, .descending).all()
            .map { try API.Browser($0) }
    }

    @Sendable func revokeBrowser(req: Request) async throws -> HTTPStatus {
        let session = try req.requireSession()
        let body = try req.optionalAPIBody(API.PasswordConfirmation.self)
        try await Reauthentication(context: req.serviceContext).confirm(password: body?.password, session: session)
        try await ProfileService(context: req.serviceContext).revokeRememberedBrowser(
            id: try req.parameters.id("id", notFound: ProfileService.browserNotFound), session: session)
        return .noContent
    }
}
