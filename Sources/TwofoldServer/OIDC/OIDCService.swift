import Fluent
import Foundation
import JWTKit
import SQLKit
import TwofoldCore
import Vapor

/// What the OpenID Connect provider needs, passed in explicitly so that every rule is testable without HTTP.
struct OIDCContext: Sendable {
    var database: any Database
    var now: Date
    var issuer: String
    var signer: TokenSigner
    var audit: AuditRecorder
    var client: any Client
    var logger: Logger
    /// Lifetimes and limits (``TwofoldPolicy/OIDC``; the access and refresh token lifetimes are the practice's settings).
    var policy: TwofoldPolicy
}

/// The OpenID Connect provider's rules: authorization codes, tokens, refresh rotation, revocation, introspection,
/// userinfo and logout. Controllers turn its outcomes into redirects, pages and JSON.
struct OIDCService: Sendable {
    let context: OIDCContext
    var db: any Database { context.database }
    var now: Date { context.now }

    // MARK: authorization

    /// Stores a validated authorization request until the user has signed in.
    /// - Returns: the record and the random handle the browser carries in a cookie.
    func storePending(_ parameters: AuthorizationParameters, client: OIDCClient) async throws -> (OIDCAuthorizationRequest, String) {
        let handle = SecureRandom.token()
        let record = OIDCAuthorizationRequest()
        record.id = UUID()
        record.$client.id = try client.requireID()
        record.handleHash = TwofoldCore.Digest.sha256Hex(handle)
        record.redirectURI = parameters.redirectURI
        record.scope = parameters.scope
        record.state = parameters.state
        record.nonce = parameters.nonce
        record.codeChallenge = parameters.codeChallenge
        record.requiresFreshSignIn = parameters.promptLogin
        record.maxAge = parameters.maxAge
        record.requiredACR = parameters.requiredLevel?.acr
        record.loginHint = parameters.loginHint
        record.factorDemanded = false
        record.createdAt = now
        record.expiresAt = now.addingTimeInterval(context.policy.oidc.pendingRequestLifetime)
        try await record.create(on: db)
        return (record, handle)
    }

    /// The pending request a browser's handle names, with its client; nil when unknown or expired.
    func pending(handle: String) async throws -> (OIDCAuthorizationRequest, OIDCClient)? {
        guard handle.utf8.count <= 128,
            let record = try await OIDCAuthorizationRequest.query(on: db).filter(\.$handleHash == TwofoldCore.Digest.sha256Hex(handle))
                .with(\.$client).first()
        else { return nil }
        guard record.expiresAt > now, record.client.enabled else {
            try await record.delete(on: db)
            return nil
        }
        return (record, record.client)
    }

    /// Applies ``AuthorizationDecision`` to a pending request and the browser's session.
    func decide(_ pending: OIDCAuthorizationRequest, client: OIDCClient, session: CurrentSession?, promptNone: Bool) async throws
        -> AuthorizationDecision
    {
        var state: AuthorizationDecision.Session?
        if let session {
            let factors = try await Factor.query(on: db).filter(\.$user.$id == session.userID).filter(\.$status == .active).all()
            let signedIn = session.record.stage == .signedIn && !session.mustEnroll && !session.user.mustChangePassword
            state = .init(
                signedIn: signedIn, samePractice: session.practiceID == client.$practice.id, authTime: session.record.authTime,
                assurance: session.record.assurance, hasSecondFactor: !factors.isEmpty,
                hasPasskey: factors.contains { $0.kind == .webauthn })
        }
        let decision = AuthorizationDecision.decide(
            session: state, promptNone: promptNone, promptLogin: pending.requiresFreshSignIn, maxAge: pending.maxAge,
            requiredLevel: pending.requiredACR.flatMap(AssuranceLevel.init(acr:)), factorDemanded: pending.factorDemanded,
            requestedAt: pending.createdAt, now: now)
        if case .refuse(let error) = decision, let session {
            try await context.audit(
                .oidcAccessDenied, practiceID: session.practiceID, actorID: session.userID,
                details: ["client_id": client.clientID, "application": client.name, "error": error.code])
        }
        return decision
    }

