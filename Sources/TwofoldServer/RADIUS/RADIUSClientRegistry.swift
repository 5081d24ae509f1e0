import Fluent
import Foundation
import NIOConcurrencyHelpers
import TwofoldCore
import Vapor

/// The practice's active RADIUS clients with their secrets opened, looked up by source address for every packet.
/// Reloaded from the database at most every few seconds (so a client added or revoked on another instance takes
/// effect there within that time) and at once in the process that changed them.
final class RADIUSClientRegistry: Sendable {
    struct Entry: Sendable {
        var id: UUID
        var practiceID: UUID
        var name: String
        var block: CIDRBlock
        var mode: RADIUSClient.Mode
        var secret: [UInt8]
        var pushTimeout: Int
        var roleAttribute: String?
    }

    static let refreshInterval: TimeInterval = 5
    private let state = NIOLockedValueBox<(entries: [Entry], loadedAt: Date?)>(([], nil))

    /// Forgets the loaded clients; the next packet reloads them.
    func invalidate() {
        state.withLockedValue { $0.loadedAt = nil }
    }

    /// The client whose address block holds `address` (the most specific block when several do), or nil.
    func client(for address: String, database: any Database, sealer: SecretSealer, now: Date) async throws -> Entry? {
        let cached = state.withLockedValue { current -> [Entry]? in
            guard let loaded = current.loadedAt, now.timeIntervalSince(loaded) < Self.refreshInterval, now >= loaded else { return nil }
            return current.entries
        }
        let entries: [Entry]
        if let cached {
            entries = cached
        } else {
            entries = try await load(database: database, sealer: sealer)
            state.withLockedValue { $0 = (entries, now) }
        }
        return entries.filter { $0.block.contains(address) }.max { $0.block.prefixLength < $1.block.prefixLength }
    }

    private func load(database: any Database, sealer: SecretSealer) async throws -> [Entry] {
        let clients = try await RADIUSClient.query(on: database).filter(\.$revokedAt == nil).all()
        return clients.compactMap { client in
            guard let id = client.id, let block = CIDRBlock(client.address),
                let secret = try? sealer.open(Array(client.sealedSecret), context: RADIUSClient.sealingContext(for: id))
            else { return nil }
            return Entry(
                id: id, practiceID: client.$practice.id, name: client.name, block: block, mode: client.mode, secret: secret,
                pushTimeout: client.pushTimeoutSeconds, roleAttribute: client.roleAttribute)
        }
    }
}

extension Application {
    private struct RADIUSClientsKey: StorageKey { typealias Value = RADIUSClientRegistry }

    var radiusClients: RADIUSClientRegistry {
        if let existing = storage[RADIUSClientsKey.self] { return existing }
        let registry = RADIUSClientRegistry()
        storage[RADIUSClientsKey.self] = registry
        return registry
    }
}
