import Fluent
import Foundation

/// Group commit of audit events, one per chain this process writes: appends that arrive while a transaction is being
/// written wait for the next one and go in together (``BatchQueue``), so a burst of verifications costs one head-row
/// update, one INSERT and one commit instead of one of each per event. Every caller resumes only after the
/// transaction holding its event has committed, so an answer the caller sends afterwards never describes an event
/// that a crash could still lose.
final class AuditGroupCommit: Sendable {
    /// The most events one transaction takes (15 bound values each stay well under every driver's limit).
    static let batchLimit = 256

    let chain: String
    private let queue: BatchQueue<Append, Void>

    private struct Append: Sendable {
        var event: AuditLog.Pending
        var database: any Database
    }

    init(chain: String) {
        self.chain = chain
        queue = BatchQueue(limit: Self.batchLimit) { batch in
            // Every handle in the batch reaches the same database; the first one's connection writes it.
            let database = batch[0].database
            let checkpointed = try await AuditLog.write(batch.map(\.event), chain: chain, on: database)
            if checkpointed { try? await AuditCheckpoint.publish(on: database) }
            return Array(repeating: .success(()), count: batch.count)
        }
    }

    /// Queues `event` and returns once it has been committed; throws what the transaction that held it threw.
    func append(_ event: AuditLog.Pending, on database: any Database) async throws {
        try await queue.submit(Append(event: event, database: database))
    }
}
