import Foundation
import TwofoldCore

/// The validated parameters of an authorization request (OpenID Connect Core §3.1.2.1, RFC 7636, RFC 6749 §4.1.1).
struct AuthorizationParameters: Equatable, Sendable {
    var redirectURI: String
    var scope: String
    var state: String?
    var nonce: String
    var codeChallenge: String?
    var promptNone: Bool
    var promptLogin: Bool
    var maxAge: Int?
    var requiredLevel: AssuranceLevel?
    var loginHint: String?

    /// Scopes Twofold grants; others are ignored (RFC 6749 §3.3 lets the server grant fewer than asked).
    static let supportedScopes = ["openid", "profile", "email", "phone", "offline_access"]
    static let maxStateLength = 1024
    static let maxNonceLength = 255

    /// Checks the client and its redirect URI first: until both are known good, nothing may be redirected.
    static func checkClient(_ client: OIDCClient?, redirectURI: String?) throws -> OIDCClient {
        guard let client, client.enabled else {
            throw OIDCPageError(
                title: "Unknown application",
                message:
                    "The application that sent you here is not registered with Twofold, or has been turned off. Tell your practice's administrator which application you were opening."
            )
        }
        guard let redirectURI, !redirectURI.isEmpty else {
            throw OIDCPageError(
                title: "Sign-in request incomplete",
                message: "The application did not say where to send you back (redirect_uri is missing).")
        }
        guard client.redirectURIs.contains(redirectURI) else {
            throw OIDCPageError(
                title: "Sign-in request refused",
                message:
                    "The application asked to send you back to an address that is not registered for \(client.name). Nothing was sent. An administrator can check the application's redirect URIs under Administration › Applications."
            )
        }
        return client
    }

    /// Reads the remaining parameters; any problem is an OAuth error for the (already checked) redirect URI.
    init(_ parameters: [String: String], client: OIDCClient, redirectURI: String) throws {
        self.redirectURI = redirectURI
        if parameters["request"] != nil {
            throw OAuthError(code: "request_not_supported", description: "Request objects are not supported.")
        }
        if parameters["request_uri"] != nil {
            throw OAuthError(code: "request_uri_not_supported", description: "request_uri is not supported.")
        }
        guard let responseType = parameters["response_type"], !responseType.isEmpty else {
            throw OAuthError.invalidRequest("response_type is missing; use response_type=code.")
        }
        guard responseType == "code" else { throw OAuthError.unsupportedResponseType() }
        if let mode = parameters["response_mode"], mode != "query" {
            throw OAuthError.invalidRequest("response_mode \(mode.prefix(40)) is not supported; Twofold answers in the query string.")
        }
        let scopes = (parameters["scope"] ?? "").split(separator: " ").map(String.init)
        guard scopes.contains("openid") else { throw OAuthError.invalidScope("The scope must include openid.") }
        let granted = Self.supportedScopes.filter { scopes.contains($0) && ($0 != "offline_access" || client.allowOfflineAccess) }
        scope = granted.joined(separator: " ")

        state = parameters["state"]
        if let state, state.utf8.count > Self.maxStateLength {
            throw OAuthError.invalidRequest("state is longer than \(Self.maxStateLength) bytes.")
        }
        guard let nonce = parameters["nonce"], !nonce.isEmpty else {
            throw OAuthError.invalidRequest("nonce is required: send a fresh random value and check it in the id token.")
        }
        guard nonce.utf8.count <= Self.maxNonceLength else {
            throw OAuthError.invalidRequest("nonce is longer than \(Self.maxNonceLength) bytes.")
        }
        self.nonce = nonce

        if let challenge = parameters["code_challenge"] {
            guard parameters["code_challenge_method"] == "S256" else {
                throw OAuthError.invalidRequest("code_challenge_method must be S256 (plain is not accepted).")
            }
            guard PKCE.isWellFormed(challenge), challenge.utf8.count == 43 else {
                throw OAuthError.invalidRequest("code_challenge must be the base64url SHA-256 of the code verifier (43 characters).")
            }
            codeChallenge = challenge
        } else {
            if parameters["code_challenge_method"] != nil {
                throw OAuthError.invalidRequest("code_challenge_method without code_challenge.")
            }
            if client.isPublic {
                throw OAuthError.invalidRequest("This application is a public client: PKCE (code_challenge with S256) is required.")
            }
            codeChallenge = nil
        }

        let prompts = Set((parameters["prompt"] ?? "").split(separator: " ").map(String.init))
        for prompt in prompts where !["none", "login", "consent", "select_account"].contains(prompt) {
            throw OAuthError.invalidRequest("prompt \(prompt.prefix(40)) is not known.")
        }
        if prompts.contains("none"), prompts.count > 1 {
            throw OAuthError.invalidRequest("prompt=none cannot be combined with other values.")
        }
        promptNone = prompts.contains("none")
        promptLogin = prompts.contains("login")

        if let raw = parameters["max_age"] {
            guard let value = Int(raw), (0...(10 * 365 * 86_400)).contains(value) else {
                throw OAuthError.invalidRequest("max_age must be a number of seconds from 0 to 315360000.")
            }
            maxAge = value
        } else {
            maxAge = nil
        }
        requiredLevel = parameters["acr_values"].flatMap(AssuranceLevel.required(byACRValues:))
        loginHint = parameters["login_hint"].map { String($0.trimmingCharacters(in: .whitespacesAndNewlines).prefix(100)) }.flatMap {
            $0.isEmpty ? nil : $0
        }
    }
}

