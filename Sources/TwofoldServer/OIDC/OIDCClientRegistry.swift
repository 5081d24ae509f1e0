import Fluent
import Foundation
import TwofoldCore
import Vapor

/// What an administrator can run into while registering applications (pages, API and CLI alike).
enum OIDCClientError: AbortError, Equatable {
    case invalid(String)
    case notFound
    case practiceNotFound
    case publicClientHasNoSecret

    var status: HTTPResponseStatus {
        switch self {
        case .invalid: .badRequest
        case .notFound, .practiceNotFound: .notFound
        case .publicClientHasNoSecret: .conflict
        }
    }

    var reason: String {
        switch self {
        case .invalid(let reason): reason
        case .notFound: "There is no application with that client_id in this practice."
        case .practiceNotFound: "There is no practice with that id."
        case .publicClientHasNoSecret: "A public application has no secret to rotate: it proves itself with PKCE instead."
        }
    }
}

/// What an administrator states about an application when registering it.
struct OIDCClientInput: Sendable {
    var name: String
    var redirectURIs: [String]
    var postLogoutRedirectURIs: [String] = []
    var backchannelLogoutURI: String? = nil
    var startURL: String? = nil
    /// A native or single-page application that cannot keep a secret: no secret, PKCE required.
    var isPublic = false
    var idTokenAlgorithm = "RS256"
    var allowOfflineAccess = false
}

/// A change to a registered application; nil leaves a field as it is, and an empty string clears an optional URI.
struct OIDCClientChange: Sendable {
    var name: String? = nil
    var redirectURIs: [String]? = nil
    var postLogoutRedirectURIs: [String]? = nil
    var backchannelLogoutURI: String? = nil
    var startURL: String? = nil
    var idTokenAlgorithm: String? = nil
    var allowOfflineAccess: Bool? = nil
}

/// Registering, changing and removing a practice's OpenID Connect clients. Every change is audited with its actor;
/// a client secret is returned once and only its hash is kept.
struct OIDCClientRegistry {
    /// Who makes a change, for the audit log.
    struct Actor: Sendable {
        var userID: UUID?
        var ip: String
        var userAgent: String = ""

        static let cli = Actor(userID: nil, ip: "cli")
    }

    struct Created {
        var client: OIDCClient
        /// The client secret, to be shown once; nil for a public client.
        var secret: String?
    }

    static let nameLength = 1...TwofoldPolicy.standard.fields.integrationName
    static let redirectURICount = 1...10
    static let postLogoutRedirectURICount = 0...10
    static let maximumURILength = 2000
    static let idTokenAlgorithms = ["RS256", "ES256"]

    let database: any Database
    let now: Date
    var actor: Actor = .cli

    // MARK: reading

    func list(practiceID: UUID) async throws -> [OIDCClient] {
        try await OIDCClient.query(on: database).filter(\.$practice.$id == practiceID).sort(\.$createdAt).all()
    }

    /// The client with this `client_id`, if any; restricted to one practice when `practiceID` is given.
    func find(clientID: String, practiceID: UUID? = nil) async throws -> OIDCClient? {
        var query = OIDCClient.query(on: database).filter(\.$clientID == clientID)
        if let practiceID { query = query.filter(\.$practice.$id == practiceID) }
        return try await query.first()
    }

    /// Like ``find(clientID:practiceID:)`` but throws ``OIDCClientError/notFound``.
    func require(clientID: String, practiceID: UUID? = nil) async throws -> OIDCClient {
        guard let client = try await find(clientID: clientID, practiceID: practiceID) else { throw OIDCClientError.notFound }
        return client
    }

    // MARK: changing