    /// Marks that a fresh factor was demanded for this request, and moves the session back to the second-factor step.
    func demandFreshFactor(_ pending: OIDCAuthorizationRequest, session: CurrentSession) async throws {
        pending.factorDemanded = true
        try await pending.save(on: db)
        session.record.stage = .secondFactor
        session.record.failedAttempts = 0
        try await session.record.save(on: db)
    }

    /// Issues a single-use code for the signed-in session and links the client to the session (for logout).
    func issueCode(_ pending: OIDCAuthorizationRequest, client: OIDCClient, session: CurrentSession) async throws -> String {
        let code = SecureRandom.token()
        let record = OIDCAuthorizationCode()
        record.id = UUID()
        record.codeHash = TwofoldCore.Digest.sha256Hex(code)
        record.$client.id = try client.requireID()
        record.$user.id = session.userID
        record.sessionID = try session.record.requireID()
        record.grantID = UUID()
        record.redirectURI = pending.redirectURI
        record.scope = pending.scope
        record.nonce = pending.nonce
        record.codeChallenge = pending.codeChallenge
        record.authTime = session.record.authTime ?? session.record.createdAt
        record.amr = session.record.amr ?? "pwd"
        record.acr = session.record.assurance.acr
        record.createdAt = now
        record.expiresAt = now.addingTimeInterval(context.policy.oidc.codeLifetime)
        try await db.transaction { db in
            try await record.create(on: db)
            try await pending.delete(on: db)
            try await db.sql.raw(
                """
                INSERT INTO \(ident: OIDCSessionClient.schema) (id, session_id, client_id, user_id, created_at)
                VALUES (\(bind: UUID()), \(bind: record.sessionID), \(bind: try client.requireID()), \(bind: session.userID), \(bind: now))
                ON CONFLICT (session_id, client_id) DO NOTHING
                """
            ).run()
        }
        try await context.audit(
            .oidcAuthorized, practiceID: session.practiceID, actorID: session.userID,
            details: ["client_id": client.clientID, "application": client.name, "scope": pending.scope, "acr": record.acr])
        return code
    }

    // MARK: client authentication

    enum ClientCredentials: Sendable {
        case basic(id: String, secret: String)
        case post(id: String, secret: String)
        case none(id: String)
    }

    /// Authenticates the client of a token, revocation or introspection request. Failures are limited per client id
    /// and client address (reserved before the secret is compared) and audited.
    func authenticate(_ credentials: ClientCredentials?) async throws -> OIDCClient {
        guard let credentials else {
            throw OAuthError.invalidClient(
                "Client authentication is missing: use HTTP Basic, client_secret_post, or client_id for a public client.", basic: false)
        }
        let basic: Bool
        let id: String
        let secret: String?
        switch credentials {
        case .basic(let i, let s): (basic, id, secret) = (true, i, s)
        case .post(let i, let s): (basic, id, secret) = (false, i, s)
        case .none(let i): (basic, id, secret) = (false, i, nil)
        }
        guard !id.isEmpty, id.utf8.count <= 128 else { throw OAuthError.invalidClient("Unknown client.", basic: basic) }
        let throttle = ThrottleStore(database: db)
        // Counted per client and address: a stranger who knows a client id (it travels in every browser redirect)
        // cannot spend the allowance of the application's own server. Secrets are 256 bits: the limit bounds load,
        // not guessing.
        let key = "oidc:client-auth:\(id):\(ClientAddress.throttleKey(context.audit.ip))"
        let reserved = try await throttle.reserve(key, limit: context.policy.oidc.clientAuthenticationFailures, now: now)
        if let retryAfter = reserved.retryAfter {
            throw OAuthError(
                code: "invalid_client", description: "Too many failed client authentications; try again in \(retryAfter) seconds.",
                status: .tooManyRequests, challenge: nil)
        }
        guard let client = try await OIDCClient.query(on: db).filter(\.$clientID == id).first(), client.enabled else {
            throw OAuthError.invalidClient("Unknown or disabled client.", basic: basic)
        }
        let authenticated =
            switch (client.isPublic, secret) {
            case (true, nil): true
            case (false, let secret?): client.secretMatches(secret)
            default: false
            }
        guard authenticated else {
            try await context.audit(
                .oidcTokenRejected, practiceID: client.$practice.id,
                details: ["client_id": client.clientID, "reason": client.isPublic ? "secret_sent_by_public_client" : "wrong_client_secret"])
            throw OAuthError.invalidClient(
                client.isPublic ? "This is a public client: send client_id without a secret, and use PKCE." : "The client secret is wrong.",
                basic: basic)
        }
        try await throttle.release(key, limit: context.policy.oidc.clientAuthenticationFailures, now: now)
        return client
    }

