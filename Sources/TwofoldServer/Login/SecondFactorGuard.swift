import Fluent
import SQLKit
import TwofoldCore
import Vapor

/// Where a second-factor attempt comes from. Each channel keeps its own count of consecutive failures, so
/// guesses through one channel cannot lock a user out of another (docs/security.md, "Lockout model").
enum SecondFactorChannel: Sendable, Hashable {
    /// The second step of a sign-in, after the right password. Only this channel reaches the account-wide lock
    /// (including the lock that needs an administrator) that every other channel also respects.
    case signIn
    /// `/api/v1/validate` through one API key (a VPN, a gateway): its failures lock only that key's checks of the user.
    case validate(apiKeyID: UUID)
    /// Step-up verifications requested by the practice's integrations.
    case stepUp
    /// Codes a RADIUS client in `code-only` mode sends (it checked the password itself): that client's checks of the user.
    case radius(clientID: UUID)

    /// The counter's name in `second_factor_counters`; nil for the sign-in counter kept on the user's row.
    var counterName: String? {
        switch self {
        case .signIn: nil
        case .validate(let id): "validate:\(id.uuidString.lowercased())"
        case .stepUp: "step_up"
        case .radius(let id): "radius:\(id.uuidString.lowercased())"
        }
    }
}

/// Applies the account's guessing limits around every second-factor check (sign-in, validation, step-up,
/// recovery codes, turning 2FA off).
///
/// An attempt is *reserved* before the code is checked: the failure counter is raised with a compare-and-set on
/// exactly the value the lockout decision was made on, so N parallel requests evaluate at most as many codes as
/// the policy allows one after another. A correct code then clears the counter; a wrong one is already counted.
struct SecondFactorGuard {
    let context: ServiceContext
    var policy: SecondFactorLockoutPolicy { context.policy.lockout }

    /// A reserved attempt: the number of consecutive failures it will stand for if the code is wrong.
    struct Attempt {
        var channel: SecondFactorChannel
        var failures: Int
    }

    private struct CountRow: Decodable { var failures: Int }

    /// Reserves one attempt for `user` on `channel`, or throws the wait, lock or reset-lock that stands in the way.
    /// Every channel also respects the account-wide lock of the sign-in channel.
    func reserve(user: User, channel: SecondFactorChannel) async throws -> Attempt {
        let now = context.now
        let userID = try user.requireID()
        var account: Counter?
        if channel != .signIn {
            // The user's row, when the caller read it for this request, already holds the sign-in counter.
            account =
                if let failures = user.$secondFactorFailures.value {
                    Counter(failures: failures, lastFailureAt: user.$secondFactorLastFailureAt.value ?? nil)
                } else {
                    try await readCounter(userID: userID, channel: .signIn)
                }
        }
        // The account-wide lock does not move while this request races others on the channel's counter.
        if let refusal = Self.accountRefusal(account, channel: channel, policy: policy, now: now) {
            try await refuse(refusal, user: user)
        }
        for _ in 0..<50 {
            let seen = try await readCounter(userID: userID, channel: channel)
            if let refusal = Self.channelRefusal(seen, channel: channel, policy: policy, now: now) {
                try await refuse(refusal, user: user)
            }
            if let failures = try await compareAndIncrement(userID: userID, channel: channel, seen: seen.failures, now: now) {
                if channel == .signIn {
                    user.secondFactorFailures = failures
                    user.secondFactorLastFailureAt = now
                }
                return Attempt(channel: channel, failures: failures)
            }
            await Task.yield()
        }
        // Fifty lost races in a row: a burst is under way; it is told to wait like any fast guesser.
        throw SignInError.wait(seconds: 1)
    }

    /// Audits and measures a wrong code whose attempt was reserved (the counter already holds it), and any lock it starts.
    func recordFailure(_ attempt: Attempt, user: User, method: String, auditing: Bool = true) async throws {
        for (type, details) in Self.failureEvents(attempt, method: method, auditing: auditing, policy: policy) {
            try await context.audit(type, practiceID: user.$practice.id, actorID: user.id, details: details)
        }
        Self.measureFailure(attempt, method: method, policy: policy, metrics: context.metrics)
    }

    /// Clears the channel's failures after a correct proof (the reservation counted it as a failure).
    func recordSuccess(_ attempt: Attempt, user: User, kind: String) async throws {
        context.metrics.verification(kind: kind, outcome: .accept)
        try await clear(userID: try user.requireID(), channel: attempt.channel)
        if attempt.channel == .signIn { user.secondFactorFailures = 0 }
    }

    /// Clears the sign-in counter after a proof that was not reserved through this guard (an approved push,
    /// already bounded by its own limits).
    func recordSuccess(user: User, kind: String) async throws {
        context.metrics.verification(kind: kind, outcome: .accept)
        guard user.secondFactorFailures != 0 else { return }
        try await clear(userID: try user.requireID(), channel: .signIn)
        user.secondFactorFailures = 0
    }

