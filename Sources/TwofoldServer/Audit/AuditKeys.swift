import Crypto
import Fluent
import Foundation
import NIOConcurrencyHelpers
import TwofoldCore
import Vapor

/// The keys of the audit log, derived from the sealing keys so nothing new has to be backed up: an HMAC key that
/// links the events and an Ed25519 key that signs checkpoints. Each carries an id (a fingerprint) stored beside what
/// it made, so events and checkpoints made before a rotation still verify with a previous sealing key.
struct AuditKeys: Sendable {
    static let macInfo = "twofold-audit-v1"
    static let signingInfo = "twofold-audit-checkpoint-v1"

    let macKeyID: String
    let macKey: SymmetricKey
    let macKeys: [String: SymmetricKey]
    let signingKey: Curve25519.Signing.PrivateKey
    let signingKeyID: String
    let publicKeys: [String: Curve25519.Signing.PublicKey]

    init(sealer: SecretSealer) {
        let macs = sealer.derivedKeys(info: Self.macInfo).map { (Self.keyID($0), $0) }
        macKeyID = macs[0].0
        macKey = macs[0].1
        macKeys = Dictionary(macs, uniquingKeysWith: { first, _ in first })
        let signers = sealer.derivedKeys(info: Self.signingInfo).compactMap { key in
            key.withUnsafeBytes { try? Curve25519.Signing.PrivateKey(rawRepresentation: Array($0)) }
        }
        // 32 bytes always make an Ed25519 private key.
        guard let current = signers.first else { preconditionFailure("an HKDF output is a valid Ed25519 seed") }
        signingKey = current
        signingKeyID = Self.keyID(current.publicKey)
        publicKeys = Dictionary(signers.map { (Self.keyID($0.publicKey), $0.publicKey) }, uniquingKeysWith: { first, _ in first })
    }

    /// 16 hex digits of SHA-256("twofold-audit-key-id" ‖ 0x00 ‖ key): names the key without revealing it.
    static func keyID(_ key: SymmetricKey) -> String {
        key.withUnsafeBytes {
            TwofoldCore.Digest.hex(Array(SHA256.hash(data: Array("twofold-audit-key-id".utf8) + [0] + Array($0)).prefix(8)))
        }
    }

    /// 16 hex digits of SHA-256 of the raw public key: what an auditor compares with `twofold audit public-key`.
    static func keyID(_ key: Curve25519.Signing.PublicKey) -> String {
        TwofoldCore.Digest.hex(Array(SHA256.hash(data: key.rawRepresentation).prefix(8)))
    }

    func mac(_ message: String, keyID: String) -> String? {
        guard let key = macKeys[keyID] else { return nil }
        return TwofoldCore.Digest.hex(Array(HMAC<SHA256>.authenticationCode(for: Array(message.utf8), using: key)))
    }
}

/// How often checkpoints are written and where the external copy goes.
struct AuditCheckpointPolicy: Sendable {
    /// A checkpoint after this many events…
    var every: Int64 = 100
    /// …or when an event comes this many seconds after the last checkpoint (and on the maintenance task's round).
    var interval: TimeInterval = 60
    /// `audit-checkpoints.jsonl` in the data directory; `nil` keeps checkpoints in the database only (tests).
    var file: String?
    /// How many chains this process appends to, taken in turn: appends on different chains never wait on each
    /// other's head row. 1 on SQLite (one connection writes anyway), 4 on PostgreSQL.
    var writers: Int = 1
}

/// The audit keys and checkpoint policy, carried in the database configuration (as a model middleware that passes
/// everything through) so that every `AuditLog.append(on:)`, in or out of a transaction, finds them from the
/// database handle alone.
final class AuditContext: AnyModelMiddleware, Sendable {
    private struct State {
        var keys: AuditKeys
        var policy: AuditCheckpointPolicy
        /// Per chain, the highest checkpoint already published, so each is published once; `nil` until read.
        var published: [String: Int64]?
        /// This process's chains, registered at their first event.
        var writers: [String] = []
        var turn = 0
    }