    // MARK: token endpoint

    struct TokenResponse: Codable, Sendable, Equatable {
        var access_token: String
        var token_type = "Bearer"
        var expires_in: Int
        var id_token: String
        var refresh_token: String?
        var scope: String
    }

    /// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.6).
    func exchange(code: String?, redirectURI: String?, verifier: String?, client: OIDCClient) async throws -> TokenResponse {
        guard let code, !code.isEmpty, code.utf8.count <= 128 else { throw OAuthError.invalidRequest("code is missing.") }
        guard let record = try await OIDCAuthorizationCode.query(on: db).filter(\.$codeHash == TwofoldCore.Digest.sha256Hex(code)).first()
        else {
            throw OAuthError.invalidGrant("The authorization code is unknown.")
        }
        guard record.$client.id == client.id else { throw OAuthError.invalidGrant("The authorization code was issued to another client.") }
        // Claim the code atomically: of two parallel exchanges exactly one wins; any later use is a replay.
        try await claimOnce(
            OIDCAuthorizationCode.schema, id: try record.requireID(), extraCondition: "", grantID: record.grantID, userID: record.$user.id,
            client: client, replayEvent: .oidcCodeReplayed,
            replayError: "The authorization code was already used; every token issued from it is revoked.")
        guard record.expiresAt > now else {
            throw OAuthError.invalidGrant(
                "The authorization code has expired (codes live \(Int(context.policy.oidc.codeLifetime)) seconds).")
        }
        guard let redirectURI, redirectURI == record.redirectURI else {
            throw OAuthError.invalidGrant("redirect_uri does not match the one of the authorization request.")
        }
        switch (record.codeChallenge, verifier) {
        case (let challenge?, let verifier?):
            guard PKCE.verifies(verifier: verifier, challenge: challenge) else {
                throw OAuthError.invalidGrant("The PKCE code_verifier does not match the code_challenge.")
            }
        case (.some, nil):
            throw OAuthError.invalidGrant("code_verifier is missing: this code was requested with PKCE.")
        case (nil, .some):
            throw OAuthError.invalidGrant("code_verifier was sent, but the authorization request had no code_challenge.")
        case (nil, nil):
            break
        }
        let (user, practice) = try await subject(record.$user.id, client: client)
        let response = try await issueTokens(
            client: client, user: user, practice: practice, grantID: record.grantID, sessionID: record.sessionID, scope: record.scope,
            authTime: record.authTime, amr: record.amr, acr: record.acr, nonce: record.nonce)
        try await context.audit(
            .oidcTokenIssued, practiceID: practice.id, actorID: user.id,
            details: [
                "client_id": client.clientID, "application": client.name, "scope": record.scope,
                "refresh": response.refresh_token == nil ? "no" : "yes",
            ])
        return response
    }

