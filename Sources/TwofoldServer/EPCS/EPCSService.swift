import Fluent
import SQLKit
import TwofoldCore
import Vapor

/// What can go wrong with EPCS permissions, each with what to do about it.
enum EPCSError: AbortError, Equatable {
    case invalid(String)
    case notApprover
    case ownGrant
    case ownPermission
    case approverNotRegistrant
    case tooFewApprovers
    case notProvider(String)
    case needsManageAccounts(String)
    case grantNotFound
    case notPending(String)
    case alreadyOpen(String)
    case noActiveGrant(String)
    case alreadyConfirmed
    case noAuthenticatorApp
    case notPermitted
    case noEligibleToken
    case factorNotFound
    case noPushDevice
    case pushPending
    case pushNotFound
    case pushDenied

    var status: HTTPResponseStatus {
        switch self {
        case .invalid: .badRequest
        case .notApprover, .ownGrant, .ownPermission, .approverNotRegistrant, .notPermitted: .forbidden
        case .grantNotFound, .factorNotFound, .pushNotFound: .notFound
        case .pushPending: .conflict
        case .noPushDevice: .conflict
        case .pushDenied: .forbidden
        case .tooFewApprovers, .notProvider, .needsManageAccounts, .notPending, .alreadyOpen, .noActiveGrant, .alreadyConfirmed,
            .noAuthenticatorApp, .noEligibleToken:
            .conflict
        }
    }

    var reason: String {
        switch self {
        case .invalid(let why): why
        case .notApprover:
            "Only the practice's EPCS access approvers may enter, approve or revoke EPCS permissions (21 CFR 1311.125(a)). An administrator designates approvers on a user's page."
        case .ownGrant: "You entered this grant, so a second approver must approve it (21 CFR 1311.125(c): two different people)."
        case .ownPermission: "You cannot enter, approve or confirm your own EPCS permission; two other approvers must."
        case .approverNotRegistrant:
            "The second approver must be a DEA registrant (21 CFR 1311.125(c)). Ask an approver who is marked as a DEA registrant."
        case .tooFewApprovers:
            "EPCS permissions need at least two EPCS access approvers, at least one of them a DEA registrant (21 CFR 1311.125(a)). Designate them on the users' pages first."
        case .notProvider(let name):
            "\(name) is a staff account; only providers can be given permission to sign controlled-substance prescriptions."
        case .needsManageAccounts(let name): "\(name) needs the Manage Accounts permission before they can be an EPCS access approver."
        case .grantNotFound: "There is no such EPCS grant in your practice."
        case .notPending(let status): "This grant is \(status.replacingOccurrences(of: "_", with: " ")), not waiting for approval."
        case .alreadyOpen(let name):
            "\(name) already has an EPCS grant that is active or waiting for approval. Revoke it first to enter a new one."
        case .noActiveGrant(let name): "\(name) has no active EPCS permission."
        case .alreadyConfirmed: "This revocation is already confirmed."
        case .noAuthenticatorApp:
            "Approving needs a fresh code from your authenticator app (never a text message, a recovery code or a remembered browser). Add an authenticator app under Account › Security first."
        case .notPermitted:
            "This user has no active permission to sign controlled-substance prescriptions. Two of the practice's EPCS access approvers must grant it (21 CFR 1311.125); the attempt was recorded."
        case .noEligibleToken:
            "This prescriber has no device the practice counts for EPCS signing (a push device, an authenticator app, or an attested security key, as the practice's EPCS settings list). Add one under Account › Security."
        case .factorNotFound: "There is no such device on this account."
        case .noPushDevice:
            "You have no active push device. Approve with a code from your authenticator app instead, or add a push device under Account › Security."
        case .pushPending: "Not approved yet. Approve the request on your push device (enter the number shown here), then continue."
        case .pushNotFound: "There is no such push request for this step; start a new one."
        case .pushDenied: "The request was denied on your device, or it expired. Nothing was changed; start again."
        }
    }
}