    private let state: NIOLockedValueBox<State>
    let logger: Logger
    /// Which process writes this process's chains ("host pid 1234"), stored in the registry.
    let instance: String
    /// The chain of `/api/v1/validate`'s verifications (``VerificationWriter``), which only that writer appends to, so
    /// its batches never wait on another transaction's head row.
    let verificationChain = AuditChainRegistry.newID()
    /// Emails the user about security events (Mail/SecurityNotifications.swift), in the event's transaction.
    let notifier: SecurityNotifier?
    /// Where published checkpoints go besides the file and the log (webhook, syslog); `nil` when nowhere.
    var shipping: AuditShipping? {
        get { shippingBox.withLockedValue { $0 } }
        set { shippingBox.withLockedValue { $0 = newValue } }
    }
    private let shippingBox = NIOLockedValueBox<AuditShipping?>(nil)
    /// The group commit of each of this process's chains, made at its first append outside a transaction.
    private let committers = NIOLockedValueBox<[String: AuditGroupCommit]>([:])

    /// The group commit that writes `chain`'s events appended outside a transaction.
    func groupCommit(for chain: String) -> AuditGroupCommit {
        committers.withLockedValue { committers in
            if let existing = committers[chain] { return existing }
            let made = AuditGroupCommit(chain: chain)
            committers[chain] = made
            return made
        }
    }

    init(keys: AuditKeys, policy: AuditCheckpointPolicy, logger: Logger, notifier: SecurityNotifier? = nil) {
        state = NIOLockedValueBox(State(keys: keys, policy: policy))
        self.logger = logger
        instance = AuditChainRegistry.instanceLabel()
        self.notifier = notifier
    }

    var keys: AuditKeys { state.withLockedValue { $0.keys } }
    var policy: AuditCheckpointPolicy {
        get { state.withLockedValue { $0.policy } }
        set { state.withLockedValue { $0.policy = newValue } }
    }

    /// Re-derives the keys after the sealing keys changed (tests rotate them in place).
    func use(sealer: SecretSealer) { state.withLockedValue { $0.keys = AuditKeys(sealer: sealer) } }

    /// Runs `body` with the highest checkpoint seq already published per chain, under the lock; `body` returns the new map.
    func publishing(_ body: ([String: Int64]?) throws -> [String: Int64]?) rethrows {
        try state.withLockedValue { $0.published = try body($0.published) }
    }

    /// The chain the next event of this process goes to: this process's chains in turn.
    func writerChain() -> String {
        state.withLockedValue { state in
            let count = max(1, state.policy.writers)
            while state.writers.count < count { state.writers.append(AuditChainRegistry.newID()) }
            let index = state.turn % count
            state.turn = (state.turn + 1) % count
            return state.writers[index]
        }
    }

    /// The chains this process has appended to (or will).
    var writerChains: [String] { state.withLockedValue { Array($0.writers.prefix(max(1, $0.policy.writers))) } }

    func handle(_ event: ModelEvent, _ model: any AnyModel, on db: any Database, chainingTo next: any AnyModelResponder) -> EventLoopFuture<
        Void
    > {
        next.handle(event, model, on: db)
    }

    /// Installs the context on the default database, with keys from the application's sealer.
    static func install(on app: Application) {
        var policy = AuditCheckpointPolicy()
        if case .postgres = app.twofold.configuration.storage { policy.writers = 4 }
        if app.environment != .testing {
            policy.file = (app.twofold.configuration.dataDirectory as NSString).appendingPathComponent("audit-checkpoints.jsonl")
        }
        let context = AuditContext(keys: AuditKeys(sealer: app.twofold.sealer), policy: policy, logger: app.logger, notifier: .live(app))
        context.shipping = AuditShipping.live(app, targets: app.twofold.configuration.auditShipping)
        app.databases.middleware.use(context)
    }

    static func of(_ database: any Database) throws -> AuditContext {
        guard let context = database.context.configuration.middleware.lazy.compactMap({ $0 as? AuditContext }).first else {
            throw Abort(.internalServerError, reason: "The audit keys are not configured on this database.")
        }
        return context
    }
}

extension Application {
    /// The audit keys and checkpoint policy of the default database.
    var auditContext: AuditContext {
        get throws { try AuditContext.of(db) }
    }
}
