import Fluent
import TwofoldCore
import Vapor

/// `/api/v1/practice/…/epcs…` and `/api/v1/me/…` routes for EPCS permissions, approvers, settings and lost devices.
/// Every rule and every audit record lives in ``EPCSService`` and ``LostDeviceReport``; this controller only reads
/// bounded JSON bodies and answers in camelCase.
struct EPCSAPIController: RouteCollection {
    static let bodyLimit: ByteCount = "16kb"

    func boot(routes: any RoutesBuilder) throws {
        let practice = routes.grouped(SessionGuard(requirement: .signedIn, style: .api)).grouped(AdminGuard()).grouped("practice")
        practice.on(.POST, "users", ":id", "epcs", "grants", body: .collect(maxSize: Self.bodyLimit), use: enter)
        practice.on(.DELETE, "users", ":id", "epcs", body: .collect(maxSize: Self.bodyLimit), use: revoke)
        practice.on(.PUT, "users", ":id", "epcs", "approver", body: .collect(maxSize: Self.bodyLimit), use: designate)
        practice.on(.POST, "users", ":id", "factors", ":factorId", "report-lost", body: .collect(maxSize: Self.bodyLimit), use: adminReportLost)
        let epcs = practice.grouped("epcs")
        epcs.get("grants", use: grants)
        epcs.on(.POST, "grants", ":grantId", "approve", body: .collect(maxSize: Self.bodyLimit), use: approve)
        epcs.on(.POST, "grants", ":grantId", "refuse", body: .collect(maxSize: Self.bodyLimit), use: refuse)
        epcs.on(.POST, "grants", ":grantId", "confirm-revocation", body: .collect(maxSize: Self.bodyLimit), use: confirmRevocation)
        epcs.get("approvers", use: approvers)
        epcs.get("settings", use: settings)
        epcs.on(.PATCH, "settings", body: .collect(maxSize: Self.bodyLimit), use: updateSettings)
        epcs.get("alerts", use: alerts)
        epcs.on(.POST, "alerts", ":id", "acknowledge", body: .collect(maxSize: Self.bodyLimit), use: acknowledge)

        let me = routes.grouped(SessionGuard(requirement: .signedIn, style: .api)).grouped("me")
        me.on(.POST, "factors", ":id", "report-lost", body: .collect(maxSize: Self.bodyLimit), use: reportLost)
    }

    // MARK: bodies

    struct GrantRequest: Content {
        var deaNumber: String
        var deaExpiresOn: String
        var states: [String]
        var proofing: EPCSProofing
        var adminPassword: String?
    }

    /// The second approver's proof: `{code}`, or `{push: true}` to send the step to their push device and then
    /// `{pushChallengeId}` once it is approved there.
    struct ProofRequest: Content {
        var code: String?
        var push: Bool?
        var pushChallengeId: UUID?
    }

    /// A push request sent for the step: show the number; the device asks for it.
    struct PushPending: Content {
        var grantId: UUID
        var status = "pending_push"
        var pushChallengeId: UUID
        var number: Int
        var expiresAt: Date
    }

    /// Runs a second-approver step with the proof in the body, or starts a push request for it (202).
    private func secondApproverStep(_ req: Request, action: String, run: (EPCSService, UUID, ApproverProof) async throws -> GrantStatus) async throws -> Response {
        let id = try Self.uuid(req, "grantId", notFound: .grantNotFound)
        let body = try Self.decode(ProofRequest.self, from: req, expected: "{code} or {push: true} then {pushChallengeId}")
        let service = try Self.service(req)
        if body.push == true {
            let push = try await service.startPush(grantID: id, action: action)
            return try await PushPending(grantId: id, pushChallengeId: push.id!, number: push.number, expiresAt: push.expiresAt)
                .encodeResponse(status: .accepted, for: req)
        }
        let proof: ApproverProof = body.pushChallengeId.map { .push(challengeID: $0) } ?? .code(body.code)
        return try await run(service, id, proof).encodeResponse(for: req)
    }

    struct ReasonRequest: Content {
        var reason: String?
        var adminPassword: String?
    }

    struct ApproverRequest: Content {
        var approver: Bool
        var deaRegistrant: Bool
        var adminPassword: String?
    }

    struct SettingsPatch: Content {
        var eligibleTokens: [String]?
        var securityKeyAAGUIDs: [String]?
        var workingHoursStart: Int?
        var workingHoursEnd: Int?
        var adminPassword: String?
    }

    struct PasswordRequest: Content {
        var password: String?
    }

    // MARK: answers

    struct GrantStatus: Content {
        var grantId: UUID
        var status: String
        var revocationConfirmed: Bool?
    }

    struct GrantDTO: Content {
        var id: UUID
        var userId: UUID
        var username: String
        var name: String
        var status: String
        var deaNumber: String
        var deaExpiresOn: String
        var states: [String]
        var proofing: EPCSProofing
        var enteredBy: UUID
        var enteredAt: Date
        var decidedBy: UUID?
        var decidedAt: Date?
        var revokedBy: UUID?
        var revokedAt: Date?
        var revocationReason: String?
        var revocationConfirmedBy: UUID?
        var revocationConfirmedAt: Date?

