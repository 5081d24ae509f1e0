import Fluent
import Vapor

/// `/api/v1/me…`: the signed-in user's own account and factors.
struct MeAPIController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let me = routes.grouped("me")
        let enrolling = me.grouped(SessionGuard(requirement: .enrollmentOrSignedIn, style: .api))
        enrolling.get(use: show)
        enrolling.post("factors", "totp", use: startTOTP)
        enrolling.post("factors", "sms", use: startSMS)
        enrolling.post("factors", "push", use: startPush)
        enrolling.post("factors", ":id", "activate", use: activate)
        let signedIn = me.grouped(SessionGuard(requirement: .signedIn, style: .api))
        signedIn.get("factors", use: factors)
        signedIn.patch("factors", ":id", use: patchFactor)
        signedIn.delete("factors", ":id", use: deleteFactor)
        signedIn.post("recovery-codes", use: regenerateCodes)
        signedIn.delete("two-factor", use: disable)
        signedIn.get("browsers", use: browsers)
        signedIn.delete("browsers", ":id", use: revokeBrowser)
    }

    @Sendable func show(req: Request) async throws -> MeResponse {
        let session = try req.requireSession()
        let user = session.user
        return MeResponse(
            id: session.userID, username: user.username, firstName: user.firstName, lastName: user.lastName, email: user.email,
            cellPhone: user.cellPhone, role: user.role.rawValue, permissions: user.permissions,
            practice: .init(id: session.practiceID, name: session.practice.name), stage: session.record.stage.rawValue,
            twoFactorEnabled: session.hasActiveFactor, twoFactorRequired: session.twoFactorRequired,
            recoveryCodesLeft: try await RecoveryCodeService(request: req).remaining(userID: session.userID))
    }

    @Sendable func factors(req: Request) async throws -> [FactorDTO] {
        let session = try req.requireSession()
        let rules = req.epcsRules
        return try await SignInService(request: req).activeFactors(of: session.user).map {
            FactorDTO($0, epcsEligible: rules.isEligible($0, practice: session.practice))
        }
    }

    @Sendable func startTOTP(req: Request) async throws -> TOTPEnrollmentResponse {
        let session = try req.requireSession()
        let body = try req.content.decode(NewFactorRequest.self)
        try await Reauthentication(request: req).confirm(password: body.password, session: session)
        let enrollment = try await FactorService(request: req).beginTOTP(session: session, nickname: body.nickname)
        return TOTPEnrollmentResponse(factorId: enrollment.factor.id!, otpauthURI: enrollment.uri.uri, secret: enrollment.secret.base32, qrSVG: enrollment.qrSVG)
    }

    @Sendable func startSMS(req: Request) async throws -> SMSEnrollmentResponse {
        let session = try req.requireSession()
        let body = try req.content.decode(NewFactorRequest.self)
        try await Reauthentication(request: req).confirm(password: body.password, session: session)
        let factor = try await FactorService(request: req).beginSMS(session: session, nickname: body.nickname)
        return SMSEnrollmentResponse(factorId: factor.id!, sentTo: SMSCodeService.maskedPhone(factor.phone ?? ""))
    }

    struct PushEnrollmentResponse: Content {
        var factorId: UUID
        var enrollmentURI: String
        var qrSVG: String
        var expiresAt: Date
    }

    @Sendable func startPush(req: Request) async throws -> PushEnrollmentResponse {
        let session = try req.requireSession()
        let body = try req.content.decode(NewFactorRequest.self)
        try await Reauthentication(request: req).confirm(password: body.password, session: session)
        let enrollment = try await PushService(request: req).beginEnrollment(session: session, nickname: body.nickname)
        return PushEnrollmentResponse(factorId: enrollment.factor.id!, enrollmentURI: enrollment.uri, qrSVG: enrollment.qrSVG,
                                      expiresAt: enrollment.factor.enrollmentExpiresAt ?? req.now)
    }

    /// Activates a pending factor: with a code for apps and text messages; for a push device, once the device has enrolled.
    @Sendable func activate(req: Request) async throws -> ActivationResponse {
        let session = try req.requireSession()
        let id = try req.parameters.require("id", as: UUID.self)
        let factor = try await FactorService(request: req).ownFactor(id, session: session)
        if factor.kind == .push {
            guard let activation = try await PushService(request: req).finishEnrollment(factor, session: session) else {
                throw Abort(.conflict, reason: "The device has not finished enrolling yet: scan the code with it, then try again.")
            }
            return ActivationResponse(activation)
        }
        let body = try req.content.decode(CodeRequest.self)
        let activation = try await FactorService(request: req).activate(id: id, code: body.code, session: session)
        return ActivationResponse(activation)
    }

    @Sendable func patchFactor(req: Request) async throws -> FactorDTO {
        let session = try req.requireSession()
        let body = try req.content.decode(FactorPatchRequest.self)
        let id = try req.parameters.require("id", as: UUID.self)
        guard body.nickname != nil || body.primary != nil else { throw Abort(.badRequest, reason: "Send nickname and/or primary: true.") }
        guard body.primary != false else { throw Abort(.badRequest, reason: "To change the primary method, make another method primary (primary: true on it).") }
        try await Reauthentication(request: req).confirm(password: body.password, session: session)
        let service = FactorService(request: req)
        var factor = try await service.ownFactor(id, session: session)
        if let nickname = body.nickname { factor = try await service.rename(id: id, nickname: nickname, session: session) }
        if body.primary == true { factor = try await service.makePrimary(id: id, session: session) }
        return FactorDTO(factor)
    }

    @Sendable func deleteFactor(req: Request) async throws -> HTTPStatus {
        let session = try req.requireSession()
        let body = try? req.content.decode(RemoveFactorRequest.self)
        try await Reauthentication(request: req).confirm(password: body?.password, session: session)
        try await FactorService(request: req).remove(id: try req.parameters.require("id", as: UUID.self), code: body?.code, session: session)
        return .noContent
    }

    @Sendable func regenerateCodes(req: Request) async throws -> RecoveryCodesResponse {
        let session = try req.requireSession()
        let body = try req.content.decode(PasswordRequest.self)
        try await Reauthentication(request: req).confirm(password: body.password, session: session)
        let codes = try await RecoveryCodeService(request: req).regenerate(session: session)
        return RecoveryCodesResponse(recoveryCodes: codes.map(\.value))
    }

    @Sendable func disable(req: Request) async throws -> HTTPStatus {
        let session = try req.requireSession()
        let body = try req.content.decode(DisableRequest.self)
        try await Reauthentication(request: req).confirm(password: body.password, session: session)
        try await FactorService(request: req).disableTwoFactor(code: body.code, session: session)
        return .noContent
    }

    @Sendable func browsers(req: Request) async throws -> [BrowserDTO] {
        let session = try req.requireSession()
        return try await RememberedBrowser.query(on: req.db).filter(\.$user.$id == session.userID).filter(\.$expiresAt > req.now)
            .sort(\.$createdAt, .descending).all()
            .map { BrowserDTO(id: $0.id!, browser: $0.userAgent, createdAt: $0.createdAt, lastUsedAt: $0.lastUsedAt, lastIP: $0.lastIP, expiresAt: $0.expiresAt) }
    }

    @Sendable func revokeBrowser(req: Request) async throws -> HTTPStatus {
        let session = try req.requireSession()
        let body = try? req.content.decode(PasswordRequest.self)
        try await Reauthentication(request: req).confirm(password: body?.password, session: session)
        try await ProfileService(request: req).revokeRememberedBrowser(id: try req.parameters.require("id", as: UUID.self), session: session)
        return .noContent
    }
}