    /// Throws when the account-wide lock stands in the way, without counting an attempt (passwordless sign-in,
    /// whose failures are counted per address because they name no user).
    func ensureNotLocked(user: User) async throws {
        let account = try await readCounter(userID: try user.requireID(), channel: .signIn)
        if let refusal = Self.refusal(account: nil, counter: account, channel: .signIn, policy: policy, now: context.now) {
            try await refuse(refusal, user: user)
        }
    }

    /// An administrator's reset: every channel starts again from zero.
    static func clearAll(userID: UUID, on db: any Database) async throws {
        try await db.sql.update(User.schema).set("second_factor_failures", to: 0).where("id", .equal, userID).run()
        try await db.sql.delete(from: CreateSecondFactorCounter.schema).where("user_id", .equal, userID).run()
    }

    // MARK: storage

    private func readCounter(userID: UUID, channel: SecondFactorChannel) async throws -> Counter {
        let sql = context.database.sql
        guard let name = channel.counterName else {
            return try await sql.raw(
                """
                SELECT second_factor_failures AS failures, second_factor_last_failure_at AS last_failure_at FROM \(ident: User.schema) WHERE id = \(bind: userID)
                """
            ).first(decoding: Counter.self) ?? .zero
        }
        return try await sql.raw(
            """
            SELECT failures, last_failure_at FROM \(ident: CreateSecondFactorCounter.schema) WHERE user_id = \(bind: userID) AND channel = \(bind: name)
            """
        ).first(decoding: Counter.self) ?? .zero
    }

    /// Raises the counter from `seen` to `seen + 1`; nil when another request changed it first.
    private func compareAndIncrement(userID: UUID, channel: SecondFactorChannel, seen: Int, now: Date) async throws -> Int? {
        let sql = context.database.sql
        guard let name = channel.counterName else {
            return try await sql.raw(
                """
                UPDATE \(ident: User.schema) SET second_factor_failures = second_factor_failures + 1, second_factor_last_failure_at = \(bind: now)
                WHERE id = \(bind: userID) AND second_factor_failures = \(bind: seen) RETURNING second_factor_failures AS failures
                """
            ).first(decoding: CountRow.self)?.failures
        }
        if seen == 0 {
            let inserted = try await sql.raw(
                """
                INSERT INTO \(ident: CreateSecondFactorCounter.schema) (user_id, channel, failures, last_failure_at)
                VALUES (\(bind: userID), \(bind: name), 1, \(bind: now)) ON CONFLICT (user_id, channel) DO NOTHING RETURNING failures
                """
            ).first(decoding: CountRow.self)
            if let inserted { return inserted.failures }
        }
        return try await sql.raw(
            """
            UPDATE \(ident: CreateSecondFactorCounter.schema) SET failures = failures + 1, last_failure_at = \(bind: now)
            WHERE user_id = \(bind: userID) AND channel = \(bind: name) AND failures = \(bind: seen) RETURNING failures
            """
        ).first(decoding: CountRow.self)?.failures
    }

    private func clear(userID: UUID, channel: SecondFactorChannel) async throws {
        let sql = context.database.sql
        guard let name = channel.counterName else {
            try await sql.raw(
                "UPDATE \(ident: User.schema) SET second_factor_failures = 0 WHERE id = \(bind: userID) AND second_factor_failures <> 0"
            ).run()
            return
        }
        try await sql.raw(
            "DELETE FROM \(ident: CreateSecondFactorCounter.schema) WHERE user_id = \(bind: userID) AND channel = \(bind: name)"
        ).run()
    }

    /// Audits and measures a refused attempt, then throws it.
    private func refuse(_ refusal: Refusal, user: User) async throws -> Never {
        context.metrics.verification(kind: "any", outcome: .locked)
        if let (type, details) = refusal.event {
            try await context.audit(type, practiceID: user.$practice.id, actorID: user.id, details: details)
        }
        throw refusal.error(now: context.now)
    }
}

// MARK: the rules, without storage

extension SecondFactorGuard {
    /// A channel's count of consecutive failures, as the lockout rules read it.
    struct Counter: Decodable, Sendable {
        var failures: Int
        var lastFailureAt: Date?

        static let zero = Counter(failures: 0, lastFailureAt: nil)

        enum CodingKeys: String, CodingKey {
            case failures
            case lastFailureAt = "last_failure_at"
        }
    }

    /// What stands in the way of an attempt: the decision, and the channel whose counter made it.
    struct Refusal: Sendable {
        var decision: SecondFactorLockoutPolicy.Decision
        var channel: SecondFactorChannel
        var failures: Int

