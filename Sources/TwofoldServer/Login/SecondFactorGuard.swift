import Fluent
import SQLKit
import TwofoldCore
import Vapor

/// Applies the account's guessing limits around every second-factor check (sign-in, recovery codes, turning 2FA off).
struct SecondFactorGuard {
    let request: Request
    let policy = SecondFactorLockoutPolicy.standard

    /// Throws when the account must wait or is locked.
    func ensureAllowed(user: User) async throws {
        let now = request.now
        switch policy.decision(consecutiveFailures: user.secondFactorFailures, lastFailureAt: user.secondFactorLastFailureAt, now: now) {
        case .allowed:
            return
        case .wait(let until):
            request.metrics.verification(kind: "any", outcome: .locked)
            try await request.audit(.secondFactorThrottled, practiceID: user.$practice.id, actorID: user.id, details: ["failures": String(user.secondFactorFailures)])
            throw SignInError.wait(seconds: max(1, Int(until.timeIntervalSince(now).rounded(.up))))
        case .locked(let until):
            request.metrics.verification(kind: "any", outcome: .locked)
            try await request.audit(.secondFactorThrottled, practiceID: user.$practice.id, actorID: user.id, details: ["failures": String(user.secondFactorFailures), "locked": "true"])
            throw SignInError.locked(minutes: max(1, Int((until.timeIntervalSince(now) / 60).rounded(.up))))
        case .lockedUntilReset:
            request.metrics.verification(kind: "any", outcome: .locked)
            throw SignInError.lockedUntilReset
        }
    }

    private struct CountRow: Decodable { var second_factor_failures: Int }

    /// Counts a wrong code against the account (atomically) and audits any lock it starts.
    /// - Returns: the new number of consecutive failures.
    @discardableResult
    func recordFailure(user: User, method: String, auditing: Bool = true) async throws -> Int {
        let now = request.now
        let row = try await request.db.sql.raw("""
            UPDATE \(ident: User.schema) SET second_factor_failures = second_factor_failures + 1, second_factor_last_failure_at = \(bind: now)
            WHERE id = \(bind: user.id!) RETURNING second_factor_failures
            """).first(decoding: CountRow.self)
        let failures = row?.second_factor_failures ?? user.secondFactorFailures + 1
        user.secondFactorFailures = failures
        user.secondFactorLastFailureAt = now
        if auditing {
            try await request.audit(.secondFactorFailed, practiceID: user.$practice.id, actorID: user.id, details: ["method": method, "consecutive_failures": String(failures)])
        }
        request.metrics.verification(kind: method, outcome: .reject)
        if policy.startsLock(atFailures: failures) {
            request.metrics.lockout()
            let permanent = failures >= policy.permanentLockAt
            try await request.audit(permanent ? .secondFactorLockedPermanently : .secondFactorLocked, practiceID: user.$practice.id, actorID: user.id,
                                    details: ["consecutive_failures": String(failures), "minutes": permanent ? "until reset" : String(Int(policy.lockDuration / 60))])
        }
        return failures
    }

    func recordSuccess(user: User, kind: String) async throws {
        request.metrics.verification(kind: kind, outcome: .accept)
        guard user.secondFactorFailures != 0 else { return }
        try await request.db.sql.update(User.schema).set("second_factor_failures", to: 0).where("id", .equal, user.id!).run()
        user.secondFactorFailures = 0
    }
}