/// PKCE (RFC 7636): only S256.
enum PKCE {
    /// 43–128 characters of the unreserved set (§4.1).
    static func isWellFormed(_ value: String) -> Bool {
        (43...128).contains(value.utf8.count)
            && value.utf8.allSatisfy { byte in
                (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
                    || byte == 0x2D || byte == 0x2E || byte == 0x5F || byte == 0x7E
            }
    }

    static func challenge(for verifier: String) -> String {
        Base64URL.encode(Array(TwofoldCore.Digest.sha256(Array(verifier.utf8))))
    }

    static func verifies(verifier: String, challenge: String) -> Bool {
        isWellFormed(verifier) && ConstantTime.equals(Array(self.challenge(for: verifier).utf8), Array(challenge.utf8))
    }
}

/// What to do with an authorization request given the browser's Twofold session: a pure decision, so that every
/// rule (single sign-on, prompt, max_age, acr_values, cross-practice refusal) is testable without HTTP.
enum AuthorizationDecision: Equatable, Sendable {
    /// Issue the code now.
    case issue
    /// Send the user to the sign-in page (no session).
    case signIn
    /// The user is part-way through signing in (second factor, enrollment, password change): let them finish.
    case continueSignIn
    /// Sign in again with the password (prompt=login, max_age).
    case freshSignIn
    /// Prove a fresh second factor within the session; `passkeyOnly` for a phishing-resistant requirement.
    case freshFactor(passkeyOnly: Bool)
    case refuse(OAuthError)

    struct Session: Sendable {
        var signedIn: Bool
        var samePractice: Bool
        var authTime: Date?
        var assurance: AssuranceLevel
        var hasSecondFactor: Bool
        var hasPasskey: Bool
    }

    /// - Parameter factorDemanded: a fresh factor was already asked for this request; if the session still falls
    ///   short, the request fails rather than asking again.
    static func decide(
        session: Session?, promptNone: Bool, promptLogin: Bool, maxAge: Int?, requiredLevel: AssuranceLevel?,
        factorDemanded: Bool, requestedAt: Date, now: Date
    ) -> AuthorizationDecision {
        guard let session else { return promptNone ? .refuse(.loginRequired()) : .signIn }
        guard session.signedIn else { return promptNone ? .refuse(.loginRequired()) : .continueSignIn }
        guard session.samePractice else {
            return .refuse(.accessDenied("This application belongs to another practice; your account cannot sign in to it."))
        }
        let authTime = session.authTime ?? .distantPast
        // A sign-in that happened after the request started always counts as fresh (max_age=0 means "sign in now").
        let signedInForThisRequest = authTime >= requestedAt
        let tooOld = maxAge.map { now.timeIntervalSince(authTime) > TimeInterval($0) } ?? false
        if !signedInForThisRequest, promptLogin || tooOld {
            return promptNone ? .refuse(.loginRequired()) : .freshSignIn
        }
        // Asking for two factors (or a phishing-resistant one) is a step-up: the session must have proved that level
        // for this request, or within max_age when the application allows an earlier proof.
        let provedRecently = signedInForThisRequest || (maxAge != nil && !tooOld)
        if let requiredLevel, requiredLevel > .password, session.assurance < requiredLevel || !provedRecently {
            if factorDemanded {
                return .refuse(.unmetAuthenticationRequirements("The sign-in did not reach the assurance the application asked for."))
            }
            if promptNone { return .refuse(.interactionRequired("The application asks for a stronger sign-in than this session's.")) }
            switch requiredLevel {
            case .phishingResistant:
                guard session.hasPasskey else {
                    return .refuse(
                        .unmetAuthenticationRequirements(
                            "The application requires a passkey or security key, and this account has none. Add one under Account › Security."
                        ))
                }
                return .freshFactor(passkeyOnly: true)
            case .twoFactor:
                guard session.hasSecondFactor else {
                    return .refuse(
                        .unmetAuthenticationRequirements(
                            "The application requires two-factor authentication; turn it on under Account › Security first."))
                }
                return .freshFactor(passkeyOnly: false)
            case .password:
                break
            }
        }
        return .issue
    }
}