/// The input of a new grant: the provider's DEA registration and the credential service provider's proofing record.
struct EPCSGrantInput: Sendable {
    var deaNumber: String
    var deaExpiresOn: String
    var states: [String]
    var proofing: EPCSProofing
}

/// How the second approver proves their second factor: a fresh authenticator code, or a push request approved on
/// their own device (with the number shown), each valid for one grant and one step.
enum ApproverProof: Sendable {
    case code(String?)
    case push(challengeID: UUID)
}

/// Rules about EPCS that need only the database: who may sign, which devices count.
struct EPCSRules {
    let database: any Database
    let now: Date
    let trustAnchorsConfigured: Bool

    /// The prescriber's grant if it permits signing now (active, registration current).
    func activeGrant(userID: UUID) async throws -> EPCSGrant? {
        let grant = try await EPCSGrant.query(on: database).filter(\.$user.$id == userID).filter(\.$status == .active).first()
        return grant?.permitsSigning(now: now) == true ? grant : nil
    }

    func isEligible(_ factor: Factor, practice: Practice) -> Bool {
        Self.isEligible(factor, practice: practice, trustAnchorsConfigured: trustAnchorsConfigured)
    }

    /// §1311.115(b): a hard token separate from the computer. Text messages and recovery codes never count; a synced
    /// passkey is not a hard token; a passkey's own biometric only unlocks the key and is not counted as a factor.
    static func isEligible(_ factor: Factor, practice: Practice, trustAnchorsConfigured: Bool) -> Bool {
        guard factor.status == .active else { return false }
        let tokens = EPCS.Token.list(practice.epcsTokens)
        switch factor.kind {
        case .sms: return false
        case .totp: return tokens.contains(.totp) && practice.allowTOTP
        case .push: return tokens.contains(.push) && practice.allowPush
        case .webauthn:
            return tokens.contains(.securityKey) && practice.allowPasskeys
                && EPCS.securityKeyIsEligible(
                    backupEligible: factor.backupEligible, attestation: factor.attestation, aaguid: factor.aaguid,
                    trustAnchorsConfigured: trustAnchorsConfigured, allowedAAGUIDs: EPCS.aaguidList(practice.epcsSecurityKeyAAGUIDs).list)
        }
    }

    func eligibleFactors(userID: UUID, practice: Practice) async throws -> [Factor] {
        try await Factor.query(on: database).filter(\.$user.$id == userID).filter(\.$status == .active).all().filter {
            isEligible($0, practice: practice)
        }
    }
}

extension Request {
    var epcsRules: EPCSRules {
        EPCSRules(database: db, now: now, trustAnchorsConfigured: !twofold.configuration.relyingParty.trustAnchors.isEmpty)
    }
}

/// What EPCS access approvers do: designate (administrators), enter, approve, refuse and revoke grants, the
/// practice's EPCS settings, and acknowledging alerts. Every step is audited.
struct EPCSService {
    let context: ServiceContext
    let admin: CurrentSession

    init(context: ServiceContext, admin: CurrentSession) throws {
        guard admin.user.has(.manageAccounts) else { throw AdminError.notAllowed }
        self.context = context
        self.admin = admin
    }

    private var directory: StaffDirectory { StaffDirectory(database: context.database, practice: admin.practice) }
    private var practiceID: UUID { admin.practiceID }

    private func confirmPassword(_ password: String?) async throws {
        try await AdminService(context: context, admin: admin).confirmAdminPassword(password)
    }

    private func audit(_ type: AuditEventType, subject: UUID?, _ details: [String: String], on db: (any Database)? = nil) async throws {
        try await context.on(db ?? context.database).audit(
            type, practiceID: practiceID, actorID: admin.userID, subjectID: subject, details: details)
    }

    /// An attempt by someone who may not do it: refused and recorded as an attempted unauthorized access (§1311.150).
    private func refuse(_ error: EPCSError, action: String, subject: UUID?) async throws -> Never {
        try await audit(.epcsUnauthorizedAttempt, subject: subject, ["action": action, "reason": error.reason])
        throw error
    }

    // MARK: approvers