    /// `grant_type=refresh_token` (RFC 6749 §6): the token is exchanged for a new one; a token used twice revokes its family.
    func refresh(_ token: String?, scope requested: String?, client: OIDCClient) async throws -> TokenResponse {
        guard let token, !token.isEmpty, token.utf8.count <= 128 else { throw OAuthError.invalidRequest("refresh_token is missing.") }
        let lookup = TwofoldCore.Digest.sha256Hex(token)
        guard let record = try await OIDCToken.query(on: db).filter(\.$lookup == lookup).filter(\.$kind == .refresh).first() else {
            throw OAuthError.invalidGrant("The refresh token is unknown.")
        }
        guard record.$client.id == client.id else { throw OAuthError.invalidGrant("The refresh token was issued to another client.") }
        guard record.revokedAt == nil else { throw OAuthError.invalidGrant("The refresh token has been revoked.") }
        try await claimOnce(
            OIDCToken.schema, id: try record.requireID(), extraCondition: " AND revoked_at IS NULL", grantID: record.grantID,
            userID: record.$user.id, client: client, replayEvent: .oidcRefreshTokenReused,
            replayError: "The refresh token was already used; its whole family of tokens is revoked. Sign in again.")
        guard record.expiresAt > now else { throw OAuthError.invalidGrant("The refresh token has expired. Sign in again.") }
        var scope = record.scope
        if let requested, !requested.isEmpty {
            let granted = Set(record.scope.split(separator: " "))
            let asked = requested.split(separator: " ")
            guard asked.allSatisfy(granted.contains) else { throw OAuthError.invalidScope("A refresh cannot widen the scope.") }
            scope = AuthorizationParameters.supportedScopes.filter { asked.contains(Substring($0)) }.joined(separator: " ")
            if !scope.split(separator: " ").contains("offline_access") { scope = record.scope }
        }
        let (user, practice) = try await subject(record.$user.id, client: client)
        let response = try await issueTokens(
            client: client, user: user, practice: practice, grantID: record.grantID, sessionID: record.sessionID, scope: scope,
            authTime: record.authTime, amr: record.amr, acr: record.acr, nonce: nil)
        try await context.audit(
            .oidcTokenRefreshed, practiceID: practice.id, actorID: user.id,
            details: ["client_id": client.clientID, "application": client.name])
        return response
    }

    /// Marks a code or refresh token used, atomically: of parallel uses exactly one wins. Any other use is a replay,
    /// which revokes every token of the grant and is audited.
    private func claimOnce(
        _ table: String, id: UUID, extraCondition: String, grantID: UUID, userID: UUID, client: OIDCClient,
        replayEvent: AuditEventType, replayError: String
    ) async throws {
        let claimed =
            try await db.sql.raw(
                """
                UPDATE \(ident: table) SET used_at = \(bind: now) WHERE id = \(bind: id) AND used_at IS NULL\(unsafeRaw: extraCondition) RETURNING id
                """
            ).first() != nil
        guard claimed else {
            let revoked = try await revokeGrant(grantID)
            try await context.audit(
                replayEvent, practiceID: client.$practice.id, subjectID: userID,
                details: ["client_id": client.clientID, "tokens_revoked": String(revoked)])
            throw OAuthError.invalidGrant(replayError)
        }
    }

    /// The user a grant is for, who must still belong to the client's practice and be allowed to sign in.
    private func subject(_ userID: UUID, client: OIDCClient) async throws -> (User, Practice) {
        guard let user = try await User.find(userID, on: db), user.$practice.id == client.$practice.id,
            let practice = try await Practice.find(user.$practice.id, on: db)
        else { throw OAuthError.invalidGrant("The user no longer belongs to this application's practice.") }
        if practice.mandatoryTwoFactor || user.twoFactorRequired {
            let hasFactor = try await Factor.query(on: db).filter(\.$user.$id == userID).filter(\.$status == .active).first() != nil
            guard hasFactor else {
                throw OAuthError.invalidGrant("Two-factor authentication is now required of this user: sign in again to set it up.")
            }
        }
        return (user, practice)
    }

