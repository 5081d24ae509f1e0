import Fluent
import SQLKit
import TwofoldCore
import Vapor

/// Issues, counts and spends recovery codes; the codes themselves exist only in the response that shows them.
struct RecoveryCodeService {
    let context: ServiceContext

    /// Replaces every recovery code of the user with ten new ones.
    /// - Returns: the new codes, to show once.
    func regenerate(userID: UUID, on database: (any Database)? = nil) async throws -> [RecoveryCode] {
        let db = database ?? context.database
        let codes = RecoveryCode.generateSet(random: context.random)
        try await RecoveryCodeRecord.query(on: db).filter(\.$user.$id == userID).delete()
        for code in codes {
            try await RecoveryCodeRecord(userID: userID, codeHash: code.hashed().encoded).create(on: db)
        }
        return codes
    }

    /// Replaces the signed-in user's codes at their request (audited); they must have 2FA on.
    func regenerate(session: CurrentSession) async throws -> [RecoveryCode] {
        guard session.hasActiveFactor else {
            throw Abort(.conflict, reason: "Turn on two-factor authentication first; recovery codes come with it.")
        }
        let codes = try await regenerate(userID: session.userID)
        try await context.audit(.recoveryCodesRegenerated, practiceID: session.practiceID, actorID: session.userID)
        return codes
    }

    func remaining(userID: UUID) async throws -> Int {
        try await RecoveryCodeRecord.query(on: context.database).filter(\.$user.$id == userID).filter(\.$usedAt == nil).count()
    }

    /// Spends a matching unused code (atomically, so a code works once even under concurrent requests).
    /// - Returns: the number of codes left, or nil when none matched.
    func redeem(_ input: String, userID: UUID) async throws -> Int? {
        let unused = try await RecoveryCodeRecord.query(on: context.database).filter(\.$user.$id == userID).filter(\.$usedAt == nil).all()
        var match: RecoveryCodeRecord?
        for record in unused {
            if let hashed = HashedRecoveryCode(encoded: record.codeHash), hashed.matches(input) { match = record }
        }
        guard let match else { return nil }
        let matchID = try match.requireID()
        let claimed = try await context.database.sql.raw(
            """
            UPDATE \(ident: RecoveryCodeRecord.schema) SET used_at = \(bind: context.now)
            WHERE id = \(bind: matchID) AND used_at IS NULL RETURNING id
            """
        ).all()
        guard !claimed.isEmpty else { return nil }
        return unused.count - 1
    }
}