    /// Designates (or stops designating) an EPCS access approver and records whether they are a DEA registrant.
    func designate(userID: UUID, approver: Bool, registrant: Bool, adminPassword: String?) async throws -> User {
        let user = try await directory.user(userID)
        if approver, !user.has(.manageAccounts) { throw EPCSError.needsManageAccounts(user.fullName) }
        try await confirmPassword(adminPassword)
        let wasApprover = user.epcsApprover, wasRegistrant = user.deaRegistrant
        guard wasApprover != approver || wasRegistrant != registrant else { return user }
        user.epcsApprover = approver
        user.deaRegistrant = registrant
        try await user.save(on: context.database)
        let details = ["username": user.username, "approver": String(approver), "dea_registrant": String(registrant)]
        try await audit(approver ? .epcsApproverDesignated : .epcsApproverRemoved, subject: user.id, details)
        return user
    }

    func approvers() async throws -> [User] {
        try await User.query(on: context.database).filter(\.$practice.$id == practiceID).filter(\.$epcsApprover == true).sort(\.$lastName)
            .all()
    }

    // MARK: grants

    /// Validates a grant's input: a DEA number with a right check digit, a future expiry, real states, a complete
    /// proofing record.
    static func validated(_ input: EPCSGrantInput, now: Date, fields: TwofoldPolicy.Fields) throws -> EPCSGrantInput {
        var problems: [String] = []
        guard let dea = DEANumber(input.deaNumber) else {
            throw EPCSError.invalid(
                "deaNumber must be a DEA registration number: two letters and seven digits whose last is the check digit, e.g. AB1234563.")
        }
        if EPCSDay.start(input.deaExpiresOn) == nil {
            problems.append("deaExpiresOn must be a date YYYY-MM-DD")
        } else if input.deaExpiresOn < EPCSDay.string(now) {
            problems.append("the DEA registration expired on \(input.deaExpiresOn)")
        }
        let states = input.states.map { $0.trimmingCharacters(in: .whitespaces).uppercased() }.filter { !$0.isEmpty }
        if states.isEmpty { problems.append("states must list at least one state the practitioner is authorized in, e.g. [\"NY\"]") }
        if let bad = states.first(where: { !EPCS.stateCodes.contains($0) }) {
            problems.append("\(bad) is not a US state or territory code")
        }
        if states.count > 60 { problems.append("states may list at most 60 codes") }
        let proofing = EPCSProofing(
            provider: input.proofing.provider.trimmingCharacters(in: .whitespacesAndNewlines),
            date: input.proofing.date.trimmingCharacters(in: .whitespaces),
            level: input.proofing.level.trimmingCharacters(in: .whitespacesAndNewlines),
            reference: input.proofing.reference.trimmingCharacters(in: .whitespacesAndNewlines))
        if !(1...fields.proofingProvider).contains(proofing.provider.count) {
            problems.append("proofing.provider must name the credential service provider (1 to \(fields.proofingProvider) characters)")
        }
        if let date = EPCSDay.start(proofing.date) {
            if date > now { problems.append("proofing.date cannot be in the future") }
        } else {
            problems.append("proofing.date must be a date YYYY-MM-DD")
        }
        if !(1...fields.proofingLevel).contains(proofing.level.count) {
            problems.append("proofing.level must give the assurance level, e.g. IAL2 (1 to \(fields.proofingLevel) characters)")
        }
        if !(1...fields.proofingReference).contains(proofing.reference.count) {
            problems.append("proofing.reference must give the provider's reference (1 to \(fields.proofingReference) characters)")
        }
        guard problems.isEmpty else { throw EPCSError.invalid("Cannot enter the grant: " + problems.joined(separator: "; ") + ".") }
        return EPCSGrantInput(
            deaNumber: dea.value, deaExpiresOn: input.deaExpiresOn, states: Array(Set(states)).sorted(), proofing: proofing)
    }

