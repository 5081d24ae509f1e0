import Fluent
import TwofoldAPI
import TwofoldCore
import Vapor

/// `/api/v1/practice/…/epcs…` and `/api/v1/me/…` routes for EPCS permissions, approvers, settings and lost devices.
/// Every rule and every audit record lives in ``EPCSService`` and ``LostDeviceReport``; this controller only reads
/// bounded JSON bodies and answers in camelCase.
struct EPCSAPIController: RouteCollection {
    static let bodyLimit: ByteCount = "16kb"

    func boot(routes: any RoutesBuilder) throws {
        let practice = routes.grouped(SessionGuard(requirement: .signedIn, style: .api)).grouped(AdminGuard())
        practice.on(.POST, APIPath.practiceUserEPCSGrants(.placeholder), body: .collect(maxSize: Self.bodyLimit), use: enter)
        practice.on(.DELETE, APIPath.practiceUserEPCS(.placeholder), body: .collect(maxSize: Self.bodyLimit), use: revoke)
        practice.on(.PUT, APIPath.practiceUserEPCSApprover(.placeholder), body: .collect(maxSize: Self.bodyLimit), use: designate)
        practice.on(
            .POST, APIPath.practiceUserReportLost(user: .placeholder, factor: .placeholder), body: .collect(maxSize: Self.bodyLimit),
            use: adminReportLost)
        practice.get(APIPath.epcsGrants, use: grants)
        practice.on(.POST, APIPath.epcsGrantApprove(.placeholder), body: .collect(maxSize: Self.bodyLimit), use: approve)
        practice.on(.POST, APIPath.epcsGrantRefuse(.placeholder), body: .collect(maxSize: Self.bodyLimit), use: refuse)
        practice.on(
            .POST, APIPath.epcsGrantConfirmRevocation(.placeholder), body: .collect(maxSize: Self.bodyLimit), use: confirmRevocation)
        practice.get(APIPath.epcsApprovers, use: approvers)
        practice.get(APIPath.epcsSettings, use: settings)
        practice.on(.PATCH, APIPath.epcsSettings, body: .collect(maxSize: Self.bodyLimit), use: updateSettings)
        practice.get(APIPath.epcsAlerts, use: alerts)
        practice.on(.POST, APIPath.epcsAlertAcknowledge(.placeholder), body: .collect(maxSize: Self.bodyLimit), use: acknowledge)

        let me = routes.grouped(SessionGuard(requirement: .signedIn, style: .api))
        me.on(.POST, APIPath.meFactorReportLost(.placeholder), body: .collect(maxSize: Self.bodyLimit), use: reportLost)
    }

    // MARK: bodies

    /// Runs a second-approver step with the proof in the body, or starts a push request for it (202).
    private func secondApproverStep(_ req: Request, action: String, run: (EPCSService, UUID, ApproverProof) async throws -> GrantStatus)
        async throws -> Response
    {
        let id = try Self.uuid(req, "grantId", notFound: .grantNotFound)
        // The second approver's proof: `{code}`, or `{push: true}` to send the step to their push device and then
        // `{pushChallengeId}` once it is approved there.
        let body = try Self.decode(API.SecondApproverProof.self, from: req, expected: "{code} or {push: true} then {pushChallengeId}")
        let service = try Self.service(req)
        if body.push == true {
            // A push request sent for the step: show the number; the device asks for it.
            let push = try await service.startPush(grantID: id, action: action)
            return try await API.EPCSPushPending(
                grantId: id.uuidString, status: .pendingPush, pushChallengeId: try push.requireID().uuidString,
                number: push.number, expiresAt: push.expiresAt
            )
            .encodeResponse(status: .accepted, for: req)
        }
        let proof: ApproverProof =
            try APIField.uuid(body.pushChallengeId, "pushChallengeId").map { .push(challengeID: $0) } ?? .code(body.code)
        return try await run(service, id, proof).encodeResponse(for: req)
    }

    // MARK: answers

    typealias GrantStatus = API.EPCSGrantStatus

    static func grantStatus(_ grant: EPCSGrant, revocationConfirmed: Bool? = nil) throws -> GrantStatus {
        GrantStatus(
            grantId: try grant.requireID().uuidString, status: try .documented(grant.status.rawValue),
            revocationConfirmed: revocationConfirmed)
    }

    static func approver(_ user: User) throws -> API.EPCSApprover {
        API.EPCSApprover(
            userId: try user.requireID().uuidString, username: user.username, name: user.fullName, approver: user.epcsApprover,
            deaRegistrant: user.deaRegistrant)
    }

    // MARK: helpers

    static func service(_ req: Request) throws -> EPCSService {
        try EPCSService(context: req.serviceContext, admin: try req.requireSession())
    }

    /// Decodes a JSON body; a missing, malformed or mistyped body is a 400 that says what was expected.
    static func decode<T: Decodable>(_ type: T.Type, from req: Request, expected: String) throws -> T {
        do {
            return try req.apiBody(type)
        } catch let error as DecodingError {
            throw EPCSError.invalid("The request body must be JSON \(expected). \(error.clientReason)")
        } catch {
            throw EPCSError.invalid("The request body must be JSON \(expected).")
        }
    }