    func create(practiceID: UUID, _ input: OIDCClientInput) async throws -> Created {
        guard try await Practice.find(practiceID, on: database) != nil else { throw OIDCClientError.practiceNotFound }
        var problems: [String] = []
        let name = Self.validName(input.name, problems: &problems)
        let redirects = Self.validRedirectURIs(
            input.redirectURIs, label: "redirect URI", count: Self.redirectURICount,
            isPublic: input.isPublic, problems: &problems)
        let postLogout = Self.validRedirectURIs(
            input.postLogoutRedirectURIs, label: "post-logout redirect URI",
            count: Self.postLogoutRedirectURICount, isPublic: input.isPublic, problems: &problems)
        let backchannel = Self.validBackchannelURI(input.backchannelLogoutURI, problems: &problems)
        let start = Self.validStartURL(input.startURL, problems: &problems)
        let algorithm = Self.validAlgorithm(input.idTokenAlgorithm, problems: &problems)
        guard problems.isEmpty else { throw Self.invalid("Cannot register the application", problems) }

        let secret = input.isPublic ? nil : OIDCClient.newSecret()
        let client = OIDCClient(
            practiceID: practiceID, clientID: OIDCClient.newClientID(), name: name, secretHash: secret?.hash,
            redirectURIs: redirects, postLogoutRedirectURIs: postLogout, backchannelLogoutURI: backchannel,
            startURL: start, idTokenAlgorithm: algorithm, allowOfflineAccess: input.allowOfflineAccess, now: now)
        try await database.transaction { db in
            try await client.create(on: db)
            try await audit(
                .oidcClientCreated, client,
                extra: [
                    "type": input.isPublic ? "public" : "confidential", "redirect_uris": redirects.joined(separator: " "),
                    "id_token_alg": algorithm, "allow_offline_access": String(input.allowOfflineAccess),
                ], on: db)
        }
        return Created(client: client, secret: secret?.secret)
    }

    func update(clientID: String, practiceID: UUID? = nil, _ change: OIDCClientChange) async throws -> OIDCClient {
        let client = try await require(clientID: clientID, practiceID: practiceID)
        var problems: [String] = []
        let name = change.name.map { Self.validName($0, problems: &problems) }
        let redirects = change.redirectURIs.map {
            Self.validRedirectURIs($0, label: "redirect URI", count: Self.redirectURICount, isPublic: client.isPublic, problems: &problems)
        }
        let postLogout = change.postLogoutRedirectURIs.map {
            Self.validRedirectURIs(
                $0, label: "post-logout redirect URI", count: Self.postLogoutRedirectURICount,
                isPublic: client.isPublic, problems: &problems)
        }
        let backchannel = change.backchannelLogoutURI.map { Self.validBackchannelURI($0, problems: &problems) }
        let start = change.startURL.map { Self.validStartURL($0, problems: &problems) }
        let algorithm = change.idTokenAlgorithm.map { Self.validAlgorithm($0, problems: &problems) }
        guard problems.isEmpty else { throw Self.invalid("The application was not saved", problems) }

        var changed: [String] = []
        func apply<T: Equatable>(_ key: String, _ value: T?, _ path: ReferenceWritableKeyPath<OIDCClient, T>) {
            guard let value, client[keyPath: path] != value else { return }
            client[keyPath: path] = value
            changed.append(key)
        }
        apply("name", name, \.name)
        apply("redirect_uris", redirects, \.redirectURIs)
        apply("post_logout_redirect_uris", postLogout, \.postLogoutRedirectURIs)
        apply("backchannel_logout_uri", backchannel, \.backchannelLogoutURI)
        apply("start_url", start, \.startURL)
        apply("id_token_alg", algorithm, \.idTokenAlgorithm)
        apply("allow_offline_access", change.allowOfflineAccess, \.allowOfflineAccess)
        guard !changed.isEmpty else { return client }
        client.updatedAt = now
        let changedFields = changed.joined(separator: ", ")
        try await database.transaction { db in
            try await client.save(on: db)
            try await audit(.oidcClientUpdated, client, extra: ["changed": changedFields], on: db)
        }
        return client
    }

    /// Gives a confidential client a new secret; the old one stops working at once.
    /// - Returns: the client and its new secret, to be shown once.
    func rotateSecret(clientID: String, practiceID: UUID? = nil) async throws -> (client: OIDCClient, secret: String) {
        let client = try await require(clientID: clientID, practiceID: practiceID)
        guard !client.isPublic else { throw OIDCClientError.publicClientHasNoSecret }
        let secret = OIDCClient.newSecret()
        client.secretHash = secret.hash
        client.updatedAt = now
        try await database.transaction { db in
            try await client.save(on: db)
            try await audit(.oidcClientSecretRotated, client, on: db)
        }
        return (client, secret.secret)
    }