    /// The first step: an approver enters a provider's grant, confirmed with their own password. It waits for a second approver.
    func enter(userID: UUID, input rawInput: EPCSGrantInput, adminPassword: String?) async throws -> EPCSGrant {
        guard admin.user.epcsApprover else { try await refuse(.notApprover, action: "enter_grant", subject: userID) }
        guard userID != admin.userID else { try await refuse(.ownPermission, action: "enter_grant", subject: userID) }
        let user = try await directory.user(userID)
        guard user.role == .provider else { throw EPCSError.notProvider(user.fullName) }
        let input = try Self.validated(rawInput, now: context.now, fields: context.policy.fields)
        let approvers = try await approvers()
        guard approvers.count >= 2, approvers.contains(where: \.deaRegistrant) else { throw EPCSError.tooFewApprovers }
        try await confirmPassword(adminPassword)
        let grant = EPCSGrant(
            practiceID: practiceID, userID: userID, deaNumber: input.deaNumber, deaExpiresOn: input.deaExpiresOn,
            states: input.states, proofing: input.proofing, enteredBy: admin.userID, now: context.now)
        do {
            try await context.database.transaction { db in
                try await grant.create(on: db)
                try await audit(
                    .epcsGrantEntered, subject: userID,
                    [
                        "grant": grant.shortID, "username": user.username, "dea": DEANumber(grant.deaNumber)?.masked ?? "",
                        "dea_expires_on": grant.deaExpiresOn,
                        "states": grant.states, "proofing_provider": grant.proofingProvider, "proofing_level": grant.proofingLevel,
                    ], on: db)
            }
        } catch let error as any DatabaseError where error.isConstraintFailure {
            throw EPCSError.alreadyOpen(user.fullName)
        }
        return grant
    }

    func grant(_ id: UUID) async throws -> EPCSGrant {
        guard
            let grant = try await EPCSGrant.query(on: context.database).filter(\.$id == id).filter(\.$practiceID == practiceID).with(
                \.$user
            )
            .first()
        else { throw EPCSError.grantNotFound }
        return grant
    }

    func grants() async throws -> [EPCSGrant] {
        try await EPCSGrant.query(on: context.database).filter(\.$practiceID == practiceID).with(\.$user).sort(\.$enteredAt, .descending)
            .all()
    }

    /// The second approver: a different approver, a DEA registrant, not the prescriber, with a fresh authenticator code.
    private func checkSecondApprover(_ grant: EPCSGrant, firstApprover: UUID, action: String) async throws {
        guard admin.user.epcsApprover else { try await refuse(.notApprover, action: action, subject: grant.$user.id) }
        guard grant.$user.id != admin.userID else { try await refuse(.ownPermission, action: action, subject: grant.$user.id) }
        guard firstApprover != admin.userID else { try await refuse(.ownGrant, action: action, subject: grant.$user.id) }
        guard admin.user.deaRegistrant else { try await refuse(.approverNotRegistrant, action: action, subject: grant.$user.id) }
    }

    /// Checks the approver's proof: a code through the one code check, or a push approval of this very step.
    private func confirm(_ proof: ApproverProof, grant: EPCSGrant, action: String) async throws {
        switch proof {
        case .code(let code):
            try await confirmFreshCode(code, grant: grant, action: action)
        case .push(let challengeID):
            guard
                let push = try await PushChallenge.query(on: context.database).filter(\.$id == challengeID).filter(
                    \.$user.$id == admin.userID
                )
                .filter(\.$purpose == .epcsApproval).filter(\.$epcsGrantID == grant.id).filter(\.$epcsAction == action).first()
            else { throw EPCSError.pushNotFound }
            switch push.status {
            case .pending where push.expiresAt > context.now:
                throw EPCSError.pushPending
            case .approved where try await PushService(context: context).consume(push):
                return
            default:
                try await audit(
                    .epcsApprovalFailed, subject: grant.$user.id,
                    ["grant": grant.shortID, "action": action, "reason": "push_" + push.status.rawValue])
                throw EPCSError.pushDenied
            }
        }
    }

