/// Group commit: work that arrives while a batch is being written waits for the next batch and goes in with the
/// rest of it, so a burst costs one transaction instead of one per caller. Every caller resumes only after the
/// batch holding its work has been written, with its own result or the error that failed the whole batch.
///
/// The audit log's appends (``AuditGroupCommit``) and `/api/v1/validate`'s verifications (``VerificationWriter``)
/// both go through one.
actor BatchQueue<Item: Sendable, Output: Sendable> {
    /// Writes one batch and gives one result per item, in order; throwing fails every item of the batch.
    typealias Write = @Sendable ([Item]) async throws -> [Result<Output, any Error>]

    /// The most items one batch takes.
    let limit: Int
    private let write: Write
    private var waiting: [(item: Item, done: CheckedContinuation<Output, any Error>)] = []
    private var writing = false

    init(limit: Int, write: @escaping Write) {
        precondition(limit > 0)
        self.limit = limit
        self.write = write
    }

    /// Queues `item` and returns its result once the batch holding it has been written.
    func submit(_ item: Item) async throws -> Output {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<Output, any Error>) in
            waiting.append((item, done))
            if !writing {
                writing = true
                Task { await self.drain() }
            }
        }
    }

    /// Writes what is waiting, batch after batch, until nothing is.
    private func drain() async {
        while !waiting.isEmpty {
            let batch = Array(waiting.prefix(limit))
            waiting.removeFirst(batch.count)
            do {
                let results = try await write(batch.map(\.item))
                for (index, waiter) in batch.enumerated() {
                    waiter.done.resume(with: index < results.count ? results[index] : .failure(BatchQueueError.missingResult))
                }
            } catch {
                for waiter in batch { waiter.done.resume(throwing: error) }
            }
        }
        writing = false
    }
}

/// A batch's writer returned fewer results than it was given items (a programming error, reported to the callers
/// left without one rather than leaving them waiting).
enum BatchQueueError: Error {
    case missingResult
}
