import Fluent
import Foundation
import SQLKit
import TwofoldCore
import Vapor

/// The writer that judges `/api/v1/validate` codes, one per database: verifications that arrive while a batch is
/// being written wait for the next one, and each batch is judged and recorded in one transaction — the users and
/// their authenticator apps read with one query, the attempts reserved, the time steps claimed, the counters set or
/// cleared and the audit events appended together. A caller resumes only after the transaction holding its
/// effects has committed, so an accepted code never works twice and no answered verification lacks its audit event,
/// even after `kill -9`.
///
/// The rules are ``SecondFactorCheck``'s, taken from the same places (``SecondFactorGuard/refusal(account:counter:channel:policy:now:)``,
/// ``SecondFactorGuard/failureEvents(_:method:auditing:policy:)``, ``TOTPVerifier``): every attempt is reserved on
/// the API key's counter against the value its lockout decision was made on, before its code is looked at; the
/// account-wide lock holds; a time step is used once. Inside the batch the attempts are judged one after another in
/// arrival order, on counters the transaction has locked (SQLite: the one connection; PostgreSQL: the users' rows
/// and their factors, locked in id order), so a parallel burst evaluates no more codes than the policy allows one
/// after another, across instances too.
final class VerificationWriter: Sendable {
    /// The most verifications one transaction takes (one bound value each in the reads).
    static let batchLimit = 256

    /// One verification to judge.
    struct Item: Sendable {
        var context: ServiceContext
        var practiceID: UUID
        var apiKeyID: UUID
        var apiKeyName: String
        var usernameKey: String
        /// Already normalised (``SecondFactorCheck/normalize(_:)``).
        var code: String
    }

    private let queue = BatchQueue<Item, Bool>(limit: VerificationWriter.batchLimit) { items in
        let database = items[0].context.database
        var failure: any Error = Abort(.internalServerError)
        // A batch that loses a race with another instance (PostgreSQL: a deadlock or serialisation failure) is
        // judged again from scratch: nothing of it was committed.
        for _ in 0..<3 {
            do {
                let written = try await Batch.write(items, on: database)
                written.measure()
                if written.checkpointed { try? await AuditCheckpoint.publish(on: database) }
                return written.results
            } catch {
                failure = error
            }
        }
        throw failure
    }

    /// Queues `item` and returns whether its code was accepted, once the batch holding it has committed.
    func verify(_ item: Item) async throws -> Bool {
        try await queue.submit(item)
    }
}

extension VerificationWriter {
    /// One batch's judgement and its writes.
    enum Batch {
        /// What a committed batch did.
        struct Written {
            var results: [Result<Bool, any Error>]
            var checkpointed: Bool
            /// Metrics, counted once the batch committed (a batch judged again is not counted twice).
            var measurements: [@Sendable () -> Void]

            func measure() { for measurement in measurements { measurement() } }
        }

        /// A user of the batch with their authenticator apps, as the transaction read them.
        final class Account {
            let id: UUID
            /// The sign-in channel's counter (the account-wide lock).
            let signIn: SecondFactorGuard.Counter
            var factors: [Factor] = []

            init(id: UUID, signIn: SecondFactorGuard.Counter) {
                self.id = id
                self.signIn = signIn
            }
        }

        private struct UserRow: Decodable {
            var id: UUID
            var practice_id: UUID
            var username_key: String
            var second_factor_failures: Int
            var second_factor_last_failure_at: Date?
            var factor_id: UUID?
            var nickname: String?
            var sealed_secret: Data?
            var digits: Int?
            var algorithm: String?
            var period: Int?
            var last_used_step: Int64?
        }

        private struct CounterRow: Decodable {
            var user_id: UUID
            var channel: String
            var failures: Int
            var last_failure_at: Date?
        }

        private struct StepRow: Decodable {
            var id: UUID
            var last_used_step: Int64?
        }

        private struct Claimed: Decodable { var id: UUID }

        struct CounterKey: Hashable {
            var userID: UUID
            var channel: String
        }

        private struct UserKey: Hashable {
            var practiceID: UUID
            var usernameKey: String
        }