    /// Sends the second approver's step (approving a grant, confirming a revocation) to their push device, after the
    /// same checks as the step itself; the device shows what is approved and asks for the number.
    func startPush(grantID: UUID, action: String) async throws -> PushChallenge {
        let grant = try await grant(grantID)
        switch action {
        case "approve_grant":
            try await checkSecondApprover(grant, firstApprover: grant.enteredBy, action: action)
            guard grant.status == .pendingApproval else { throw EPCSError.notPending(grant.visibleStatus(now: context.now)) }
        case "confirm_revocation":
            guard grant.status == .revoked, let revokedBy = grant.revokedBy else {
                throw EPCSError.notPending(grant.visibleStatus(now: context.now))
            }
            guard grant.revocationConfirmedAt == nil else { throw EPCSError.alreadyConfirmed }
            try await checkSecondApprover(grant, firstApprover: revokedBy, action: action)
        default:
            throw EPCSError.invalid("Unknown EPCS step \(action).")
        }
        let hasDevice =
            try await Factor.query(on: context.database).filter(\.$user.$id == admin.userID).filter(\.$status == .active).filter(
                \.$kind == .push
            )
            .count() > 0
        guard hasDevice else { throw EPCSError.noPushDevice }
        let what = action == "approve_grant" ? "Approve the EPCS permission of" : "Confirm the revocation of the EPCS permission of"
        let summary = "\(what) \(grant.user.fullName) (DEA \(DEANumber(grant.deaNumber)?.masked ?? ""))"
        let push = try await PushService(context: context).startChallenge(
            user: admin.user, practice: admin.practice, factorID: nil,
            purpose: .epcsApproval, action: summary)
        push.epcsGrantID = grant.id
        push.epcsAction = action
        try await push.save(on: context.database)
        return push
    }

    /// Checks the approver's fresh authenticator code through the one code check (reserved before it is checked,
    /// single use, counted against the approver's step-up counter and lockout).
    private func confirmFreshCode(_ rawCode: String?, grant: EPCSGrant, action: String) async throws {
        guard let code = SecondFactorCheck.normalize(rawCode ?? "") else {
            throw EPCSError.invalid("code must be the 6 to 8 digits your authenticator app shows now.")
        }
        let factors = try await Factor.query(on: context.database).filter(\.$user.$id == admin.userID).filter(\.$status == .active).filter(
            \.$kind == .totp
        ).all()
        guard !factors.isEmpty else { throw EPCSError.noAuthenticatorApp }
        switch try await SecondFactorCheck(context: context).check(
            code, user: admin.user, factors: factors, smsFactor: nil, channel: .stepUp)
        {
        case .accepted:
            return
        case .replayed:
            try await audit(.epcsApprovalFailed, subject: grant.$user.id, ["grant": grant.shortID, "action": action, "reason": "replayed"])
            throw SignInError.codeAlreadyUsed
        case .wrong(let failures):
            try await audit(
                .epcsApprovalFailed, subject: grant.$user.id,
                ["grant": grant.shortID, "action": action, "reason": "wrong_code", "failures": String(failures)])
            throw SignInError.wrongCode
        }
    }

    /// The second step: another approver approves with a fresh second factor; the prescriber may sign from now on.
    func approve(grantID: UUID, code: String?) async throws -> EPCSGrant {
        try await approve(grantID: grantID, proof: .code(code))
    }

    func approve(grantID: UUID, proof: ApproverProof) async throws -> EPCSGrant {
        let grant = try await grant(grantID)
        try await checkSecondApprover(grant, firstApprover: grant.enteredBy, action: "approve_grant")
        guard grant.status == .pendingApproval else { throw EPCSError.notPending(grant.visibleStatus(now: context.now)) }
        try await confirm(proof, grant: grant, action: "approve_grant")
        try await decide(grant, to: .active, type: .epcsGrantApproved, extra: [:])
        return grant
    }

    /// The second approver may refuse instead; the provider gets no permission and a new grant needs two again.
    func refuse(grantID: UUID, reason: String?, adminPassword: String?) async throws -> EPCSGrant {
        let grant = try await grant(grantID)
        guard admin.user.epcsApprover else { try await refuse(.notApprover, action: "refuse_grant", subject: grant.$user.id) }
        guard grant.status == .pendingApproval else { throw EPCSError.notPending(grant.visibleStatus(now: context.now)) }
        try await confirmPassword(adminPassword)
        try await decide(
            grant, to: .refused, type: .epcsGrantRefused, extra: ["reason": String((reason ?? "").prefix(context.policy.fields.reason))])
        return grant
    }