    /// An optional JSON body: no body at all is fine, a malformed one is not.
    static func decodeOptional<T: Decodable>(_ type: T.Type, from req: Request, expected: String) throws -> T? {
        guard let body = req.body.data, body.readableBytes > 0 else { return nil }
        return try decode(type, from: req, expected: expected)
    }

    static func uuid(_ req: Request, _ name: String, notFound: EPCSError) throws -> UUID {
        guard let id = req.parameters.get(name, as: UUID.self) else { throw notFound }
        return id
    }

    // MARK: grants

    @Sendable func enter(req: Request) async throws -> Response {
        let userID = try AdminWebController.userID(req)
        let body = try Self.decode(
            API.EnterEPCSGrantRequest.self, from: req,
            expected: "{deaNumber, deaExpiresOn, states: [..], proofing: {provider, date, level, reference}, adminPassword}")
        let proofing = EPCSProofing(
            provider: body.proofing.provider, date: body.proofing.date, level: body.proofing.level, reference: body.proofing.reference)
        let input = EPCSGrantInput(deaNumber: body.deaNumber, deaExpiresOn: body.deaExpiresOn, states: body.states, proofing: proofing)
        let grant = try await Self.service(req).enter(userID: userID, input: input, adminPassword: body.adminPassword)
        return try await Self.grantStatus(grant).encodeResponse(status: .created, for: req)
    }

    @Sendable func approve(req: Request) async throws -> Response {
        try await secondApproverStep(req, action: "approve_grant") { service, id, proof in
            try Self.grantStatus(try await service.approve(grantID: id, proof: proof))
        }
    }

    @Sendable func refuse(req: Request) async throws -> GrantStatus {
        let id = try Self.uuid(req, "grantId", notFound: .grantNotFound)
        let body = try Self.decode(API.EPCSGrantDecisionRequest.self, from: req, expected: "{reason, adminPassword}")
        return try Self.grantStatus(try await Self.service(req).refuse(grantID: id, reason: body.reason, adminPassword: body.adminPassword))
    }

    @Sendable func revoke(req: Request) async throws -> GrantStatus {
        let userID = try AdminWebController.userID(req)
        let body = try Self.decodeOptional(API.EPCSGrantDecisionRequest.self, from: req, expected: "{reason, adminPassword}")
        return try Self.grantStatus(
            try await Self.service(req).revoke(userID: userID, reason: body?.reason, adminPassword: body?.adminPassword))
    }

    @Sendable func confirmRevocation(req: Request) async throws -> Response {
        try await secondApproverStep(req, action: "confirm_revocation") { service, id, proof in
            let grant = try await service.confirmRevocation(grantID: id, proof: proof)
            return try Self.grantStatus(grant, revocationConfirmed: grant.revocationConfirmedAt != nil)
        }
    }

    @Sendable func grants(req: Request) async throws -> API.EPCSGrantList {
        API.EPCSGrantList(grants: try await Self.service(req).grants().map { try API.EPCSGrant($0, now: req.now) })
    }

    // MARK: approvers

    @Sendable func designate(req: Request) async throws -> API.EPCSApprover {
        let userID = try AdminWebController.userID(req)
        let body = try Self.decode(
            API.DesignateEPCSApproverRequest.self, from: req, expected: "{approver: true|false, deaRegistrant: true|false, adminPassword}")
        let user = try await Self.service(req).designate(
            userID: userID, approver: body.approver, registrant: body.deaRegistrant, adminPassword: body.adminPassword)
        return try Self.approver(user)
    }

    @Sendable func approvers(req: Request) async throws -> API.EPCSApproverList {
        API.EPCSApproverList(approvers: try await Self.service(req).approvers().map(Self.approver))
    }

    // MARK: settings

    @Sendable func settings(req: Request) async throws -> API.EPCSSettings {
        try API.EPCSSettings(EPCSService.settings(of: try req.requireSession().practice))
    }

    /// Changes only the fields the body names; the others keep the practice's current values.
    @Sendable func updateSettings(req: Request) async throws -> API.EPCSSettings {
        let body = try Self.decode(
            API.UpdateEPCSSettingsRequest.self, from: req,
            expected: "{eligibleTokens, securityKeyAAGUIDs, workingHoursStart, workingHoursEnd, adminPassword}")
        let current = EPCSService.settings(of: try req.requireSession().practice)
        let merged = EPCSService.Settings(
            eligibleTokens: body.eligibleTokens?.map(\.rawValue) ?? current.eligibleTokens,
            securityKeyAAGUIDs: body.securityKeyAAGUIDs ?? current.securityKeyAAGUIDs,
            workingHoursStart: body.workingHoursStart ?? current.workingHoursStart,
            workingHoursEnd: body.workingHoursEnd ?? current.workingHoursEnd)
        return try API.EPCSSettings(try await Self.service(req).updateSettings(merged, adminPassword: body.adminPassword))
    }