        init(_ grant: EPCSGrant, now: Date) {
            id = grant.id!
            userId = grant.$user.id
            username = grant.$user.value?.username ?? ""
            name = grant.$user.value?.fullName ?? ""
            status = grant.visibleStatus(now: now)
            deaNumber = grant.deaNumber
            deaExpiresOn = grant.deaExpiresOn
            states = grant.stateList
            proofing = EPCSProofing(provider: grant.proofingProvider, date: grant.proofingDate, level: grant.proofingLevel, reference: grant.proofingReference)
            enteredBy = grant.enteredBy
            enteredAt = grant.enteredAt
            decidedBy = grant.decidedBy
            decidedAt = grant.decidedAt
            revokedBy = grant.revokedBy
            revokedAt = grant.revokedAt
            revocationReason = grant.revocationReason
            revocationConfirmedBy = grant.revocationConfirmedBy
            revocationConfirmedAt = grant.revocationConfirmedAt
        }
    }

    struct GrantList: Content {
        var grants: [GrantDTO]
    }

    struct ApproverDTO: Content {
        var userId: UUID
        var username: String
        var name: String
        var approver: Bool
        var deaRegistrant: Bool

        init(_ user: User) {
            userId = user.id!
            username = user.username
            name = user.fullName
            approver = user.epcsApprover
            deaRegistrant = user.deaRegistrant
        }
    }

    struct ApproverList: Content {
        var approvers: [ApproverDTO]
    }

    struct AlertDTO: Content {
        var id: UUID
        var kind: String
        var subjectId: UUID?
        var message: String
        var createdAt: Date
    }

    struct AlertList: Content {
        var alerts: [AlertDTO]
    }

    struct LostDeviceResponse: Content {
        var factorId: UUID
        var revokedGrant: Bool
    }

    // MARK: helpers

    static func service(_ req: Request) throws -> EPCSService {
        try EPCSService(request: req, admin: try req.requireSession())
    }

    /// Decodes a JSON body; a missing, malformed or mistyped body is a 400 that says what was expected.
    static func decode<T: Decodable>(_ type: T.Type, from req: Request, expected: String) throws -> T {
        do {
            return try req.content.decode(type)
        } catch let error as DecodingError {
            throw EPCSError.invalid("The request body must be JSON \(expected). \(Self.describe(error))")
        } catch {
            throw EPCSError.invalid("The request body must be JSON \(expected).")
        }
    }

