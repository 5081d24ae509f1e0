import Fluent
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("OpenID Connect provider")
struct OIDCProviderTests {
    /// A practice, a provider with an authenticator app, and a registered confidential client.
    private func setUp(_ ctx: TestContext, allowRefresh: Bool = false, backchannel: String? = nil, alg: String = "RS256") async throws -> (
        OIDCHarness, String, Practice
    ) {
        let practice = try await Fixtures.practice(ctx)
        _ = try await Fixtures.user(ctx, practice: practice)
        let enrolled = try await Flows.enrollTOTP(ctx)
        ctx.clock.advance(30)
        let harness = try await OIDCHarness.register(
            ctx, practice: practice, allowRefresh: allowRefresh, alg: alg, backchannel: backchannel)
        return (harness, enrolled.secret, practice)
    }

    @Test func discoveryDescribesTheProvider() async throws {
        try await withTestApp { ctx in
            let response = try await ctx.app.testing().sendRequest(.GET, "/.well-known/openid-configuration")
            #expect(response.status == .ok)
            let document = response.json
            let issuer = try #require(document["issuer"] as? String)
            #expect(document["authorization_endpoint"] as? String == issuer + "/oidc/authorize")
            #expect(document["jwks_uri"] as? String == issuer + "/.well-known/jwks.json")
            #expect(document["code_challenge_methods_supported"] as? [String] == ["S256"])
            #expect(document["response_types_supported"] as? [String] == ["code"])
            #expect(Set(document["id_token_signing_alg_values_supported"] as? [String] ?? []) == ["RS256", "ES256"])
            #expect(document["authorization_response_iss_parameter_supported"] as? Bool == true)
            #expect(document["backchannel_logout_session_supported"] as? Bool == true)
            #expect((document["acr_values_supported"] as? [String])?.contains("urn:twofold:acr:phishing-resistant") == true)
        }
    }

    @Test func codeFlowWithPKCESignsInWithTheSecondFactor() async throws {
        try await withTestApp { ctx in
            let (rp, secret, practice) = try await setUp(ctx)
            let web = WebClient(ctx)
            // Not signed in: the provider sends the browser to Twofold's own sign-in page.
            let start = try await web.get(rp.authorizePath(["login_hint": "dr.smith"]))
            #expect(start.status == .seeOther || start.status == .found)
            #expect(start.location?.hasPrefix("/login?continue=oidc&username=dr.smith") == true)
            let login = try await web.get(try #require(start.location))
            #expect(login.body.string.contains(#"value="dr.smith""#))
            // Browsers check each redirect after a form against form-action: the application's origin is allowed
            // while its sign-in is pending, and only then.
            #expect(login.headers.first(name: "Content-Security-Policy")?.contains("form-action 'self' https://ehr.example.org;") == true)
            #expect(
                try await WebClient(ctx).get(WebPath.login.string).headers.first(name: "Content-Security-Policy")?.contains(
                    "form-action 'self';") == true)
            let back = try await rp.signIn(web, secret: secret)
            let parameters = OIDCHarness.parameters(of: back)
            #expect(back.location?.hasPrefix(rp.redirectURI + "?") == true)
            #expect(parameters["state"] == "st-123")
            let issuer = try #require(parameters["iss"])
            let code = try #require(parameters["code"])

            let token = try await rp.exchange(code)
            #expect(token.status == .ok, "\(token.text)")
            #expect(token.headers.first(name: .cacheControl) == "no-store")
            let accessToken = try #require(token.json["access_token"] as? String)
            let idToken = try #require(token.json["id_token"] as? String)
            #expect(token.json["token_type"] as? String == "Bearer")
            #expect(token.json["refresh_token"] == nil)
            #expect(OIDCHarness.header(idToken)["alg"] as? String == "RS256")
            #expect(OIDCHarness.header(accessToken)["typ"] as? String == "at+jwt")

            let verified = try await TokenSigner(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now).verify(
                idToken, as: IDTokenClaims.self)
            let user = try #require(try await User.query(on: ctx.app.db).filter(\.$username == "dr.smith").first())
            #expect(verified.iss == issuer)
            #expect(verified.aud == rp.client.clientID)
            #expect(verified.sub == user.id!.uuidString.lowercased())
            #expect(verified.sub != "dr.smith")
            #expect(verified.nonce == "n-456")
            #expect(verified.amr == ["pwd", "otp", "mfa"])
            #expect(verified.acr == "urn:twofold:acr:2fa")
            #expect(verified.exp - verified.iat == 300)
            #expect(verified.at_hash == IDTokenClaims.accessTokenHash(accessToken))
            #expect(verified.user.preferred_username == "dr.smith")
            #expect(verified.user.practice?.name == practice.name)
            #expect(verified.user.roles == ["provider"])
            #expect(verified.user.email == "dr.smith@example.org")

            let info = try await rp.userInfo(accessToken)
            #expect(info.status == .ok, "\(info.text)")
            #expect(info.json["sub"] as? String == verified.sub)
            #expect(info.json["family_name"] as? String == "Smith")
            #expect(info.json["phone_number"] as? String == "+15551234567")

            // Single sign-on: the same browser gets a code for a second request without signing in again.
            let again = try await rp.code(web, ["nonce": "n-2"])
            #expect(try await rp.exchange(again).status == .ok)

            let events = try await AuditEvent.query(on: ctx.app.db).all().map(\.event)
            #expect(events.contains("oidc.authorized"))
            #expect(events.contains("oidc.token_issued"))
        }
    }

