import Fluent
import NIOConcurrencyHelpers
import TwofoldCore
import Vapor

/// Creating, revoking and checking API keys.
struct APIKeyService {
    let database: any Database
    let now: Date
    /// Who creates or revokes keys, for the audit log: the signed-in administrator, or nobody for the CLI.
    var actorID: UUID? = nil
    /// The administrator's address, or "cli" for `twofold api-key`.
    var address = "cli"
    var userAgent = ""
    /// This process's cache of active keys, which forgets a key the moment it is revoked.
    var cache: APIKeyCache? = nil
    /// How long a key's name may be (the administrator's page and the CLI check the same number).
    var fields: TwofoldPolicy.Fields = .standard

    /// The service as an administrator's request uses it.
    init(request: Request, actorID: UUID) {
        self.init(
            database: request.db, now: request.now, actorID: actorID, address: request.clientIP, userAgent: request.userAgent,
            cache: request.application.apiKeyCache)
        fields = request.policy.fields
    }

    init(
        database: any Database, now: Date, actorID: UUID? = nil, address: String = "cli", userAgent: String = "", cache: APIKeyCache? = nil
    ) {
        self.database = database
        self.now = now
        self.actorID = actorID
        self.address = address
        self.userAgent = userAgent
        self.cache = cache
    }

    struct Created {
        var record: APIKey
        /// The full key; shown once and never stored.
        var key: String
    }

    func create(practiceID: UUID, name rawName: String) async throws -> Created {
        let name = rawName.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...fields.integrationName).contains(name.count) else {
            throw Abort(.badRequest, reason: "Give the key a name of 1 to \(fields.integrationName) characters, e.g. \"EHR production\".")
        }
        guard try await Practice.find(practiceID, on: database) != nil else {
            throw Abort(.notFound, reason: "There is no practice with id \(practiceID).")
        }
        let key = APIKey.prefix + SecureRandom.token()
        let record = APIKey(
            practiceID: practiceID, name: name, hint: String(key.prefix(APIKey.prefix.count + 6)), keyHash: Digest.sha256Hex(key))
        try await record.create(on: database)
        try await AuditLog.append(
            AuditEntry(
                type: .apiKeyCreated, practiceID: practiceID, actorID: actorID, subjectID: actorID, ip: address, userAgent: userAgent,
                details: ["name": name, "key": record.hint + "…"]), on: database, now: now)
        return Created(record: record, key: key)
    }

    func revoke(id: UUID) async throws -> APIKey {
        guard let record = try await APIKey.find(id, on: database) else {
            throw Abort(.notFound, reason: "There is no API key with id \(id).")
        }
        guard record.revokedAt == nil else {
            cache?.forget(keyHash: record.keyHash)
            return record
        }
        record.revokedAt = now
        try await record.save(on: database)
        cache?.forget(keyHash: record.keyHash)
        try await AuditLog.append(
            AuditEntry(
                type: .apiKeyRevoked, practiceID: record.$practice.id, actorID: actorID, subjectID: actorID, ip: address,
                userAgent: userAgent,
                details: ["name": record.name, "key": record.hint + "…"]), on: database, now: now)
        return record
    }

    /// The stored hash of a bearer value, or nil when it cannot be a Twofold key.
    static func keyHash(of bearer: String) -> String? {
        guard bearer.hasPrefix(APIKey.prefix), bearer.utf8.count <= 100 else { return nil }
        return Digest.sha256Hex(bearer)
    }

    /// The active key with this hash, or nil for an unknown or revoked key (``APIKeyCache`` is the way in).
    func active(keyHash: String) async throws -> APIKey? {
        guard let record = try await APIKey.query(on: database).filter(\.$keyHash == keyHash).first(),
            record.revokedAt == nil
        else { return nil }
        return record
    }
}

/// Lets a request through only with an active API key, which it makes available as `request.apiKey`.
struct APIKeyGuard: AsyncMiddleware {
    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        guard let bearer = request.headers.bearerAuthorization?.token else {
            return APIError.response(
                .unauthorized, "Send the practice's API key as Authorization: Bearer tfk_… (create one with `twofold api-key create`).")
        }
        guard let key = try await request.application.apiKeyCache.active(bearer: bearer, database: request.db, now: request.now) else {
            return APIError.response(.unauthorized, "The API key is not valid or has been revoked.")
        }
        request.apiKey = key
        return try await next.respond(to: request)
    }
}

extension Request {
    private struct APIKeyStorage: StorageKey { typealias Value = APIKey }

    var apiKey: APIKey? {
        get { storage[APIKeyStorage.self] }
        set { storage[APIKeyStorage.self] = newValue }
    }
}

/// Active API keys by hash, remembered for a few seconds so a busy integration does not look its key up on every
/// call. A key revoked through this process stops working at once; one revoked on another instance (or with the
/// CLI) stops working here within `lifetime`.
final class APIKeyCache: Sendable {
    static let lifetime: TimeInterval = 2

    private struct Entry: Sendable {
        var id: UUID
        var practiceID: UUID
        var name: String
        var hint: String
        var expires: Date
    }

    private let entries = NIOLockedValueBox<[String: Entry]>([:])
    /// Keys revoked through this process: never cached again, even by a lookup that was already under way.
    private let revoked = NIOLockedValueBox<Set<String>>([])

    /// Drops a revoked key at once.
    func forget(keyHash: String) {
        revoked.withLockedValue { _ = $0.insert(keyHash) }
        entries.withLockedValue { _ = $0.removeValue(forKey: keyHash) }
    }

    func active(bearer: String, database: any Database, now: Date) async throws -> APIKey? {
        guard let hash = APIKeyService.keyHash(of: bearer) else { return nil }
        if revoked.withLockedValue({ $0.contains(hash) }) { return nil }
        if let entry = entries.withLockedValue({ $0[hash] }), entry.expires > now {
            let key = APIKey(practiceID: entry.practiceID, name: entry.name, hint: entry.hint, keyHash: hash)
            key.id = entry.id
            return key
        }
        guard let key = try await APIKeyService(database: database, now: now).active(keyHash: hash) else {
            entries.withLockedValue { _ = $0.removeValue(forKey: hash) }
            return nil
        }
        let entry = Entry(
            id: try key.requireID(), practiceID: key.$practice.id, name: key.name, hint: key.hint,
            expires: now.addingTimeInterval(Self.lifetime))
        guard !revoked.withLockedValue({ $0.contains(hash) }) else { return nil }
        entries.withLockedValue { cache in
            if cache.count > 10_000 { cache.removeAll() }
            cache[hash] = entry
        }
        return key
    }
}

extension Application {
    private struct APIKeyCacheKey: StorageKey { typealias Value = APIKeyCache }

    /// Installed by `configure`, before the server starts.
    var apiKeyCache: APIKeyCache {
        get { storage[APIKeyCacheKey.self] ?? APIKeyCache() }
        set { storage[APIKeyCacheKey.self] = newValue }
    }
}