    /// An optional JSON body: no body at all is fine, a malformed one is not.
    static func decodeOptional<T: Decodable>(_ type: T.Type, from req: Request, expected: String) throws -> T? {
        guard let body = req.body.data, body.readableBytes > 0 else { return nil }
        return try decode(type, from: req, expected: expected)
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context, _ key: CodingKey? = nil) -> String {
            let keys = context.codingPath.map(\.stringValue) + (key.map { [$0.stringValue] } ?? [])
            return keys.isEmpty ? "the body" : keys.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context): return "\(path(context, key)) is missing."
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return "\(path(context)) has the wrong type."
        case .dataCorrupted(let context): return context.codingPath.isEmpty ? "It is not valid JSON." : "\(path(context)) is not valid."
        @unknown default: return ""
        }
    }

    static func uuid(_ req: Request, _ name: String, notFound: EPCSError) throws -> UUID {
        guard let id = req.parameters.get(name, as: UUID.self) else { throw notFound }
        return id
    }

    // MARK: grants

    @Sendable func enter(req: Request) async throws -> Response {
        let userID = try AdminWebController.userID(req)
        let body = try Self.decode(GrantRequest.self, from: req,
                                   expected: "{deaNumber, deaExpiresOn, states: [..], proofing: {provider, date, level, reference}, adminPassword}")
        let input = EPCSGrantInput(deaNumber: body.deaNumber, deaExpiresOn: body.deaExpiresOn, states: body.states, proofing: body.proofing)
        let grant = try await Self.service(req).enter(userID: userID, input: input, adminPassword: body.adminPassword)
        return try await GrantStatus(grantId: grant.id!, status: grant.status.rawValue).encodeResponse(status: .created, for: req)
    }

    @Sendable func approve(req: Request) async throws -> Response {
        try await secondApproverStep(req, action: "approve_grant") { service, id, proof in
            let grant = try await service.approve(grantID: id, proof: proof)
            return GrantStatus(grantId: grant.id!, status: grant.status.rawValue)
        }
    }

    @Sendable func refuse(req: Request) async throws -> GrantStatus {
        let id = try Self.uuid(req, "grantId", notFound: .grantNotFound)
        let body = try Self.decode(ReasonRequest.self, from: req, expected: "{reason, adminPassword}")
        let grant = try await Self.service(req).refuse(grantID: id, reason: body.reason, adminPassword: body.adminPassword)
        return GrantStatus(grantId: grant.id!, status: grant.status.rawValue)
    }

    @Sendable func revoke(req: Request) async throws -> GrantStatus {
        let userID = try AdminWebController.userID(req)
        let body = try Self.decodeOptional(ReasonRequest.self, from: req, expected: "{reason, adminPassword}")
        let grant = try await Self.service(req).revoke(userID: userID, reason: body?.reason, adminPassword: body?.adminPassword)
        return GrantStatus(grantId: grant.id!, status: grant.status.rawValue)
    }

    @Sendable func confirmRevocation(req: Request) async throws -> Response {
        try await secondApproverStep(req, action: "confirm_revocation") { service, id, proof in
            let grant = try await service.confirmRevocation(grantID: id, proof: proof)
            return GrantStatus(grantId: grant.id!, status: grant.status.rawValue, revocationConfirmed: grant.revocationConfirmedAt != nil)
        }
    }

    @Sendable func grants(req: Request) async throws -> GrantList {
        GrantList(grants: try await Self.service(req).grants().map { GrantDTO($0, now: req.now) })
    }

    // MARK: approvers

    @Sendable func designate(req: Request) async throws -> ApproverDTO {
        let userID = try AdminWebController.userID(req)
        let body = try Self.decode(ApproverRequest.self, from: req, expected: "{approver: true|false, deaRegistrant: true|false, adminPassword}")
        let user = try await Self.service(req).designate(userID: userID, approver: body.approver, registrant: body.deaRegistrant, adminPassword: body.adminPassword)
        return ApproverDTO(user)
    }

    @Sendable func approvers(req: Request) async throws -> ApproverList {
        ApproverList(approvers: try await Self.service(req).approvers().map(ApproverDTO.init))
    }

    // MARK: settings

    @Sendable func settings(req: Request) async throws -> EPCSService.Settings {
        EPCSService.settings(of: try req.requireSession().practice)
    }

    @Sendable func updateSettings(req: Request) async throws -> EPCSService.Settings {
        let body = try Self.decode(SettingsPatch.self, from: req,
                                   expected: "{eligibleTokens, securityKeyAAGUIDs, workingHoursStart, workingHoursEnd, adminPassword}")
        let current = EPCSService.settings(of: try req.requireSession().practice)
        let merged = EPCSService.Settings(eligibleTokens: body.eligibleTokens ?? current.eligibleTokens,
                                          securityKeyAAGUIDs: body.securityKeyAAGUIDs ?? current.securityKeyAAGUIDs,
                                          workingHoursStart: body.workingHoursStart ?? current.workingHoursStart,
                                          workingHoursEnd: body.workingHoursEnd ?? current.workingHoursEnd)
        return try await Self.service(req).updateSettings(merged, adminPassword: body.adminPassword)
    }

    // MARK: alerts

    @Sendable func alerts(req: Request) async throws -> AlertList {
        AlertList(alerts: try await Self.service(req).openAlerts().map {
            AlertDTO(id: $0.id!, kind: $0.kind, subjectId: $0.subjectID, message: $0.message, createdAt: $0.createdAt)
        })
    }

    @Sendable func acknowledge(req: Request) async throws -> HTTPStatus {
        guard let id = req.parameters.get("id", as: UUID.self) else { throw Abort(.notFound, reason: "There is no such alert.") }
        try await Self.service(req).acknowledge(alertID: id)
        return .noContent
    }

    // MARK: lost devices

    /// The signed-in user reports one of their own devices lost or stolen (§1311.102(b)).
    @Sendable func reportLost(req: Request) async throws -> LostDeviceResponse {
        let session = try req.requireSession()
        let factorID = try Self.uuid(req, "id", notFound: .factorNotFound)
        let body = try Self.decodeOptional(PasswordRequest.self, from: req, expected: "{password}")
        try await Reauthentication(request: req).confirm(password: body?.password, session: session)
        let result = try await LostDeviceReport(request: req).report(factorID: factorID, of: session.user, practice: session.practice, reportedBy: session.userID)
        return LostDeviceResponse(factorId: factorID, revokedGrant: result.revoked != nil)
    }

    /// An administrator reports a staff member's device lost or stolen, from the user's page.
    @Sendable func adminReportLost(req: Request) async throws -> LostDeviceResponse {
        let session = try req.requireSession()
        let userID = try AdminWebController.userID(req)
        let factorID = try Self.uuid(req, "factorId", notFound: .factorNotFound)
        let body = try Self.decodeOptional(PracticeAPIController.AdminPasswordRequest.self, from: req, expected: "{adminPassword}")
        let admin = try AdminService(request: req, admin: session)
        let user = try await admin.directory.user(userID)
        try await admin.confirmAdminPassword(body?.adminPassword)
        let result = try await LostDeviceReport(request: req).report(factorID: factorID, of: user, practice: session.practice, reportedBy: session.userID)
        return LostDeviceResponse(factorId: factorID, revokedGrant: result.revoked != nil)
    }
}
