import Fluent
import Foundation

/// Group commit of audit events, one per chain this process writes: appends that arrive while a transaction is being
/// written wait for the next one and go in together, so a burst of verifications costs one head-row update, one
/// INSERT and one commit instead of one of each per event. Every caller resumes only after the transaction holding
/// its event has committed, so an answer the caller sends afterwards never describes an event that a crash could
/// still lose.
actor AuditGroupCommit {
    /// The most events one transaction takes (15 bound values each stay well under every driver's limit).
    static let batchLimit = 256

    let chain: String
    private var waiting: [(event: AuditLog.Pending, database: any Database, done: CheckedContinuation<Void, any Error>)] = []
    private var writing = false

    init(chain: String) {
        self.chain = chain
    }

    /// Queues `event` and returns once it has been committed; throws what the transaction that held it threw.
    func append(_ event: AuditLog.Pending, on database: any Database) async throws {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
            waiting.append((event, database, done))
            if !writing {
                writing = true
                Task { await self.drain() }
            }
        }
    }

    /// Writes what is waiting, batch after batch, until nothing is.
    private func drain() async {
        while !waiting.isEmpty {
            let batch = Array(waiting.prefix(Self.batchLimit))
            waiting.removeFirst(batch.count)
            // Every handle in the batch reaches the same database; the first one's connection writes it.
            let database = batch[0].database
            do {
                let checkpointed = try await AuditLog.write(batch.map(\.event), chain: chain, on: database)
                if checkpointed { try? await AuditCheckpoint.publish(on: database) }
                for item in batch { item.done.resume() }
            } catch {
                for item in batch { item.done.resume(throwing: error) }
            }
        }
        writing = false
    }
}
