import Fluent
import Foundation
import SQLKit
import TwofoldCore

/// An application of the practice (the EHR, the patient portal, the intranet) that signs its users in through
/// Twofold with OpenID Connect. Registered by the practice's administrators; a confidential client's secret is
/// shown once and only its SHA-256 is stored.
final class OIDCClient: Model, @unchecked Sendable {
    static let schema = "oidc_clients"

    @ID(key: .id) var id: UUID?
    @Parent(key: "practice_id") var practice: Practice
    /// The public `client_id` the application is configured with.
    @Field(key: "client_id") var clientID: String
    @Field(key: "name") var name: String
    /// SHA-256 (hex) of the client secret; nil for a public client (PKCE, no secret).
    @OptionalField(key: "secret_hash") var secretHash: String?
    /// Redirect URIs, matched exactly (no prefix or wildcard matching).
    @Field(key: "redirect_uris") var redirectURIs: [String]
    @Field(key: "post_logout_redirect_uris") var postLogoutRedirectURIs: [String]
    @OptionalField(key: "backchannel_logout_uri") var backchannelLogoutURI: String?
    /// Where the home page's link to this application leads (its login start page), when known.
    @OptionalField(key: "start_url") var startURL: String?
    /// `RS256` or `ES256`: the algorithm of this client's id tokens.
    @Field(key: "id_token_alg") var idTokenAlgorithm: String
    /// The client may receive refresh tokens (when it asks for the `offline_access` scope).
    @Field(key: "allow_offline_access") var allowOfflineAccess: Bool
    @Field(key: "enabled") var enabled: Bool
    @Field(key: "created_at") var createdAt: Date
    @Field(key: "updated_at") var updatedAt: Date

    init() {}

    init(
        practiceID: UUID, clientID: String, name: String, secretHash: String?, redirectURIs: [String],
        postLogoutRedirectURIs: [String] = [], backchannelLogoutURI: String? = nil, startURL: String? = nil,
        idTokenAlgorithm: String = "RS256", allowOfflineAccess: Bool = false, now: Date
    ) {
        id = UUID()
        $practice.id = practiceID
        self.clientID = clientID
        self.name = name
        self.secretHash = secretHash
        self.redirectURIs = redirectURIs
        self.postLogoutRedirectURIs = postLogoutRedirectURIs
        self.backchannelLogoutURI = backchannelLogoutURI
        self.startURL = startURL
        self.idTokenAlgorithm = idTokenAlgorithm
        self.allowOfflineAccess = allowOfflineAccess
        enabled = true
        createdAt = now
        updatedAt = now
    }

    var isPublic: Bool { secretHash == nil }

    /// Compares a presented secret with the stored hash in constant time.
    func secretMatches(_ secret: String) -> Bool {
        guard let secretHash, !secret.isEmpty, secret.utf8.count <= 256 else { return false }
        return ConstantTime.equals(Array(TwofoldCore.Digest.sha256Hex(secret).utf8), Array(secretHash.utf8))
    }

    /// A new client secret (256 bits) and the hash to store.
    static func newSecret() -> (secret: String, hash: String) {
        let secret = SecureRandom.token(byteCount: 32)
        return (secret, TwofoldCore.Digest.sha256Hex(secret))
    }

    /// A new public client id: not guessable, so that a list of applications cannot be enumerated.
    static func newClientID() -> String {
        "tf-" + SecureRandom.token(byteCount: 16)
    }
}

/// An authorization request an application started (`/oidc/authorize`) that waits for the user to sign in.
/// The browser carries its handle in a short-lived cookie through the sign-in pages.
final class OIDCAuthorizationRequest: Model, @unchecked Sendable {
    static let schema = "oidc_authorization_requests"