    private func decide(_ grant: EPCSGrant, to status: EPCSGrant.Status, type: AuditEventType, extra: [String: String]) async throws {
        let now = context.now
        try await context.database.transaction { db in
            // Only one decision counts, however many approvers submit at once.
            let rows = try await (db as! any SQLDatabase).raw(
                """
                UPDATE \(ident: EPCSGrant.schema) SET status = \(bind: status.rawValue), decided_by = \(bind: admin.userID), decided_at = \(bind: now)
                WHERE id = \(bind: try grant.requireID()) AND status = 'pending_approval' RETURNING id
                """
            ).all()
            guard !rows.isEmpty else { throw EPCSError.notPending("already decided") }
            grant.status = status
            grant.decidedBy = admin.userID
            grant.decidedAt = now
            try await audit(
                type, subject: grant.$user.id,
                extra.merging([
                    "grant": grant.shortID, "username": grant.user.username, "dea": DEANumber(grant.deaNumber)?.masked ?? "",
                    "entered_by": grant.enteredBy.uuidString,
                ]) { a, _ in a }, on: db)
        }
    }

    /// Revokes a provider's permission at once (one approver, password confirmed): §1311.125(d) wants it the day the
    /// reason is discovered. A second approver then confirms the revocation with their second factor (§1311.125(c)).
    func revoke(userID: UUID, reason: String?, adminPassword: String?) async throws -> EPCSGrant {
        guard admin.user.epcsApprover else { try await refuse(.notApprover, action: "revoke_grant", subject: userID) }
        let user = try await directory.user(userID)
        guard
            let grant = try await EPCSGrant.query(on: context.database).filter(\.$user.$id == userID)
                .filter(\.$status ~~ [.active, .pendingApproval]).with(\.$user).first()
        else { throw EPCSError.noActiveGrant(user.fullName) }
        try await confirmPassword(adminPassword)
        try await Self.revoke(
            grant, reason: Self.reasonText(reason, longest: context.policy.fields.reason), by: admin.userID, context: context)
        return grant
    }