    // MARK: alerts

    @Sendable func alerts(req: Request) async throws -> API.EPCSAlertList {
        API.EPCSAlertList(
            alerts: try await Self.service(req).openAlerts().map {
                API.EPCSAlert(
                    id: try $0.requireID().uuidString, kind: $0.kind, subjectId: $0.subjectID?.uuidString, message: $0.message,
                    createdAt: $0.createdAt)
            })
    }

    @Sendable func acknowledge(req: Request) async throws -> HTTPStatus {
        guard let id = req.parameters.get("id", as: UUID.self) else { throw Abort(.notFound, reason: "There is no such alert.") }
        try await Self.service(req).acknowledge(alertID: id)
        return .noContent
    }

    // MARK: lost devices

    /// The signed-in user reports one of their own devices lost or stolen (§1311.102(b)).
    @Sendable func reportLost(req: Request) async throws -> API.LostDevice {
        let session = try req.requireSession()
        let factorID = try Self.uuid(req, "id", notFound: .factorNotFound)
        let body = try Self.decodeOptional(API.PasswordConfirmation.self, from: req, expected: "{password}")
        try await Reauthentication(context: req.serviceContext).confirm(password: body?.password, session: session)
        let result = try await LostDeviceReport(context: req.serviceContext).report(
            factorID: factorID, of: session.user, practice: session.practice, reportedBy: session.userID)
        return API.LostDevice(factorId: factorID.uuidString, revokedGrant: result.revoked != nil)
    }

    /// An administrator reports a staff member's device lost or stolen, from the user's page.
    @Sendable func adminReportLost(req: Request) async throws -> API.LostDevice {
        let session = try req.requireSession()
        let userID = try AdminWebController.userID(req)
        let factorID = try Self.uuid(req, "factorId", notFound: .factorNotFound)
        let body = try Self.decodeOptional(API.AdminPasswordConfirmation.self, from: req, expected: "{adminPassword}")
        let admin = try AdminService(context: req.serviceContext, admin: session)
        let user = try await admin.directory.user(userID)
        try await admin.confirmAdminPassword(body?.adminPassword)
        let result = try await LostDeviceReport(context: req.serviceContext).report(
            factorID: factorID, of: user, practice: session.practice, reportedBy: session.userID)
        return API.LostDevice(factorId: factorID.uuidString, revokedGrant: result.revoked != nil)
    }
}

extension API.EPCSGrant {
    /// A grant as the JSON API shows it: its status as an administrator sees it (an expired registration or a revocation
    /// awaiting confirmation shows), the full DEA number, and who entered, decided and revoked it. `grant.user` must be loaded.
    init(_ grant: TwofoldServer.EPCSGrant, now: Date) throws {
        self.init(
            id: try grant.requireID().uuidString, userId: grant.$user.id.uuidString, username: grant.$user.value?.username ?? "",
            name: grant.$user.value?.fullName ?? "", status: try .documented(grant.visibleStatus(now: now)),
            deaNumber: grant.deaNumber, deaExpiresOn: grant.deaExpiresOn, states: grant.stateList,
            proofing: API.EPCSProofing(
                provider: grant.proofingProvider, date: grant.proofingDate, level: grant.proofingLevel, reference: grant.proofingReference),
            enteredBy: grant.enteredBy.uuidString, enteredAt: grant.enteredAt, decidedBy: grant.decidedBy?.uuidString,
            decidedAt: grant.decidedAt, revokedBy: grant.revokedBy?.uuidString, revokedAt: grant.revokedAt,
            revocationReason: grant.revocationReason, revocationConfirmedBy: grant.revocationConfirmedBy?.uuidString,
            revocationConfirmedAt: grant.revocationConfirmedAt)
    }
}

extension API.EPCSSettings {
    /// The practice's EPCS settings; every token name is one the document lists.
    init(_ settings: EPCSService.Settings) throws {
        self.init(
            eligibleTokens: try settings.eligibleTokens.map { try .documented($0) }, securityKeyAAGUIDs: settings.securityKeyAAGUIDs,
            workingHoursStart: settings.workingHoursStart, workingHoursEnd: settings.workingHoursEnd)
    }
}

extension API.EnterEPCSGrantRequest: Content {}
extension API.SecondApproverProof: Content {}
extension API.EPCSGrantStatus: Content {}
extension API.EPCSPushPending: Content {}
extension API.EPCSGrantDecisionRequest: Content {}
extension API.DesignateEPCSApproverRequest: Content {}
extension API.EPCSGrant: Content {}
extension API.EPCSGrantList: Content {}
extension API.EPCSApprover: Content {}
extension API.EPCSApproverList: Content {}
extension API.EPCSSettings: Content {}
extension API.UpdateEPCSSettingsRequest: Content {}
extension API.EPCSAlert: Content {}
extension API.EPCSAlertList: Content {}
extension API.LostDevice: Content {}
