import Fluent
import Vapor

/// Finishing what a push approval starts: a pending enrollment, or a half-signed-in session.
extension PushService {
    /// Once the device has made its first signed request, the browser (or API client) finishes the enrollment:
    /// a half-signed-in user is signed in, and a user's first method brings recovery codes.
    /// - Returns: nil while the device has not made its first signed request.
    func finishEnrollment(_ factor: Factor, session: CurrentSession) async throws -> FactorService.Activation? {
        guard factor.kind == .push else { throw FactorError.notFound }
        guard factor.status == .active else { return nil }
        let userID = session.userID
        let hasCodes = try await RecoveryCodeRecord.query(on: context.database).filter(\.$user.$id == userID).count() > 0
        return try await context.database.transaction { db in
            let context = self.context.on(db)
            let codes = hasCodes ? nil : try await RecoveryCodeService(context: context).regenerate(userID: userID)
            let token = try await FactorService(context: context).signInAfterEnrollment(session: session, factor: factor, on: db)
            return FactorService.Activation(factor: factor, recoveryCodes: codes, sessionToken: token)
        }
    }

    /// The sign-in challenge `id` of this half-signed-in session.
    func signInChallenge(_ id: UUID, session: CurrentSession) async throws -> PushChallenge {
        guard
            let challenge = try await PushChallenge.query(on: context.database).filter(\.$id == id).filter(\.$purpose == .signIn)
                .filter(\.$sessionID == session.record.requireID()).first()
        else { throw PushError.challengeNotFound }
        return challenge
    }

    /// Spends an approved sign-in challenge; true for exactly one caller, which then completes the sign-in.
    func claimSignIn(_ challenge: PushChallenge, session: CurrentSession) async throws -> Bool {
        guard challenge.status == .approved else { return false }
        return try await SecondFactorCheck(context: context).checkApproval(method: "push", user: session.user) {
            try await consume(challenge)
        }
    }
}