    private func issueTokens(
        client: OIDCClient, user: User, practice: Practice, grantID: UUID, sessionID: UUID?, scope: String,
        authTime: Date, amr: String, acr: String, nonce: String?
    ) async throws -> TokenResponse {
        let userID = try user.requireID()
        let sub = userID.uuidString.lowercased()
        let iat = Int64(now.timeIntervalSince1970)
        let accessLifetime = TimeInterval(context.policy.practice.accessTokenMinutes.clamped(practice.accessTokenMinutes) * 60)
        let algorithm = SigningAlgorithm(rawValue: client.idTokenAlgorithm) ?? .rs256
        let methods = amr.split(separator: " ").map(String.init)
        let sid = sessionID?.uuidString.lowercased()
        let jti = SecureRandom.token(byteCount: 16)
        let access = AccessTokenClaims(
            iss: context.issuer, sub: sub, aud: client.clientID, exp: iat + Int64(accessLifetime), iat: iat, jti: jti,
            client_id: client.clientID, scope: scope, auth_time: Int64(authTime.timeIntervalSince1970), acr: acr, amr: methods, sid: sid)
        let accessToken = try await context.signer.sign(access, algorithm: algorithm, type: "at+jwt")
        let scopes = Set(scope.split(separator: " ").map(String.init))
        let claims = OIDCUserClaims(user: user, practice: practice, scopes: scopes, confirmedPhones: try await confirmedPhones(of: userID))
        let idToken = IDTokenClaims(
            iss: context.issuer, sub: sub, aud: client.clientID, exp: iat + Int64(context.policy.oidc.idTokenLifetime), iat: iat,
            auth_time: Int64(authTime.timeIntervalSince1970), nonce: nonce, sid: sid ?? "", amr: methods, acr: acr, azp: client.clientID,
            at_hash: IDTokenClaims.accessTokenHash(accessToken), user: claims)
        let signedIDToken = try await context.signer.sign(idToken, algorithm: algorithm, type: "JWT")
        let refreshToken: String? = try await db.transaction { db in
            try await token(
                .access, lookup: jti, grantID: grantID, client: client, userID: userID, sessionID: sessionID, scope: scope,
                authTime: authTime, amr: amr, acr: acr, expiresAt: now.addingTimeInterval(accessLifetime)
            ).create(on: db)
            if scopes.contains("offline_access"), client.allowOfflineAccess {
                let refresh = SecureRandom.token()
                let days = context.policy.practice.refreshTokenDays.clamped(practice.refreshTokenDays)
                try await token(
                    .refresh, lookup: TwofoldCore.Digest.sha256Hex(refresh), grantID: grantID, client: client, userID: userID,
                    sessionID: sessionID, scope: scope, authTime: authTime, amr: amr, acr: acr,
                    expiresAt: now.addingTimeInterval(TimeInterval(days) * 86_400)
                ).create(on: db)
                return refresh
            }
            return nil
        }
        return TokenResponse(
            access_token: accessToken, expires_in: Int(accessLifetime), id_token: signedIDToken, refresh_token: refreshToken, scope: scope)
    }

    private func token(
        _ kind: OIDCToken.Kind, lookup: String, grantID: UUID, client: OIDCClient, userID: UUID, sessionID: UUID?, scope: String,
        authTime: Date, amr: String, acr: String, expiresAt: Date
    ) throws -> OIDCToken {
        let record = OIDCToken()
        record.id = UUID()
        record.kind = kind
        record.lookup = lookup
        record.grantID = grantID
        record.$client.id = try client.requireID()
        record.$user.id = userID
        record.sessionID = sessionID
        record.scope = scope
        record.authTime = authTime
        record.amr = amr
        record.acr = acr
        record.createdAt = now
        record.expiresAt = expiresAt
        return record
    }

    private func confirmedPhones(of userID: UUID) async throws -> Set<String> {
        Set(
            try await Factor.query(on: db).filter(\.$user.$id == userID).filter(\.$status == .active).filter(\.$kind == .sms).all()
                .compactMap(\.phone))
    }

    /// Revokes every token of a grant (a replayed code or refresh token).
    /// - Returns: how many were still live.
    @discardableResult
    func revokeGrant(_ grantID: UUID) async throws -> Int {
        let rows = try await db.sql.raw(
            """
            UPDATE \(ident: OIDCToken.schema) SET revoked_at = \(bind: now) WHERE grant_id = \(bind: grantID) AND revoked_at IS NULL RETURNING id
            """
        ).all()
        return rows.count
    }

    // MARK: access tokens: userinfo, introspection, revocation

    /// The live token record behind an access token (signature, issuer, expiry, revocation, client still enabled).
    func liveAccessToken(_ token: String) async throws -> (AccessTokenClaims, OIDCToken)? {
        guard token.utf8.count <= 4096, let claims = try? await context.signer.verify(token, as: AccessTokenClaims.self),
            claims.iss == context.issuer, claims.exp > Int64(now.timeIntervalSince1970),
            let record = try await OIDCToken.query(on: db).filter(\.$lookup == claims.jti).filter(\.$kind == .access).with(\.$client)
                .first(),
            record.revokedAt == nil, record.expiresAt > now, record.client.enabled
        else { return nil }
        return (claims, record)
    }