    /// Stops the application signing anyone in. Its outstanding access and refresh tokens are revoked too, so that
    /// introspection calls them inactive and enabling it again does not bring them back.
    func disable(clientID: String, practiceID: UUID? = nil) async throws -> OIDCClient {
        let client = try await require(clientID: clientID, practiceID: practiceID)
        guard client.enabled else { return client }
        client.enabled = false
        client.updatedAt = now
        let id = try client.requireID()
        try await database.transaction { db in
            try await client.save(on: db)
            let revoked = try await OIDCToken.query(on: db).filter(\.$client.$id == id).filter(\.$revokedAt == nil).count()
            try await OIDCToken.query(on: db).filter(\.$client.$id == id).filter(\.$revokedAt == nil).set(\.$revokedAt, to: now).update()
            try await audit(.oidcClientDisabled, client, extra: ["tokens_revoked": String(revoked)], on: db)
        }
        return client
    }

    func enable(clientID: String, practiceID: UUID? = nil) async throws -> OIDCClient {
        let client = try await require(clientID: clientID, practiceID: practiceID)
        guard !client.enabled else { return client }
        client.enabled = true
        client.updatedAt = now
        try await database.transaction { db in
            try await client.save(on: db)
            try await audit(.oidcClientEnabled, client, on: db)
        }
        return client
    }

    /// Removes the application with its codes, tokens and sessions (the schema cascades); the audit events stay.
    @discardableResult
    func delete(clientID: String, practiceID: UUID? = nil) async throws -> OIDCClient {
        let client = try await require(clientID: clientID, practiceID: practiceID)
        try await database.transaction { db in
            try await client.delete(on: db)
            try await audit(.oidcClientDeleted, client, on: db)
        }
        return client
    }

    private func audit(_ type: AuditEventType, _ client: OIDCClient, extra: [String: String] = [:], on db: any Database) async throws {
        var details = ["client": client.name, "client_id": client.clientID]
        details.merge(extra) { current, _ in current }
        try await AuditLog.append(
            AuditEntry(
                type: type, practiceID: client.$practice.id, actorID: actor.userID, subjectID: actor.userID,
                ip: actor.ip, userAgent: actor.userAgent, details: details), on: db, now: now)
    }

    // MARK: validation

    private static func invalid(_ lead: String, _ problems: [String]) -> OIDCClientError {
        .invalid(lead + ": " + problems.joined(separator: "; ") + ".")
    }

    static func validName(_ raw: String, problems: inout [String]) -> String {
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        if !nameLength.contains(name.count) {
            problems.append("the name must be \(nameLength.lowerBound) to \(nameLength.upperBound) characters")
        }
        return name
    }

    static func validAlgorithm(_ raw: String, problems: inout [String]) -> String {
        let algorithm = raw.trimmingCharacters(in: .whitespaces).uppercased()
        if !idTokenAlgorithms.contains(algorithm) { problems.append("the id token algorithm must be RS256 or ES256") }
        return algorithm
    }

    /// Redirect and post-logout redirect URIs: trimmed, empty lines dropped, duplicates removed, each checked.
    static func validRedirectURIs(_ raw: [String], label: String, count: ClosedRange<Int>, isPublic: Bool, problems: inout [String])
        -> [String]
    {
        var uris: [String] = []
        for uri in raw.map({ $0.trimmingCharacters(in: .whitespacesAndNewlines) }) where !uri.isEmpty && !uris.contains(uri) {
            uris.append(uri)
        }
        if !count.contains(uris.count) {
            problems.append(
                count.lowerBound == 0
                    ? "give at most \(count.upperBound) \(label)s"
                    : "give \(count.lowerBound) to \(count.upperBound) \(label)s")
        }
        for uri in uris {
            if let problem = redirectURIProblem(uri, isPublic: isPublic) { problems.append("the \(label) \(quoted(uri)) \(problem)") }
        }
        return uris
    }