        /// The audit event a refusal records; nil for a lock that only an administrator ends (recorded when it began).
        var event: (AuditEventType, [String: String])? {
            switch decision {
            case .allowed, .lockedUntilReset: nil
            case .wait: (.secondFactorThrottled, ["failures": String(failures), "channel": channel.auditName])
            case .locked: (.secondFactorThrottled, ["failures": String(failures), "locked": "true", "channel": channel.auditName])
            }
        }

        /// How the refusal is reported to the caller.
        func error(now: Date) -> SignInError {
            switch decision {
            case .allowed, .lockedUntilReset: .lockedUntilReset
            case .wait(let until): .wait(seconds: max(1, Int(until.timeIntervalSince(now).rounded(.up))))
            case .locked(let until): .locked(minutes: max(1, Int((until.timeIntervalSince(now) / 60).rounded(.up))))
            }
        }
    }

    /// Whether an attempt on `channel` may be made now, from its counter and, for every channel but sign-in, the
    /// account's (the sign-in channel's) counter: the account's locks hold everywhere, its short waits between
    /// guesses do not (a guesser at the web sign-in must not slow down the user's VPN). Nil when it may.
    static func refusal(
        account: Counter?, counter: Counter, channel: SecondFactorChannel, policy: SecondFactorLockoutPolicy, now: Date
    ) -> Refusal? {
        accountRefusal(account, channel: channel, policy: policy, now: now)
            ?? channelRefusal(counter, channel: channel, policy: policy, now: now)
    }

    /// The account-wide part of ``refusal(account:counter:channel:policy:now:)``: a lock on the sign-in counter,
    /// for a channel other than sign-in.
    static func accountRefusal(
        _ account: Counter?, channel: SecondFactorChannel, policy: SecondFactorLockoutPolicy, now: Date
    ) -> Refusal? {
        guard channel != .signIn, let account else { return nil }
        let decision = policy.decision(consecutiveFailures: account.failures, lastFailureAt: account.lastFailureAt, now: now)
        switch decision {
        case .allowed, .wait: return nil
        case .locked, .lockedUntilReset: return Refusal(decision: decision, channel: .signIn, failures: account.failures)
        }
    }

    /// The channel's own part of ``refusal(account:counter:channel:policy:now:)``: any wait or lock on its counter.
    static func channelRefusal(
        _ counter: Counter, channel: SecondFactorChannel, policy: SecondFactorLockoutPolicy, now: Date
    ) -> Refusal? {
        let decision = policy.decision(consecutiveFailures: counter.failures, lastFailureAt: counter.lastFailureAt, now: now)
        return decision == .allowed ? nil : Refusal(decision: decision, channel: channel, failures: counter.failures)
    }

    /// The audit events of a reserved attempt that failed: the failure itself (when the channel does not write a
    /// rejection of its own) and the lock it starts, if any.
    static func failureEvents(_ attempt: Attempt, method: String, auditing: Bool, policy: SecondFactorLockoutPolicy) -> [(
        AuditEventType, [String: String]
    )] {
        var events: [(AuditEventType, [String: String])] = []
        if auditing {
            events.append(
                (
                    .secondFactorFailed,
                    ["method": method, "consecutive_failures": String(attempt.failures), "channel": attempt.channel.auditName]
                ))
        }
        if policy.startsLock(atFailures: attempt.failures) {
            let permanent = attempt.failures >= policy.permanentLockAt
            events.append(
                (
                    permanent ? .secondFactorLockedPermanently : .secondFactorLocked,
                    [
                        "consecutive_failures": String(attempt.failures), "channel": attempt.channel.auditName,
                        "minutes": permanent ? "until reset" : String(Int(policy.lockDuration / 60)),
                    ]
                ))
        }
        return events
    }

    /// Counts a failed attempt, and the lock it starts, in the metrics.
    static func measureFailure(_ attempt: Attempt, method: String, policy: SecondFactorLockoutPolicy, metrics: TwofoldMetrics) {
        metrics.verification(kind: method, outcome: .reject)
        if policy.startsLock(atFailures: attempt.failures) { metrics.lockout() }
    }
}

extension SecondFactorChannel {
    var auditName: String {
        switch self {
        case .signIn: "sign_in"
        case .validate: "validate"
        case .stepUp: "step_up"
        case .radius: "radius"
        }
    }
}

/// Consecutive second-factor failures per user and channel (every channel but sign-in, which lives on the user row).
struct CreateSecondFactorCounter: AsyncMigration {
    static let schema = "second_factor_counters"

    func prepare(on database: any Database) async throws {
        try await database.schema(Self.schema)
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("channel", .string, .required)
            .field("failures", .int, .required)
            .field("last_failure_at", .datetime)
            .unique(on: "user_id", "channel")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(Self.schema).delete()
    }
}