    /// The userinfo endpoint's answer (OpenID Connect Core §5.3): the same claims as the id token, for the token's scopes.
    func userInfo(accessToken: String?) async throws -> UserInfoResponse {
        guard let accessToken, !accessToken.isEmpty else {
            throw OAuthError.invalidToken("An access token is required (Authorization: Bearer …).")
        }
        guard let (claims, record) = try await liveAccessToken(accessToken) else {
            throw OAuthError.invalidToken("The access token is invalid, expired or revoked.")
        }
        let (user, practice) = try await subject(record.$user.id, client: record.client)
        let scopes = Set(claims.scope.split(separator: " ").map(String.init))
        let userClaims = OIDCUserClaims(
            user: user, practice: practice, scopes: scopes, confirmedPhones: try await confirmedPhones(of: try user.requireID()))
        return UserInfoResponse(sub: claims.sub, user: userClaims)
    }

    /// RFC 7662: whether a token is live, and what it is for. A client sees only tokens of its own practice.
    func introspect(_ token: String?, client: OIDCClient) async throws -> [String: AnyEncodableClaim] {
        guard let token, !token.isEmpty, token.utf8.count <= 4096 else { return ["active": .bool(false)] }
        var record: OIDCToken?
        var type = "Bearer"
        if let (_, access) = try await liveAccessToken(token) {
            record = access
        } else if let refresh = try await OIDCToken.query(on: db).filter(\.$lookup == TwofoldCore.Digest.sha256Hex(token)).filter(
            \.$kind == .refresh
        )
        .with(\.$client).first(), refresh.revokedAt == nil, refresh.usedAt == nil, refresh.expiresAt > now, refresh.client.enabled {
            record = refresh
            type = "refresh_token"
        }
        guard let record, record.client.$practice.id == client.$practice.id,
            let user = try await User.find(record.$user.id, on: db)
        else { return ["active": .bool(false)] }
        var answer: [String: AnyEncodableClaim] = [
            "active": .bool(true), "scope": .string(record.scope), "client_id": .string(record.client.clientID),
            "username": .string(user.username), "token_type": .string(type),
            "exp": .int(Int64(record.expiresAt.timeIntervalSince1970)), "iat": .int(Int64(record.createdAt.timeIntervalSince1970)),
            "sub": .string(record.$user.id.uuidString.lowercased()), "aud": .string(record.client.clientID), "iss": .string(context.issuer),
            "auth_time": .int(Int64(record.authTime.timeIntervalSince1970)), "acr": .string(record.acr),
            "amr": .strings(record.amr.split(separator: " ").map(String.init)),
        ]
        if record.kind == .access { answer["jti"] = .string(record.lookup) }
        if let sid = record.sessionID { answer["sid"] = .string(sid.uuidString.lowercased()) }
        return answer
    }

    /// RFC 7009: revokes an access token, or a refresh token together with every token of its grant. Tokens of other
    /// clients and unknown tokens are ignored (the answer is the same).
    func revoke(_ token: String?, hint: String?, client: OIDCClient) async throws {
        guard let token, !token.isEmpty, token.utf8.count <= 4096 else { throw OAuthError.invalidRequest("token is missing.") }
        if let refresh = try await OIDCToken.query(on: db).filter(\.$lookup == TwofoldCore.Digest.sha256Hex(token)).filter(
            \.$kind == .refresh
        ).first(),
            refresh.$client.id == client.id
        {
            let revoked = try await revokeGrant(refresh.grantID)
            try await context.audit(
                .oidcTokenRevoked, practiceID: client.$practice.id, subjectID: refresh.$user.id,
                details: ["client_id": client.clientID, "kind": "refresh_token", "tokens_revoked": String(revoked)])
            return
        }
        if let claims = try? await context.signer.verify(token, as: AccessTokenClaims.self), claims.iss == context.issuer,
            let access = try await OIDCToken.query(on: db).filter(\.$lookup == claims.jti).filter(\.$kind == .access).first(),
            access.$client.id == client.id, access.revokedAt == nil
        {
            access.revokedAt = now
            try await access.save(on: db)
            try await context.audit(
                .oidcTokenRevoked, practiceID: client.$practice.id, subjectID: access.$user.id,
                details: ["client_id": client.clientID, "kind": "access_token"])
        }
    }

