import Fluent
import NIOConcurrencyHelpers
import Vapor

/// While `twofold serve` runs, deletes every ten minutes what no check reads any more: throttling counters whose
/// window started a day ago (every window is an hour or shorter), and SMS codes and passkey challenges that expired
/// a day ago. Each instance does it; the deletes are idempotent. A second loop writes an audit checkpoint when events
/// came after the last one and it is older than the checkpoint interval (60 seconds), and publishes it to the file.
/// Each round also runs the daily EPCS analysis (``EPCSDailyAnalysis``), which does work once per UTC day.
final class MaintenanceTask: LifecycleHandler, Sendable {
    static let interval: Duration = .seconds(600)
    static let retention: TimeInterval = 24 * 60 * 60

    private let task = NIOLockedValueBox<Task<Void, Never>?>(nil)
    private let checkpointTask = NIOLockedValueBox<Task<Void, Never>?>(nil)

    /// Installs the task; it starts when the server boots (not for admin commands or tests, which prune by hand).
    static func install(on app: Application) {
        let command = app.environment.arguments.dropFirst().first ?? "serve"
        guard command == "serve", app.environment != .testing else { return }
        app.lifecycle.use(MaintenanceTask())
    }

    struct Pruned: Equatable {
        var throttleBuckets: Int
        var smsCodes: Int
        var webAuthnChallenges: Int
    }

    /// One round of pruning.
    @discardableResult
    static func prune(database: any Database, now: Date) async throws -> Pruned {
        let cutoff = now.addingTimeInterval(-retention)
        let buckets = try await ThrottleStore(database: database).prune(olderThan: cutoff)
        let codes = try await SMSCode.query(on: database).filter(\.$expiresAt < cutoff).count()
        try await SMSCode.query(on: database).filter(\.$expiresAt < cutoff).delete()
        let challenges = try await WebAuthnChallenge.query(on: database).filter(\.$expiresAt < cutoff).count()
        try await WebAuthnChallenge.query(on: database).filter(\.$expiresAt < cutoff).delete()
        try await SigningKeyStore.prune(on: database, now: now) // keys retired a day ago are no longer published
        return Pruned(throttleBuckets: buckets, smsCodes: codes, webAuthnChallenges: challenges)
    }

    func didBootAsync(_ application: Application) async throws {
        let handle = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.interval)
                if Task.isCancelled { break }
                do {
                    let pruned = try await Self.prune(database: application.db, now: application.twofold.clock.now())
                    application.logger.debug(
                        "Pruned stale rows",
                        metadata: [
                            "throttle_buckets": .stringConvertible(pruned.throttleBuckets),
                            "sms_codes": .stringConvertible(pruned.smsCodes),
                            "webauthn_challenges": .stringConvertible(pruned.webAuthnChallenges),
                        ])
                } catch {
                    application.logger.warning(
                        "Pruning stale rows failed; trying again in ten minutes",
                        metadata: ["error": .string(String(reflecting: type(of: error)))])
                }
                // §1311.150(b): yesterday's EPCS audit report, once per UTC day for each practice with EPCS grants.
                do {
                    let outcome = try await EPCSDailyAnalysis.run(database: application.db, now: application.twofold.clock.now())
                    if !outcome.analysed.isEmpty {
                        application.logger.info(
                            "EPCS daily analysis",
                            metadata: [
                                "day": .string(outcome.day), "practices": .stringConvertible(outcome.analysed.count),
                                "alerts": .stringConvertible(outcome.alerts),
                            ])
                    }
                } catch {
                    application.logger.warning(
                        "The daily EPCS analysis failed; trying again in ten minutes",
                        metadata: ["error": .string(String(reflecting: type(of: error)))])
                }
            }
        }
        task.withLockedValue { $0 = handle }
        // A quiet audit log is checkpointed too, and checkpoints made inside other transactions reach the file.
        let interval = (try? application.auditContext.policy.interval) ?? 60
        let checkpoints = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(interval))
                if Task.isCancelled { break }
                do {
                    try await AuditLog.checkpointIfDue(on: application.db, now: application.twofold.clock.now())
                } catch {
                    application.logger.warning(
                        "Writing an audit checkpoint failed; trying again",
                        metadata: ["error": .string(String(reflecting: type(of: error)))])
                }
            }
        }
        checkpointTask.withLockedValue { $0 = checkpoints }
    }

    func shutdownAsync(_ application: Application) async {
        task.withLockedValue { $0?.cancel() }
        checkpointTask.withLockedValue { $0?.cancel() }
    }
}