    @ID(key: .id) var id: UUID?
    @Parent(key: "client_id") var client: OIDCClient
    /// SHA-256 of the random handle in the browser's cookie.
    @Field(key: "handle_hash") var handleHash: String
    @Field(key: "redirect_uri") var redirectURI: String
    @Field(key: "scope") var scope: String
    @OptionalField(key: "state") var state: String?
    @Field(key: "nonce") var nonce: String
    @Field(key: "code_challenge") var codeChallenge: String?
    /// Re-authentication is needed: `prompt=login`, or `max_age` reached.
    @Field(key: "requires_fresh_sign_in") var requiresFreshSignIn: Bool
    @OptionalField(key: "max_age") var maxAge: Int?
    /// The weakest `acr` that satisfies the request (see ``AuthenticationContext``).
    @OptionalField(key: "required_acr") var requiredACR: String?
    @OptionalField(key: "login_hint") var loginHint: String?
    /// A fresh second factor was asked for (acr_values); falling short again ends the request.
    @Field(key: "factor_demanded") var factorDemanded: Bool
    @Field(key: "created_at") var createdAt: Date
    @Field(key: "expires_at") var expiresAt: Date

    init() {}
}

/// A one-time authorization code (60 seconds); only its SHA-256 is stored.
final class OIDCAuthorizationCode: Model, @unchecked Sendable {
    static let schema = "oidc_authorization_codes"

    @ID(key: .id) var id: UUID?
    @Field(key: "code_hash") var codeHash: String
    @Parent(key: "client_id") var client: OIDCClient
    @Parent(key: "user_id") var user: User
    /// The Twofold session (`sid`) the code was issued in.
    @Field(key: "session_id") var sessionID: UUID
    /// Every token issued from this code carries this grant id; a replayed code revokes them all.
    @Field(key: "grant_id") var grantID: UUID
    @Field(key: "redirect_uri") var redirectURI: String
    @Field(key: "scope") var scope: String
    @Field(key: "nonce") var nonce: String
    @OptionalField(key: "code_challenge") var codeChallenge: String?
    @Field(key: "auth_time") var authTime: Date
    @Field(key: "amr") var amr: String
    @Field(key: "acr") var acr: String
    @Field(key: "created_at") var createdAt: Date
    @Field(key: "expires_at") var expiresAt: Date
    @OptionalField(key: "used_at") var usedAt: Date?

    init() {}
}

/// An issued access or refresh token. Access tokens are JWTs whose `jti` is recorded here so that they can be
/// revoked and introspected; refresh tokens are opaque and stored as SHA-256.
final class OIDCToken: Model, @unchecked Sendable {
    static let schema = "oidc_tokens"

    enum Kind: String, Codable, Sendable {
        case access, refresh
    }

    @ID(key: .id) var id: UUID?
    @Field(key: "kind") var kind: Kind
    /// The access token's `jti`, or the SHA-256 of the refresh token.
    @Field(key: "lookup") var lookup: String
    @Field(key: "grant_id") var grantID: UUID
    @Parent(key: "client_id") var client: OIDCClient
    @Parent(key: "user_id") var user: User
    @OptionalField(key: "session_id") var sessionID: UUID?
    @Field(key: "scope") var scope: String
    @Field(key: "auth_time") var authTime: Date
    @Field(key: "amr") var amr: String
    @Field(key: "acr") var acr: String
    @Field(key: "created_at") var createdAt: Date
    @Field(key: "expires_at") var expiresAt: Date
    /// A refresh token is used once: it is exchanged for a new one.
    @OptionalField(key: "used_at") var usedAt: Date?
    @OptionalField(key: "revoked_at") var revokedAt: Date?

    init() {}
}

/// Which applications received tokens in which Twofold session: signing out of the session sends each of them a
/// back-channel logout token.
final class OIDCSessionClient: Model, @unchecked Sendable {
    static let schema = "oidc_session_clients"

    @ID(key: .id) var id: UUID?
    @Field(key: "session_id") var sessionID: UUID
    @Parent(key: "client_id") var client: OIDCClient
    @Parent(key: "user_id") var user: User
    @Field(key: "created_at") var createdAt: Date

    init() {}

    init(sessionID: UUID, clientID: UUID, userID: UUID, now: Date) {
        id = UUID()
        self.sessionID = sessionID
        $client.id = clientID
        $user.id = userID
        createdAt = now
    }
}