    // MARK: logout

    /// After a Twofold session ended (sign-out, RP-initiated logout, a new sign-in in the same browser): its access
    /// tokens stop working and every application that received tokens in it and registered a back-channel logout URI
    /// is told, in parallel, within a few seconds.
    /// - Returns: how many applications were told.
    @discardableResult
    func sessionEnded(sessionID: UUID, userID: UUID) async throws -> Int {
        let links = try await OIDCSessionClient.query(on: db).filter(\.$sessionID == sessionID).with(\.$client).all()
        // Every application of a session belongs to the user's practice (a user of another practice is refused).
        guard let practiceID = links.first?.client.$practice.id else { return 0 }
        try await db.sql.raw(
            """
            UPDATE \(ident: OIDCToken.schema) SET revoked_at = \(bind: now)
            WHERE session_id = \(bind: sessionID) AND kind = 'access' AND revoked_at IS NULL
            """
        ).run()
        try await OIDCSessionClient.query(on: db).filter(\.$sessionID == sessionID).delete()
        let targets = links.map(\.client).filter { $0.enabled && $0.backchannelLogoutURI != nil }
        let sub = userID.uuidString.lowercased()
        let sid = sessionID.uuidString.lowercased()
        let iat = Int64(now.timeIntervalSince1970)
        var tokens: [(OIDCClient, String)] = []
        for client in targets {
            let claims = LogoutTokenClaims(
                iss: context.issuer, aud: client.clientID, iat: iat, exp: iat + Int64(context.policy.oidc.logoutTokenLifetime),
                jti: SecureRandom.token(byteCount: 16), sub: sub, sid: sid, events: [LogoutTokenClaims.event: [:]])
            tokens.append(
                (
                    client,
                    try await context.signer.sign(
                        claims, algorithm: SigningAlgorithm(rawValue: client.idTokenAlgorithm) ?? .rs256, type: "logout+jwt")
                ))
        }
        let httpClient = context.client
        let results = await withTaskGroup(of: (OIDCClient, String?).self) { group in
            for (client, token) in tokens {
                group.addTask {
                    do {
                        let response = try await httpClient.post(URI(string: client.backchannelLogoutURI!)) { request in
                            try request.content.encode(["logout_token": token], as: .urlEncodedForm)
                            request.timeout = .seconds(5)
                        }
                        return (client, (200..<300).contains(response.status.code) ? nil : "HTTP \(response.status.code)")
                    } catch {
                        return (client, String(describing: error).prefix(200).description)
                    }
                }
            }
            var results: [(OIDCClient, String?)] = []
            for await result in group { results.append(result) }
            return results
        }
        for (client, failure) in results {
            if let failure {
                context.logger.warning("Back-channel logout to \(client.name) (\(client.clientID)) failed: \(failure)")
                try await context.audit(
                    .oidcBackchannelLogoutFailed, practiceID: practiceID, actorID: userID,
                    details: ["client_id": client.clientID, "application": client.name, "error": failure])
            } else {
                try await context.audit(
                    .oidcBackchannelLogoutSent, practiceID: practiceID, actorID: userID,
                    details: ["client_id": client.clientID, "application": client.name])
            }
        }
        return results.count
    }
}

extension ClosedRange where Bound == Int {
    func clamped(_ value: Int) -> Int { Swift.min(Swift.max(value, lowerBound), upperBound) }
}

/// The userinfo answer: `sub` and the scope's claims, at one level.
struct UserInfoResponse: Encodable, Sendable {
    var sub: String
    var user: OIDCUserClaims

    private enum CodingKeys: String, CodingKey { case sub }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(sub, forKey: .sub)
        try user.encode(to: encoder)
    }
}

/// A JSON value for answers whose keys depend on the request (userinfo, introspection).
enum AnyEncodableClaim: Encodable, Equatable, Sendable {
    case string(String)
    case int(Int64)
    case bool(Bool)
    case strings([String])
    case object([String: AnyEncodableClaim])

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .strings(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