    static func reasonText(_ reason: String?, longest: Int) -> String {
        let text = (reason ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "revoked by an approver" : String(text.prefix(longest))
    }

    /// Revokes a grant (used by approvers and by a report of a lost device); the row changes only once.
    static func revoke(_ grant: EPCSGrant, reason: String, by actorID: UUID, context: ServiceContext) async throws {
        let now = context.now
        try await context.database.transaction { db in
            let rows = try await (db as! any SQLDatabase).raw(
                """
                UPDATE \(ident: EPCSGrant.schema) SET status = 'revoked', revoked_by = \(bind: actorID), revoked_at = \(bind: now),
                revocation_reason = \(bind: reason) WHERE id = \(bind: try grant.requireID()) AND status IN ('active', 'pending_approval') RETURNING id
                """
            ).all()
            guard !rows.isEmpty else { return }
            grant.status = .revoked
            grant.revokedBy = actorID
            grant.revokedAt = now
            grant.revocationReason = reason
            try await context.on(db).audit(
                .epcsGrantRevoked, practiceID: grant.practiceID, actorID: actorID, subjectID: grant.$user.id,
                details: ["grant": grant.shortID, "dea": DEANumber(grant.deaNumber)?.masked ?? "", "reason": reason])
        }
    }

    /// The second approver's confirmation of a revocation, with a fresh authenticator code.
    func confirmRevocation(grantID: UUID, code: String?) async throws -> EPCSGrant {
        try await confirmRevocation(grantID: grantID, proof: .code(code))
    }

    func confirmRevocation(grantID: UUID, proof: ApproverProof) async throws -> EPCSGrant {
        let grant = try await grant(grantID)
        guard grant.status == .revoked, let revokedBy = grant.revokedBy else {
            throw EPCSError.notPending(grant.visibleStatus(now: context.now))
        }
        guard grant.revocationConfirmedAt == nil else { throw EPCSError.alreadyConfirmed }
        try await checkSecondApprover(grant, firstApprover: revokedBy, action: "confirm_revocation")
        try await confirm(proof, grant: grant, action: "confirm_revocation")
        let now = context.now
        try await context.database.transaction { db in
            let rows = try await (db as! any SQLDatabase).raw(
                """
                UPDATE \(ident: EPCSGrant.schema) SET revocation_confirmed_by = \(bind: admin.userID), revocation_confirmed_at = \(bind: now)
                WHERE id = \(bind: try grant.requireID()) AND revocation_confirmed_at IS NULL RETURNING id
                """
            ).all()
            guard !rows.isEmpty else { throw EPCSError.alreadyConfirmed }
            grant.revocationConfirmedBy = admin.userID
            grant.revocationConfirmedAt = now
            try await audit(
                .epcsRevocationConfirmed, subject: grant.$user.id, ["grant": grant.shortID, "revoked_by": revokedBy.uuidString], on: db)
        }
        return grant
    }

    // MARK: settings

    /// The practice's EPCS settings: the tokens that count for signing (by name), the security key models allowed,
    /// and the working hours (UTC) against which the daily report flags approvals.
    struct Settings: Sendable, Equatable {
        var eligibleTokens: [String]
        var securityKeyAAGUIDs: [String]
        var workingHoursStart: Int
        var workingHoursEnd: Int
    }

    /// What working hours must be, with the policy's ranges: a start hour, and a later end hour (exclusive), in UTC.
    static func workingHoursRule(_ policy: TwofoldPolicy) -> EPCSError {
        let start = policy.practice.epcsWorkingHoursStart, end = policy.practice.epcsWorkingHoursEnd
        return .invalid(
            "Working hours run from a start hour (\(start.lowerBound)–\(start.upperBound)) to a later end hour (\(end.lowerBound)–\(end.upperBound)), in UTC."
        )
    }

    static func settings(of practice: Practice) -> Settings {
        Settings(
            eligibleTokens: EPCS.Token.list(practice.epcsTokens).map(\.rawValue),
            securityKeyAAGUIDs: EPCS.aaguidList(practice.epcsSecurityKeyAAGUIDs).list,
            workingHoursStart: practice.epcsWorkingHoursStart, workingHoursEnd: practice.epcsWorkingHoursEnd)
    }

    func updateSettings(_ settings: Settings, adminPassword: String?) async throws -> Settings {
        var tokens: [EPCS.Token] = []
        for name in settings.eligibleTokens {
            guard let token = EPCS.Token(rawValue: name) else {
                throw EPCSError.invalid(
                    "eligibleTokens may list \(EPCS.Token.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")); \"\(name)\" is not one. Text messages and recovery codes never count."
                )
            }
            if !tokens.contains(token) { tokens.append(token) }
        }
        let aaguids = EPCS.aaguidList(settings.securityKeyAAGUIDs.joined(separator: ","))
        if let bad = aaguids.invalid {
            throw EPCSError.invalid("\(bad) is not an AAGUID (a UUID such as 2fc0579f-8113-47ea-b116-bb5a8db9202a).")
        }
        let start = context.policy.practice.epcsWorkingHoursStart, end = context.policy.practice.epcsWorkingHoursEnd
        guard start.contains(settings.workingHoursStart), end.contains(settings.workingHoursEnd),
            settings.workingHoursStart < settings.workingHoursEnd
        else { throw Self.workingHoursRule(context.policy) }
        try await confirmPassword(adminPassword)
        let practice = admin.practice
        let before = Self.settings(of: practice)
        practice.epcsTokens = EPCS.Token.text(tokens)
        practice.epcsSecurityKeyAAGUIDs = aaguids.list.joined(separator: ",")
        practice.epcsWorkingHoursStart = settings.workingHoursStart
        practice.epcsWorkingHoursEnd = settings.workingHoursEnd
        let after = Self.settings(of: practice)
        guard after != before else { return after }
        try await practice.save(on: context.database)
        try await audit(
            .epcsSettingsChanged, subject: nil,
            [
                "eligible_tokens": after.eligibleTokens.joined(separator: ","),
                "security_key_aaguids": String(after.securityKeyAAGUIDs.count),
                "working_hours": "\(after.workingHoursStart)-\(after.workingHoursEnd)",
            ])
        return after
    }

    // MARK: alerts

    func openAlerts() async throws -> [EPCSAlert] {
        try await EPCSAlert.query(on: context.database).filter(\.$practiceID == practiceID).filter(\.$acknowledgedAt == nil).sort(
            \.$createdAt, .descending
        ).all()
    }

    func acknowledge(alertID: UUID) async throws {
        guard admin.user.epcsApprover else { throw EPCSError.notApprover }
        guard
            let alert = try await EPCSAlert.query(on: context.database).filter(\.$id == alertID).filter(\.$practiceID == practiceID).first()
        else { throw Abort(.notFound, reason: "There is no such alert.") }
        guard alert.acknowledgedAt == nil else { return }
        alert.acknowledgedBy = admin.userID
        alert.acknowledgedAt = context.now
        try await alert.save(on: context.database)
        try await audit(
            .epcsAlertAcknowledged, subject: alert.subjectID, ["alert": alert.kind, "message": String(alert.message.prefix(200))])
    }
}