        /// Judges `items` in order and writes the outcome in one transaction.
        static func write(_ items: [Item], on database: any Database) async throws -> Written {
            let auditContext = try AuditContext.of(database)
            let chain = auditContext.verificationChain
            return try await database.transaction { db -> Written in
                let sql = db.sql
                let locking = db.isPostgres

                // The users and their authenticator apps, with the users' rows locked in id order on PostgreSQL. A row
                // of another practice than the item's is never matched to it (``UserKey``); the query names only
                // usernames, so that SQLite looks them up by the unique username index rather than walking the
                // practice's users by `users_practice_idx`.
                let usernameKeys = Array(Set(items.map(\.usernameKey)))
                let rows = try await sql.raw(
                    """
                    SELECT u.id, u.practice_id, u.username_key, u.second_factor_failures, u.second_factor_last_failure_at, f.id AS factor_id,
                    f.nickname, f.sealed_secret, f.digits, f.algorithm, f.period, f.last_used_step
                    FROM \(ident: User.schema) u LEFT JOIN \(ident: Factor.schema) f ON f.user_id = u.id AND f.status = 'active' AND f.kind = 'totp'
                    WHERE u.username_key IN (\(binds: usernameKeys))\(unsafeRaw: locking ? " ORDER BY u.id FOR UPDATE OF u" : "")
                    """
                ).all(decoding: UserRow.self)
                var accounts: [UserKey: Account] = [:]
                for row in rows {
                    let key = UserKey(practiceID: row.practice_id, usernameKey: row.username_key)
                    let account =
                        accounts[key]
                        ?? Account(
                            id: row.id,
                            signIn: .init(failures: row.second_factor_failures, lastFailureAt: row.second_factor_last_failure_at))
                    accounts[key] = account
                    if let id = row.factor_id, let nickname = row.nickname, let digits = row.digits, let algorithm = row.algorithm,
                        let period = row.period
                    {
                        let factor = Factor(
                            id: id, userID: row.id, kind: .totp, nickname: nickname, digits: digits, algorithm: algorithm, period: period)
                        factor.status = .active
                        factor.sealedSecret = row.sealed_secret
                        factor.lastUsedStep = row.last_used_step
                        account.factors.append(factor)
                    }
                }
                let userIDs = Array(Set(accounts.values.map(\.id)))
                var counters: [CounterKey: SecondFactorGuard.Counter] = [:]
                if !userIDs.isEmpty {
                    if locking {
                        // The factors' rows too, and their newest time steps: a sign-in on another instance may have
                        // claimed one since the read above.
                        let steps = try await sql.raw(
                            """
                            SELECT id, last_used_step FROM \(ident: Factor.schema) WHERE user_id IN (\(binds: userIDs)) AND status = 'active' AND kind = 'totp'
                            ORDER BY id FOR UPDATE
                            """
                        ).all(decoding: StepRow.self)
                        let newest = Dictionary(steps.map { ($0.id, $0.last_used_step) }, uniquingKeysWith: { first, _ in first })
                        for account in accounts.values {
                            for factor in account.factors { factor.lastUsedStep = newest[factor.id!] ?? factor.lastUsedStep }
                        }
                    }
                    let counterRows = try await sql.raw(
                        """
                        SELECT user_id, channel, failures, last_failure_at FROM \(ident: CreateSecondFactorCounter.schema) WHERE user_id IN (\(binds: userIDs))
                        """
                    ).all(decoding: CounterRow.self)
                    for row in counterRows {
                        counters[CounterKey(userID: row.user_id, channel: row.channel)] = .init(
                            failures: row.failures, lastFailureAt: row.last_failure_at)
                    }
                }

                // Each verification in turn, on the counters as the ones before it left them.
                var judge = Judge(counters: counters)
                var results: [Result<Bool, any Error>] = []
                for item in items {
                    let account = accounts[UserKey(practiceID: item.practiceID, usernameKey: item.usernameKey)]
                    do {
                        results.append(.success(try judge.verify(item, account: account)))
                    } catch {
                        results.append(.failure(error))
                    }
                }

                // The writes: time steps, counters, audit events.
                if !judge.claims.isEmpty {
                    var claim: SQLQueryString = "UPDATE \(ident: Factor.schema) SET last_used_step = CASE id"
                    for (factorID, step) in judge.claims { claim += " WHEN \(bind: factorID) THEN \(bind: step)" }
                    let ids = judge.claims.map(\.factor)
                    claim += " END, last_used_at = \(bind: items[items.count - 1].context.now) WHERE id IN (\(binds: ids)) RETURNING id"
                    let claimed = try await sql.raw(claim).all(decoding: Claimed.self)
                    // The rows are locked (or the connection is this process's only one), so every claim holds.
                    guard claimed.count == ids.count else {
                        throw Abort(.conflict, reason: "A time step was claimed by another verification.")
                    }
                }
                let changed = judge.changed
                let cleared = changed.filter { judge.counters[$0, default: .zero].failures == 0 }
                let raised = changed.filter { judge.counters[$0, default: .zero].failures > 0 }
                if !cleared.isEmpty {
                    var delete: SQLQueryString = "DELETE FROM \(ident: CreateSecondFactorCounter.schema) WHERE "
                    for (index, key) in cleared.enumerated() {
                        delete += "\(unsafeRaw: index == 0 ? "" : " OR ")(user_id = \(bind: key.userID) AND channel = \(bind: key.channel))"
                    }
                    try await sql.raw(delete).run()
                }
                if !raised.isEmpty {
                    var upsert: SQLQueryString =
                        "INSERT INTO \(ident: CreateSecondFactorCounter.schema) (user_id, channel, failures, last_failure_at) VALUES "
                    for (index, key) in raised.enumerated() {
                        let counter = judge.counters[key, default: .zero]
                        upsert +=
                            "\(unsafeRaw: index == 0 ? "" : ", ")(\(bind: key.userID), \(bind: key.channel), \(bind: counter.failures), \(bind: counter.lastFailureAt))"
                    }
                    upsert +=
                        " ON CONFLICT (user_id, channel) DO UPDATE SET failures = excluded.failures, last_failure_at = excluded.last_failure_at"
                    try await sql.raw(upsert).run()
                }
                var events: [AuditLog.Pending] = []
                for event in judge.events {
                    events.append(
                        AuditLog.Pending(
                            entry: event.entry, occurredMS: AuditLog.milliseconds(event.at),
                            notification: try await auditContext.notifier?.prepare(event.entry, on: db, now: event.at)))
                }
                let checkpointed = try await AuditLog.write(events, chain: chain, on: db)
                return Written(results: results, checkpointed: checkpointed, measurements: judge.measurements)
            }
        }
    }