    @Test func aCodeWorksOnceAndItsReuseRevokesWhatItGave() async throws {
        try await withTestApp { ctx in
            let (rp, secret, _) = try await setUp(ctx)
            let web = WebClient(ctx)
            _ = try await rp.signIn(web, secret: secret)
            let code = try await rp.code(web)
            let first = try await rp.exchange(code)
            let accessToken = try #require(first.json["access_token"] as? String)
            #expect(try await rp.userInfo(accessToken).status == .ok)

            let replay = try await rp.exchange(code)
            #expect(replay.status == .badRequest)
            #expect(replay.json["error"] as? String == "invalid_grant")
            let revoked = try await rp.userInfo(accessToken)
            #expect(revoked.status == .unauthorized)
            #expect(revoked.headers.first(name: .wwwAuthenticate)?.contains("invalid_token") == true)
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "oidc.code_replayed").count() == 1)
        }
    }

    @Test func parallelExchangesOfOneCodeIssueOneTokenSet() async throws {
        try await withTestApp { ctx in
            let (rp, secret, _) = try await setUp(ctx)
            let web = WebClient(ctx)
            _ = try await rp.signIn(web, secret: secret)
            let code = try await rp.code(web)
            let statuses = try await withThrowingTaskGroup(of: HTTPResponseStatus.self) { group in
                for _ in 0..<10 { group.addTask { try await rp.exchange(code).status } }
                return try await group.reduce(into: [HTTPResponseStatus]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == .ok }.count == 1)
            #expect(statuses.filter { $0 == .badRequest }.count == 9)
        }
    }

    @Test func pkceRedirectURIExpiryAndClientSecretAreEnforced() async throws {
        try await withTestApp { ctx in
            let (rp, secret, _) = try await setUp(ctx)
            let web = WebClient(ctx)
            _ = try await rp.signIn(web, secret: secret)

            let wrongVerifier = try await rp.exchange(try await rp.code(web), verifier: String(repeating: "a", count: 43))
            #expect(wrongVerifier.json["error"] as? String == "invalid_grant")
            #expect((wrongVerifier.json["error_description"] as? String)?.contains("PKCE") == true)

            let noVerifier = try await rp.exchange(try await rp.code(web), verifier: nil)
            #expect(noVerifier.json["error"] as? String == "invalid_grant")

            let otherRedirect = try await rp.exchange(try await rp.code(web), redirectURI: "https://ehr.example.org/other")
            #expect(otherRedirect.json["error"] as? String == "invalid_grant")

            let late = try await rp.code(web)
            ctx.clock.advance(61)
            let expired = try await rp.exchange(late)
            #expect(expired.json["error"] as? String == "invalid_grant")
            #expect((expired.json["error_description"] as? String)?.contains("expired") == true)

            let wrongSecret = OIDCHarness(ctx: ctx, client: rp.client, secret: "not-the-secret", redirectURI: rp.redirectURI)
            let refused = try await wrongSecret.exchange(try await rp.code(web))
            #expect(refused.status == .unauthorized)
            #expect(refused.json["error"] as? String == "invalid_client")
            #expect(refused.headers.first(name: .wwwAuthenticate)?.hasPrefix("Basic") == true)
            // client_secret_post works as well as Basic.
            let viaPost = try await rp.post(
                OIDCPath.token.string,
                [
                    "grant_type": "authorization_code", "code": try await rp.code(web),
                    "redirect_uri": rp.redirectURI, "code_verifier": OIDCHarness.verifier,
                ], basic: false)
            #expect(viaPost.status == .ok, "\(viaPost.text)")
        }
    }

    @Test func aBurstOfWrongClientSecretsIsEvaluatedOnlyUpToTheLimit() async throws {
        try await withTestApp { ctx in
            let (rp, _, _) = try await setUp(ctx)
            let wrong = OIDCHarness(ctx: ctx, client: rp.client, secret: "not-the-secret", redirectURI: rp.redirectURI)
            let statuses = try await withThrowingTaskGroup(of: HTTPResponseStatus.self) { group in
                for _ in 0..<30 {
                    group.addTask {
                        try await wrong.post(
                            OIDCPath.token.string, ["grant_type": "authorization_code", "code": "x", "redirect_uri": rp.redirectURI]
                        ).status
                    }
                }
                return try await group.reduce(into: [HTTPResponseStatus]()) { $0.append($1) }
            }
            // Each failure is reserved before the secret is compared: no more than the limit are ever compared.
            let limit = TwofoldPolicy.standard.oidc.clientAuthenticationFailures.limit
            #expect(statuses.filter { $0 == .unauthorized }.count == limit)
            #expect(statuses.filter { $0 == .tooManyRequests }.count == 30 - limit)
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "oidc.token_rejected").count() == limit)
        }
    }

    @Test func wrongSecretsFromOneAddressLeaveTheApplicationsOwnServerAlone() async throws {
        try await withTestApp { ctx in
            let (rp, _, _) = try await setUp(ctx)
            func service(from address: String) -> OIDCService {
                OIDCService(
                    context: OIDCContext(
                        database: ctx.app.db, now: ctx.clock.now, issuer: "https://2fa.example.org",
                        signer: TokenSigner(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now),
                        audit: AuditRecorder(database: ctx.app.db, now: ctx.clock.now, ip: address, userAgent: "test"),
                        client: ctx.app.client, logger: ctx.app.logger, policy: ctx.app.policy))
            }
            let attacker = service(from: "203.0.113.9")
            for _ in 0..<TwofoldPolicy.standard.oidc.clientAuthenticationFailures.limit {
                await #expect(throws: OAuthError.self) { try await attacker.authenticate(.basic(id: rp.client.clientID, secret: "guess")) }
            }
            do {
                _ = try await attacker.authenticate(.basic(id: rp.client.clientID, secret: "guess"))
                Issue.record("the attacker's address was not limited")
            } catch let error as OAuthError {
                #expect(error.status == .tooManyRequests)
            }
            let own = try await service(from: "192.0.2.10").authenticate(.basic(id: rp.client.clientID, secret: try #require(rp.secret)))
            #expect(own.clientID == rp.client.clientID)
        }
    }

    @Test func tokenRequestsThatAreNotFormsAreRefusedClearly() async throws {
        try await withTestApp { ctx in
            let (rp, _, _) = try await setUp(ctx)
            var headers = HTTPHeaders()
            headers.contentType = .json
            let json = try await ctx.app.testing().sendRequest(
                .POST, OIDCPath.token.string, headers: headers, body: ByteBuffer(string: #"{"grant_type":"authorization_code"}"#))
            #expect(json.status == .badRequest)
            #expect(json.json["error"] as? String == "invalid_request")
            let unknownGrant = try await rp.post(
                OIDCPath.token.string, ["grant_type": "password", "username": "dr.smith", "password": Fixtures.password])
            #expect(unknownGrant.json["error"] as? String == "unsupported_grant_type")
            let noGrant = try await rp.post(OIDCPath.token.string, [:])
            #expect(noGrant.json["error"] as? String == "invalid_request")
        }
    }

    @Test func badRequestsAreAnsweredWithoutRedirectingToStrangers() async throws {
        try await withTestApp { ctx in
            let (rp, _, _) = try await setUp(ctx)
            let web = WebClient(ctx)
            let unregistered = try await web.get(rp.authorizePath(["redirect_uri": "https://evil.example/cb"]))
            #expect(unregistered.status == .badRequest)
            #expect(unregistered.location == nil)
            #expect(unregistered.body.string.contains("not registered"))
            let unknown = try await web.get(rp.authorizePath(["client_id": "tf-nobody"]))
            #expect(unknown.status == .badRequest)
            #expect(unknown.location == nil)

            // Errors after the redirect URI is known go back to it, with state and iss.
            let noNonce = try await web.get(rp.authorizePath(["nonce": ""]))
            #expect(OIDCHarness.parameters(of: noNonce)["error"] == "invalid_request")
            #expect(OIDCHarness.parameters(of: noNonce)["state"] == "st-123")
            let plain = try await web.get(rp.authorizePath(["code_challenge_method": "plain"]))
            #expect(OIDCHarness.parameters(of: plain)["error"] == "invalid_request")
            let implicit = try await web.get(rp.authorizePath(["response_type": "id_token token"]))
            #expect(OIDCHarness.parameters(of: implicit)["error"] == "unsupported_response_type")
            let noOpenID = try await web.get(rp.authorizePath(["scope": "profile"]))
            #expect(OIDCHarness.parameters(of: noOpenID)["error"] == "invalid_scope")
            let silent = try await web.get(rp.authorizePath(["prompt": "none"]))
            #expect(OIDCHarness.parameters(of: silent)["error"] == "login_required")
            let badMaxAge = try await web.get(rp.authorizePath(["max_age": "99999999999999999999"]))
            #expect(OIDCHarness.parameters(of: badMaxAge)["error"] == "invalid_request")
        }
    }

    @Test func publicClientsMustUsePKCEAndSendNoSecret() async throws {
        try await withTestApp { ctx in
            let (_, secret, practice) = try await setUp(ctx)
            let rp = try await OIDCHarness.register(ctx, practice: practice, isPublic: true, redirectURI: "http://127.0.0.1:8765/callback")
            let web = WebClient(ctx)
            _ = try await rp.signIn(web, secret: secret)
            let withoutPKCE = try await web.get(rp.authorizePath(pkce: false))
            #expect(OIDCHarness.parameters(of: withoutPKCE)["error"] == "invalid_request")
            let token = try await rp.exchange(try await rp.code(web))
            #expect(token.status == .ok, "\(token.text)")
            // Introspection is for confidential clients.
            let introspection = try await rp.post(OIDCPath.introspect.string, ["token": token.json["access_token"] as? String ?? ""])
            #expect(introspection.status == .unauthorized)
        }
    }

    @Test func refreshTokensRotateAndAReusedOneRevokesTheFamily() async throws {
        try await withTestApp { ctx in
            let (rp, secret, _) = try await setUp(ctx, allowRefresh: true)
            let web = WebClient(ctx)
            _ = try await rp.signIn(web, secret: secret)
            let first = try await rp.exchange(try await rp.code(web, ["scope": "openid offline_access"]))
            let refresh1 = try #require(first.json["refresh_token"] as? String)
            #expect(first.json["scope"] as? String == "openid offline_access")

            let second = try await rp.post(OIDCPath.token.string, ["grant_type": "refresh_token", "refresh_token": refresh1])
            #expect(second.status == .ok, "\(second.text)")
            let refresh2 = try #require(second.json["refresh_token"] as? String)
            let access2 = try #require(second.json["access_token"] as? String)
            #expect(refresh2 != refresh1)
            #expect(try await rp.userInfo(access2).status == .ok)

            let reuse = try await rp.post(OIDCPath.token.string, ["grant_type": "refresh_token", "refresh_token": refresh1])
            #expect(reuse.json["error"] as? String == "invalid_grant")
            // The whole family is gone: the newest refresh token and its access token too.
            #expect(
                try await rp.post(OIDCPath.token.string, ["grant_type": "refresh_token", "refresh_token": refresh2]).json["error"]
                    as? String == "invalid_grant")
            #expect(try await rp.userInfo(access2).status == .unauthorized)
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "oidc.refresh_token_reused").count() == 1)
        }
    }

    @Test func offlineAccessIsDroppedForClientsNotAllowedRefreshTokens() async throws {
        try await withTestApp { ctx in
            let (rp, secret, _) = try await setUp(ctx, allowRefresh: false)
            let web = WebClient(ctx)
            _ = try await rp.signIn(web, secret: secret)
            let token = try await rp.exchange(try await rp.code(web, ["scope": "openid offline_access"]))
            #expect(token.json["refresh_token"] == nil)
            #expect(token.json["scope"] as? String == "openid")
        }
    }

    @Test func revocationAndIntrospection() async throws {
        try await withTestApp { ctx in
            let (rp, secret, _) = try await setUp(ctx, allowRefresh: true)
            let web = WebClient(ctx)
            _ = try await rp.signIn(web, secret: secret)
            let token = try await rp.exchange(try await rp.code(web, ["scope": "openid profile offline_access"]))
            let access = try #require(token.json["access_token"] as? String)
            let refresh = try #require(token.json["refresh_token"] as? String)

            let live = try await rp.post(OIDCPath.introspect.string, ["token": access])
            #expect(live.json["active"] as? Bool == true)
            #expect(live.json["username"] as? String == "dr.smith")
            #expect(live.json["client_id"] as? String == rp.client.clientID)
            #expect(try await rp.post(OIDCPath.introspect.string, ["token": refresh]).json["token_type"] as? String == "refresh_token")
            #expect(try await rp.post(OIDCPath.introspect.string, ["token": "garbage"]).json["active"] as? Bool == false)

            #expect(try await rp.post(OIDCPath.revoke.string, ["token": access]).status == .ok)
            #expect(try await rp.post(OIDCPath.introspect.string, ["token": access]).json["active"] as? Bool == false)
            #expect(try await rp.post(OIDCPath.introspect.string, ["token": refresh]).json["active"] as? Bool == true)
            #expect(try await rp.post(OIDCPath.revoke.string, ["token": refresh, "token_type_hint": "refresh_token"]).status == .ok)
            #expect(try await rp.post(OIDCPath.introspect.string, ["token": refresh]).json["active"] as? Bool == false)
            // Unknown tokens are "revoked" too: the answer does not tell what exists.
            #expect(try await rp.post(OIDCPath.revoke.string, ["token": "unknown"]).status == .ok)
        }
    }

    @Test func promptLoginAndMaxAgeAskForThePasswordAgain() async throws {
        try await withTestApp { ctx in
            let (rp, secret, _) = try await setUp(ctx)
            let web = WebClient(ctx)
            _ = try await rp.signIn(web, secret: secret)
            ctx.clock.advance(5)
            let forced = try await web.get(rp.authorizePath(["prompt": "login"]))
            #expect(forced.location?.hasPrefix("/login?continue=oidc") == true, "\(forced.location ?? "")")
            let page = try await web.get(try #require(forced.location))
            #expect(page.status == .ok)
            #expect(page.body.string.contains(#"name="password""#))
            ctx.clock.advance(30)
            let code = try #require(OIDCHarness.parameters(of: try await rp.signIn(web, secret: secret))["code"])
            let claims = OIDCHarness.claims(try #require(try await rp.exchange(code).json["id_token"] as? String))
            #expect(claims["auth_time"] as? Int == Int(ctx.clock.now.timeIntervalSince1970))

            ctx.clock.advance(120)
            let old = try await web.get(rp.authorizePath(["max_age": "60"]))
            #expect(old.location?.hasPrefix("/login?continue=oidc") == true)
            let recent = try await rp.code(web, ["max_age": "3600"])
            #expect(!recent.isEmpty)
            let silent = try await web.get(rp.authorizePath(["max_age": "60", "prompt": "none"]))
            #expect(OIDCHarness.parameters(of: silent)["error"] == "login_required")
        }
    }

    @Test func acrValuesDemandAFreshSecondFactorInsideARememberedBrowser() async throws {
        try await withTestApp { ctx in
            let (rp, secret, _) = try await setUp(ctx)
            let web = WebClient(ctx)
            _ = try await rp.signIn(web, secret: secret, remember: true)
            _ = try await web.post(WebPath.logout.string)
            ctx.clock.advance(30)
            // The remembered browser skips the code: the session is password-only, and the id token says so.
            _ = try await rp.signIn(web, secret: nil)
            let plain = try await rp.exchange(try await rp.code(web))
            let plainClaims = OIDCHarness.claims(try #require(plain.json["id_token"] as? String))
            #expect(plainClaims["amr"] as? [String] == ["pwd"])
            #expect(plainClaims["acr"] as? String == "urn:twofold:acr:password")

            // Asking for two factors sends the user to the code page even though the browser is remembered.
            let silent = try await web.get(rp.authorizePath(["acr_values": "urn:twofold:acr:2fa", "prompt": "none"]))
            #expect(OIDCHarness.parameters(of: silent)["error"] == "interaction_required")
            let stepUp = try await web.get(rp.authorizePath(["acr_values": "urn:twofold:acr:2fa"]))
            #expect(stepUp.location == WebPath.twoFactor.string)
            _ = try await web.get(WebPath.twoFactor.string)
            let done = try await rp.follow(
                web, try await web.post(WebPath.twoFactor.string, ["code": try Fixtures.code(secret, at: ctx.clock.now)]))
            let code = try #require(OIDCHarness.parameters(of: done)["code"])
            let strong = OIDCHarness.claims(try #require(try await rp.exchange(code).json["id_token"] as? String))
            #expect(strong["acr"] as? String == "urn:twofold:acr:2fa")
            #expect(strong["amr"] as? [String] == ["pwd", "otp", "mfa"])

            // Even a session that proved two factors a moment ago proves them again for a step-up…
            ctx.clock.advance(30)
            let again = try await web.get(rp.authorizePath(["acr_values": "urn:twofold:acr:2fa"]))
            #expect(again.location == WebPath.twoFactor.string)
            _ = try await web.get(WebPath.twoFactor.string)
            let repeated = try await rp.follow(
                web, try await web.post(WebPath.twoFactor.string, ["code": try Fixtures.code(secret, at: ctx.clock.now)]))
            #expect(OIDCHarness.parameters(of: repeated)["code"] != nil)
            // …unless max_age accepts an earlier proof.
            #expect(!(try await rp.code(web, ["acr_values": "urn:twofold:acr:2fa", "max_age": "600"]).isEmpty))

            // A phishing-resistant factor cannot be met by an account without a passkey.
            let passkey = try await web.get(rp.authorizePath(["acr_values": "urn:twofold:acr:phishing-resistant"]))
            #expect(OIDCHarness.parameters(of: passkey)["error"] == "unmet_authentication_requirements")
        }
    }

    @Test func mandatoryTwoFactorEnrollsTheUserBeforeTheApplicationGetsACode() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx, mandatory: true)
            _ = try await Fixtures.user(ctx, practice: practice)
            let rp = try await OIDCHarness.register(ctx, practice: practice)
            let web = WebClient(ctx)
            _ = try await web.get(rp.authorizePath())
            _ = try await web.get(WebPath.login.string)
            let password = try await web.post(WebPath.login.string, ["username": "dr.smith", "password": Fixtures.password])
            #expect(password.location == WebPath.home.string || password.location == WebPath.setup.string)
            // The application waits while the user sets up an authenticator app.
            #expect(try await web.get(WebPath.home.string).location == WebPath.setup.string)
            #expect(try await OIDCAuthorizationCode.query(on: ctx.app.db).count() == 0)
            _ = try await web.get(WebPath.setup.string)
            let started = try await web.post(WebPath.setupApp.string)
            _ = try await web.get(try #require(started.location, "\(started.status) \(started.text.prefix(300))"))
            let factor = try #require(try await Factor.query(on: ctx.app.db).first())
            let secret = try TOTPVerifier(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now).secret(of: factor)
            _ = try await web.post(started.location!, ["code": try Fixtures.code(secret.base32, at: ctx.clock.now)])
            let saved = try await web.post(WebPath.recoveryCodesSaved.string, ["saved": "1"])
            let back = try await rp.follow(web, saved)
            let code = try #require(OIDCHarness.parameters(of: back)["code"], "\(back.location ?? back.text)")
            let claims = OIDCHarness.claims(try #require(try await rp.exchange(code).json["id_token"] as? String))
            #expect(claims["amr"] as? [String] == ["pwd", "otp", "mfa"])
        }
    }

    @Test func aUserOfAnotherPracticeIsRefused() async throws {
        try await withTestApp { ctx in
            let (_, secret, _) = try await setUp(ctx)
            let other = try await Fixtures.practice(ctx, name: "Lakeside Pediatrics")
            let rp = try await OIDCHarness.register(ctx, practice: other)
            let web = WebClient(ctx)
            _ = try await rp.signIn(web, secret: secret)
            let refused = try await web.get(rp.authorizePath())
            #expect(OIDCHarness.parameters(of: refused)["error"] == "access_denied")
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "oidc.access_denied").count() == 1)
            #expect(try await OIDCAuthorizationCode.query(on: ctx.app.db).count() == 0)
        }
    }

    @Test func esClientsGetES256TokensAndDisabledClientsStop() async throws {
        try await withTestApp { ctx in
            let (rp, secret, _) = try await setUp(ctx, alg: "ES256")
            let web = WebClient(ctx)
            _ = try await rp.signIn(web, secret: secret)
            let token = try await rp.exchange(try await rp.code(web))
            let idToken = try #require(token.json["id_token"] as? String)
            #expect(OIDCHarness.header(idToken)["alg"] as? String == "ES256")
            let access = try #require(token.json["access_token"] as? String)
            rp.client.enabled = false
            try await rp.client.save(on: ctx.app.db)
            #expect(try await rp.userInfo(access).status == .unauthorized)
            #expect(try await web.get(rp.authorizePath()).status == .badRequest)
        }
    }

    @Test func logoutConfirmsEndsTheSessionAndTellsEveryApplication() async throws {
        let receiver = try await FakeHTTPServer.start(status: .ok)
        defer { Task { await receiver.stop() } }
        try await withTestApp { ctx in
            let (rp, secret, practice) = try await setUp(ctx, backchannel: "http://127.0.0.1:\(receiver.port)/backchannel")
            let portal = try await OIDCHarness.register(ctx, practice: practice, backchannel: "http://127.0.0.1:\(receiver.port)/portal")
            let web = WebClient(ctx)
            _ = try await rp.signIn(web, secret: secret)
            let idToken = try #require(try await rp.exchange(try await rp.code(web)).json["id_token"] as? String)
            let portalToken = try await portal.exchange(try await portal.code(web))
            let portalAccess = try #require(portalToken.json["access_token"] as? String)

            let query =
                "id_token_hint=\(idToken)&post_logout_redirect_uri=\(WebClient.escape("https://ehr.example.org/signed-out"))&state=bye"
            // An unregistered return address is refused and nothing happens.
            let evil = try await web.get(
                OIDCPath.logout.string + "?id_token_hint=\(idToken)&post_logout_redirect_uri=\(WebClient.escape("https://evil.example/"))")
            #expect(evil.status == .badRequest)
            #expect(evil.location == nil)

            let confirm = try await web.get(OIDCPath.logout.string + "?" + query)
            #expect(confirm.status == .ok)
            #expect(confirm.body.string.contains(#"id="confirm-sign-out""#))
            // Without the page's CSRF token the confirmation is refused.
            let forged = try await web.post(
                OIDCPath.logout.string,
                ["confirm": "yes", "post_logout_redirect_uri": "https://ehr.example.org/signed-out", "client_id": rp.client.clientID],
                csrf: "")
            #expect(forged.status == .forbidden)
            let done = try await web.post(
                OIDCPath.logout.string,
                [
                    "confirm": "yes", "post_logout_redirect_uri": "https://ehr.example.org/signed-out",
                    "client_id": rp.client.clientID, "state": "bye",
                ])
            #expect(done.location == "https://ehr.example.org/signed-out?state=bye")
            #expect(try await web.get(WebPath.home.string).location?.hasPrefix(WebPath.login.string) == true)
            #expect(try await portal.userInfo(portalAccess).status == .unauthorized)

            let received = receiver.requests
            #expect(Set(received.map(\.path)) == ["/backchannel", "/portal"])
            let tokenField = try #require(received.first { $0.path == "/backchannel" }?.body.split(separator: "=", maxSplits: 1).last)
            let logoutToken = String(tokenField).removingPercentEncoding ?? String(tokenField)
            #expect(OIDCHarness.header(logoutToken)["typ"] as? String == "logout+jwt")
            let logoutClaims = try await TokenSigner(database: ctx.app.db, sealer: ctx.app.twofold.sealer, now: ctx.clock.now).verify(
                logoutToken, as: LogoutTokenClaims.self)
            #expect(logoutClaims.sid == OIDCHarness.claims(idToken)["sid"] as? String)
            #expect(logoutClaims.aud == rp.client.clientID)
            #expect(logoutClaims.events[LogoutTokenClaims.event] != nil)
            #expect(try await AuditEvent.query(on: ctx.app.db).filter(\.$event == "oidc.backchannel_logout_sent").count() == 2)
        }
    }

    @Test func signingOutOfTwofoldSignsOutOfTheApplicationsToo() async throws {
        let receiver = try await FakeHTTPServer.start(status: .ok)
        defer { Task { await receiver.stop() } }
        try await withTestApp { ctx in
            let (rp, secret, _) = try await setUp(ctx, backchannel: "http://127.0.0.1:\(receiver.port)/bc")
            let web = WebClient(ctx)
            _ = try await rp.signIn(web, secret: secret)
            _ = try await rp.exchange(try await rp.code(web))
            _ = try await web.get(WebPath.home.string)
            _ = try await web.post(WebPath.logout.string)
            #expect(receiver.requests.count == 1)
        }
    }
}

@Suite("OpenID Connect authorization decisions")
struct AuthorizationDecisionTests {
    let requested = Date(timeIntervalSince1970: 1_900_000_000)

    private func session(
        signedIn: Bool = true, samePractice: Bool = true, assurance: AssuranceLevel = .twoFactor, authTime: Date? = nil,
        hasSecondFactor: Bool = true, hasPasskey: Bool = false
    ) -> AuthorizationDecision.Session {
        .init(
            signedIn: signedIn, samePractice: samePractice, authTime: authTime ?? requested.addingTimeInterval(-600), assurance: assurance,
            hasSecondFactor: hasSecondFactor, hasPasskey: hasPasskey)
    }

    private func decide(
        _ session: AuthorizationDecision.Session?, promptNone: Bool = false, promptLogin: Bool = false, maxAge: Int? = nil,
        level: AssuranceLevel? = nil, demanded: Bool = false
    ) -> AuthorizationDecision {
        AuthorizationDecision.decide(
            session: session, promptNone: promptNone, promptLogin: promptLogin, maxAge: maxAge, requiredLevel: level,
            factorDemanded: demanded, requestedAt: requested, now: requested.addingTimeInterval(5))
    }

    @Test func rules() {
        #expect(decide(nil) == .signIn)
        #expect(decide(nil, promptNone: true) == .refuse(.loginRequired()))
        #expect(decide(session(signedIn: false)) == .continueSignIn)
        #expect(decide(session()) == .issue)
        if case .refuse(let error) = decide(session(samePractice: false)) {
            #expect(error.code == "access_denied")
        } else {
            Issue.record("not refused")
        }
        #expect(decide(session(), promptLogin: true) == .freshSignIn)
        #expect(decide(session(authTime: requested.addingTimeInterval(1)), promptLogin: true) == .issue)
        #expect(decide(session(), maxAge: 60) == .freshSignIn)
        #expect(decide(session(), maxAge: 3600) == .issue)
        #expect(decide(session(authTime: requested.addingTimeInterval(1)), maxAge: 0) == .issue)
        #expect(decide(session(assurance: .password), level: .twoFactor) == .freshFactor(passkeyOnly: false))
        #expect(decide(session(assurance: .password), level: .twoFactor, demanded: true).isRefusal)
        #expect(decide(session(assurance: .password, hasSecondFactor: false), level: .twoFactor).isRefusal)
        #expect(decide(session(), level: .phishingResistant).isRefusal)
        #expect(decide(session(hasPasskey: true), level: .phishingResistant) == .freshFactor(passkeyOnly: true))
        #expect(decide(session(assurance: .phishingResistant, authTime: requested.addingTimeInterval(1)), level: .twoFactor) == .issue)
        // A step-up is fresh: a session that proved two factors earlier proves them again, unless max_age allows it.
        #expect(decide(session(), level: .twoFactor) == .freshFactor(passkeyOnly: false))
        #expect(decide(session(), maxAge: 3600, level: .twoFactor) == .issue)
        #expect(decide(session(), maxAge: 60, level: .twoFactor) == .freshSignIn)
        #expect(
            decide(session(assurance: .phishingResistant, hasPasskey: true), level: .phishingResistant) == .freshFactor(passkeyOnly: true))
        #expect(decide(session(), level: .password) == .issue)
        if case .refuse(let error) = decide(session(assurance: .password), promptNone: true, level: .twoFactor) {
            #expect(error.code == "interaction_required")
        } else {
            Issue.record("not refused")
        }
    }

    @Test func pkce() {
        // RFC 7636 appendix B.
        #expect(PKCE.challenge(for: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        #expect(
            PKCE.verifies(verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
        )
        #expect(!PKCE.verifies(verifier: "short", challenge: PKCE.challenge(for: "short")))
    }
}

extension AuthorizationDecision {
    var isRefusal: Bool { if case .refuse = self { true } else { false } }
}