/// "Report a lost or stolen device": the device stops working at once, the owner's EPCS permission is revoked
/// (§1311.125(d)(1)), and the practice's approvers see an alert. Used by the owner and by an administrator.
struct LostDeviceReport {
    let context: ServiceContext

    func report(factorID: UUID, of user: User, practice: Practice, reportedBy actorID: UUID) async throws -> (
        factor: Factor, revoked: EPCSGrant?
    ) {
        guard
            let factor = try await Factor.query(on: context.database).filter(\.$id == factorID).filter(
                \.$user.$id == (try user.requireID())
            )
            .first()
        else { throw EPCSError.factorNotFound }
        let userID = try user.requireID()
        let others = try await TwoFactorReset.otherActiveFactors(of: userID, besides: factorID, on: context.database)
        try await context.database.transaction { db in
            try await TwoFactorReset.remove(factor, remaining: others, userID: userID, on: db)
            // A device that may be in someone else's hands: the browsers it helped remember are forgotten too.
            try await RememberedBrowser.query(on: db).filter(\.$user.$id == userID).delete()
            try await context.on(db).audit(
                .epcsTokenReportedLost, practiceID: practice.id, actorID: actorID, subjectID: userID,
                details: [
                    "factor": factor.shortID, "kind": factor.kind.rawValue, "nickname": factor.nickname,
                    "by": actorID == userID ? "owner" : "administrator",
                ])
            try await context.on(db).audit(
                factor.kind == .webauthn ? .passkeyRemoved : .factorRemoved, practiceID: practice.id, actorID: actorID, subjectID: userID,
                details: ["factor": factor.shortID, "kind": factor.kind.rawValue, "nickname": factor.nickname, "reason": "reported_lost"])
        }
        var revoked: EPCSGrant?
        if let grant = try await EPCSGrant.query(on: context.database).filter(\.$user.$id == userID).filter(
            \.$status ~~ [.active, .pendingApproval]
        ).first() {
            try await EPCSService.revoke(
                grant, reason: "device reported lost or stolen (\(factor.kind.displayName), \(factor.nickname))", by: actorID,
                context: context)
            revoked = grant
        }
        let message =
            "\(user.fullName) reported \(factor.kind.displayName.lowercased()) \u{201C}\(factor.nickname)\u{201D} lost or stolen"
            + (revoked != nil ? "; their EPCS permission was revoked and needs two approvers to be granted again." : ".")
        try await EPCSAlert(
            practiceID: try practice.requireID(), kind: "device_lost", subjectID: userID, message: message, now: context.now
        ).create(on: context.database)
        return (factor, revoked)
    }
}