    /// The rules applied to one verification after another, in memory, recording what to write.
    struct Judge {
        var counters: [Batch.CounterKey: SecondFactorGuard.Counter]
        /// Counters to write back, in the order they were first changed.
        private(set) var changed: [Batch.CounterKey] = []
        private var changedKeys: Set<Batch.CounterKey> = []
        private(set) var claims: [(factor: UUID, step: Int64)] = []
        private(set) var events: [(entry: AuditEntry, at: Date)] = []
        private(set) var measurements: [@Sendable () -> Void] = []

        init(counters: [Batch.CounterKey: SecondFactorGuard.Counter]) {
            self.counters = counters
        }

        mutating func verify(_ item: Item, account: Batch.Account?) throws -> Bool {
            let context = item.context
            let policy = context.policy.lockout
            let metrics = context.metrics
            func audit(_ type: AuditEventType, actor: UUID? = nil, subject: UUID?, _ details: [String: String]) {
                var details = details
                if type == .validateAccepted || type == .validateRejected { details["api_key"] = item.apiKeyName }
                events.append(
                    (
                        AuditEntry(
                            type: type, practiceID: item.practiceID, actorID: actor, subjectID: subject ?? actor, ip: context.caller.ip,
                            userAgent: context.caller.userAgent, details: details), context.now
                    ))
            }
            guard let account else {
                audit(.validateRejected, subject: nil, ["reason": "unknown_user", "username": String(item.usernameKey.prefix(64))])
                return false
            }
            let channel = SecondFactorChannel.validate(apiKeyID: item.apiKeyID)
            let key = Batch.CounterKey(userID: account.id, channel: channel.counterName!)
            let seen = counters[key, default: .zero]
            if let refusal = SecondFactorGuard.refusal(
                account: account.signIn, counter: seen, channel: channel, policy: policy, now: context.now)
            {
                measurements.append { metrics.verification(kind: "any", outcome: .locked) }
                if let (type, details) = refusal.event { audit(type, actor: account.id, subject: account.id, details) }
                audit(.validateRejected, subject: account.id, ["reason": "locked"])
                return false
            }
            // Reserved: counted as a failure until the code proves right.
            let attempt = SecondFactorGuard.Attempt(channel: channel, failures: seen.failures + 1)
            set(key, .init(failures: attempt.failures, lastFailureAt: context.now))

            let verifier = TOTPVerifier(database: context.database, sealer: context.sealer, now: context.now)
            var replayed = false
            for factor in account.factors {
                guard let step = try verifier.totp(for: factor).verify(item.code, at: context.now) else { continue }
                if let used = factor.lastUsedStep, used >= step {
                    replayed = true
                    continue
                }
                factor.lastUsedStep = step
                claims.removeAll { $0.factor == factor.id! }
                claims.append((factor.id!, step))
                set(key, .zero)
                measurements.append { metrics.verification(kind: "totp", outcome: .accept) }
                audit(.validateAccepted, subject: account.id, ["factor": factor.shortID])
                return true
            }
            let method = account.factors.count == 1 ? "totp" : "code"
            for (type, details) in SecondFactorGuard.failureEvents(
                attempt, method: replayed ? "totp" : method, auditing: false, policy: policy)
            {
                audit(type, actor: account.id, subject: account.id, details)
            }
            let measured = replayed ? "totp" : method
            measurements.append { SecondFactorGuard.measureFailure(attempt, method: measured, policy: policy, metrics: metrics) }
            if replayed {
                audit(.validateRejected, subject: account.id, ["reason": "replayed"])
            } else {
                audit(
                    .validateRejected, subject: account.id,
                    [
                        "reason": account.factors.isEmpty ? "no_authenticator" : "wrong_code",
                        "consecutive_failures": String(attempt.failures),
                    ])
            }
            return false
        }

        private mutating func set(_ key: Batch.CounterKey, _ counter: SecondFactorGuard.Counter) {
            if changedKeys.insert(key).inserted { changed.append(key) }
            counters[key] = counter
        }
    }
}

extension Application {
    private struct VerificationWriterKey: StorageKey { typealias Value = VerificationWriter }

    /// The writer of `/api/v1/validate`'s verifications on the default database; installed by `configure`.
    var verificationWriter: VerificationWriter {
        get { storage[VerificationWriterKey.self] ?? VerificationWriter() }
        set { storage[VerificationWriterKey.self] = newValue }
    }
}