struct CreateOIDCTables: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(OIDCClient.schema)
            .id()
            .field("practice_id", .uuid, .required, .references(Practice.schema, .id, onDelete: .cascade))
            .field("client_id", .string, .required)
            .field("name", .string, .required)
            .field("secret_hash", .string)
            .field("redirect_uris", .array(of: .string), .required)
            .field("post_logout_redirect_uris", .array(of: .string), .required)
            .field("backchannel_logout_uri", .string)
            .field("start_url", .string)
            .field("id_token_alg", .string, .required)
            .field("allow_offline_access", .bool, .required)
            .field("enabled", .bool, .required)
            .field("created_at", .datetime, .required)
            .field("updated_at", .datetime, .required)
            .unique(on: "client_id")
            .create()
        try await database.sqlIndex(name: "oidc_clients_practice_idx", on: OIDCClient.schema, columns: ["practice_id"])

        try await database.schema(OIDCAuthorizationRequest.schema)
            .id()
            .field("client_id", .uuid, .required, .references(OIDCClient.schema, .id, onDelete: .cascade))
            .field("handle_hash", .string, .required)
            .field("redirect_uri", .string, .required)
            .field("scope", .string, .required)
            .field("state", .string)
            .field("nonce", .string, .required)
            .field("code_challenge", .string)
            .field("requires_fresh_sign_in", .bool, .required)
            .field("max_age", .int)
            .field("required_acr", .string)
            .field("login_hint", .string)
            .field("factor_demanded", .bool, .required)
            .field("created_at", .datetime, .required)
            .field("expires_at", .datetime, .required)
            .unique(on: "handle_hash")
            .create()

        try await database.schema(OIDCAuthorizationCode.schema)
            .id()
            .field("code_hash", .string, .required)
            .field("client_id", .uuid, .required, .references(OIDCClient.schema, .id, onDelete: .cascade))
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("session_id", .uuid, .required)
            .field("grant_id", .uuid, .required)
            .field("redirect_uri", .string, .required)
            .field("scope", .string, .required)
            .field("nonce", .string, .required)
            .field("code_challenge", .string)
            .field("auth_time", .datetime, .required)
            .field("amr", .string, .required)
            .field("acr", .string, .required)
            .field("created_at", .datetime, .required)
            .field("expires_at", .datetime, .required)
            .field("used_at", .datetime)
            .unique(on: "code_hash")
            .create()

        try await database.schema(OIDCToken.schema)
            .id()
            .field("kind", .string, .required)
            .field("lookup", .string, .required)
            .field("grant_id", .uuid, .required)
            .field("client_id", .uuid, .required, .references(OIDCClient.schema, .id, onDelete: .cascade))
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("session_id", .uuid)
            .field("scope", .string, .required)
            .field("auth_time", .datetime, .required)
            .field("amr", .string, .required)
            .field("acr", .string, .required)
            .field("created_at", .datetime, .required)
            .field("expires_at", .datetime, .required)
            .field("used_at", .datetime)
            .field("revoked_at", .datetime)
            .unique(on: "lookup")
            .create()
        try await database.sqlIndex(name: "oidc_tokens_grant_idx", on: OIDCToken.schema, columns: ["grant_id"])
        try await database.sqlIndex(name: "oidc_tokens_session_idx", on: OIDCToken.schema, columns: ["session_id"])

        try await database.schema(OIDCSessionClient.schema)
            .id()
            .field("session_id", .uuid, .required)
            .field("client_id", .uuid, .required, .references(OIDCClient.schema, .id, onDelete: .cascade))
            .field("user_id", .uuid, .required, .references(User.schema, .id, onDelete: .cascade))
            .field("created_at", .datetime, .required)
            .unique(on: "session_id", "client_id")
            .create()

        // How each session signed in, for the id token's auth_time, amr and acr.
        try await database.schema(SessionRecord.schema).field("auth_time", .datetime).update()
        try await database.schema(SessionRecord.schema).field("amr", .string).update()
        try await database.schema(SessionRecord.schema).field("acr", .string).update()
        try await database.schema(Practice.schema)
            .field("oidc_access_token_minutes", .int, .required, .sql(.default(TwofoldPolicy.standard.practice.accessTokenMinutes.default)))
            .update()
        try await database.schema(Practice.schema)
            .field("oidc_refresh_token_days", .int, .required, .sql(.default(TwofoldPolicy.standard.practice.refreshTokenDays.default)))
            .update()
    }

    func revert(on database: any Database) async throws {
        for schema in [
            OIDCSessionClient.schema, OIDCToken.schema, OIDCAuthorizationCode.schema, OIDCAuthorizationRequest.schema, OIDCClient.schema,
        ] {
            try await database.schema(schema).delete()
        }
    }
}