    /// Why a redirect URI is refused (RFC 6749 §3.1.2, RFC 8252 §7 and §8.3), or nil when it is acceptable.
    static func redirectURIProblem(_ uri: String, isPublic: Bool) -> String? {
        if let problem = commonProblem(uri) { return problem }
        guard let components = URLComponents(string: uri), let scheme = components.scheme?.lowercased() else {
            return "must be an absolute URI, e.g. https://ehr.example.org/oidc/callback"
        }
        switch scheme {
        case "https":
            return webProblem(components)
        case "http":
            if let problem = webProblem(components) { return problem }
            return isLoopback(components.host ?? "") ? nil : "must use https (http only for localhost, 127.0.0.1 or [::1])"
        default:
            guard scheme.contains(".") else {
                return
                    "must use https, http on a loopback address, or a private-use scheme in reverse-domain form (com.example.app:/callback)"
            }
            return isPublic ? nil : "uses a private-use scheme, which is for public (native) applications only"
        }
    }

    static func validBackchannelURI(_ raw: String?, problems: inout [String]) -> String? {
        guard let uri = raw?.trimmingCharacters(in: .whitespacesAndNewlines), !uri.isEmpty else { return nil }
        let problem: String? =
            commonProblem(uri)
            ?? {
                guard let components = URLComponents(string: uri), let scheme = components.scheme?.lowercased(),
                    ["https", "http"].contains(scheme)
                else { return "must be an https URL" }
                if let problem = webProblem(components) { return problem }
                return scheme == "https" || isLoopback(components.host ?? "")
                    ? nil : "must use https (http only for localhost, 127.0.0.1 or [::1])"
            }()
        if let problem { problems.append("the back-channel logout URI \(quoted(uri)) \(problem)") }
        return uri
    }

    static func validStartURL(_ raw: String?, problems: inout [String]) -> String? {
        guard let url = raw?.trimmingCharacters(in: .whitespacesAndNewlines), !url.isEmpty else { return nil }
        var problem: String?
        if url.count > maximumURILength || url.contains(where: { $0.isWhitespace }) {
            problem = "must be at most \(maximumURILength) characters without spaces"
        } else if let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
            ["https", "http"].contains(scheme),
            let host = components.host, !host.isEmpty
        {
            problem = nil
        } else {
            problem = "must be an http or https URL, e.g. https://ehr.example.org/"
        }
        if let problem { problems.append("the start URL \(quoted(url)) \(problem)") }
        return url
    }

    private static func commonProblem(_ uri: String) -> String? {
        if uri.count > maximumURILength { return "is longer than \(maximumURILength) characters" }
        if uri.contains(where: { $0.isWhitespace || $0.isNewline }) { return "must not contain spaces" }
        if uri.contains("#") { return "must not contain a fragment (#…)" }
        return nil
    }

    private static func webProblem(_ components: URLComponents) -> String? {
        guard let host = components.host, !host.isEmpty else { return "must name a host, e.g. https://ehr.example.org/callback" }
        if components.user != nil || components.password != nil { return "must not contain a user name or password" }
        return nil
    }

    /// localhost, 127.0.0.0/8 and ::1 (RFC 8252 §7.3; the host may come bracketed or not).
    static func isLoopback(_ rawHost: String) -> Bool {
        ClientAddress.isLoopbackHost(rawHost)
            || rawHost.lowercased().trimmingCharacters(in: CharacterSet(charactersIn: "[]")) == "0:0:0:0:0:0:0:1"
    }

    private static func quoted(_ uri: String) -> String {
        "\"" + (uri.count > 80 ? String(uri.prefix(77)) + "…" : uri) + "\""
    }
}

extension OIDCClientRegistry {
    /// The registry acting for the signed-in administrator of this request.
    init(request: Request, actorID: UUID?) {
        self.init(
            database: request.db, now: request.now,
            actor: Actor(userID: actorID, ip: request.clientIP, userAgent: request.headers.first(name: .userAgent) ?? ""))
    }
}
