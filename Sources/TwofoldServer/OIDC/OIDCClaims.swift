import Crypto
import Foundation
import JWTKit
import TwofoldCore

/// The user's claims by scope, shared by the id token and the userinfo endpoint (OpenID Connect Core §5.1, §5.4).
struct OIDCUserClaims: Codable, Sendable, Equatable {
    struct PracticeClaim: Codable, Sendable, Equatable {
        var id: String
        var name: String
    }

    var name: String?
    var given_name: String?
    var family_name: String?
    var preferred_username: String?
    var email: String?
    var email_verified: Bool?
    var phone_number: String?
    var phone_number_verified: Bool?
    var practice: PracticeClaim?
    var roles: [String]?

    init(user: User, practice: Practice, scopes: Set<String>, confirmedPhones: Set<String>) {
        if scopes.contains("profile") {
            name = "\(user.firstName) \(user.lastName)".trimmingCharacters(in: .whitespaces)
            given_name = user.firstName
            family_name = user.lastName
            preferred_username = user.username
            self.practice = PracticeClaim(id: practice.id?.uuidString.lowercased() ?? "", name: practice.name)
            roles = OIDCUserClaims.roles(of: user)
        }
        if scopes.contains("email"), !user.email.isEmpty {
            email = user.email
            // Addresses are typed by administrators; Twofold has not confirmed that the user receives mail there.
            email_verified = false
        }
        if scopes.contains("phone"), let phone = user.cellPhone, !phone.isEmpty {
            phone_number = phone
            phone_number_verified = confirmedPhones.contains(phone)
        }
    }

    static func roles(of user: User) -> [String] {
        var roles = [user.role.rawValue]
        if user.permissions.contains(User.Permission.manageAccounts.rawValue) { roles.append("administrator") }
        return roles
    }
}

/// Claims of an id token (OpenID Connect Core §2): who signed in, when and how, for which client.
struct IDTokenClaims: JWTPayload, Equatable {
    var iss: String
    var sub: String
    var aud: String
    var exp: Int64
    var iat: Int64
    var auth_time: Int64
    var nonce: String?
    var sid: String
    var amr: [String]
    var acr: String
    var azp: String
    var at_hash: String?
    var user: OIDCUserClaims

    enum CodingKeys: String, CodingKey {
        case iss, sub, aud, exp, iat, auth_time, nonce, sid, amr, acr, azp, at_hash
    }

    init(
        iss: String, sub: String, aud: String, exp: Int64, iat: Int64, auth_time: Int64, nonce: String?, sid: String,
        amr: [String], acr: String, azp: String, at_hash: String?, user: OIDCUserClaims
    ) {
        self.iss = iss
        self.sub = sub
        self.aud = aud
        self.exp = exp
        self.iat = iat
        self.auth_time = auth_time
        self.nonce = nonce
        self.sid = sid
        self.amr = amr
        self.acr = acr
        self.azp = azp
        self.at_hash = at_hash
        self.user = user
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        iss = try container.decode(String.self, forKey: .iss)
        sub = try container.decode(String.self, forKey: .sub)
        aud = try container.decode(String.self, forKey: .aud)
        exp = try container.decode(Int64.self, forKey: .exp)
        iat = try container.decode(Int64.self, forKey: .iat)
        auth_time = try container.decode(Int64.self, forKey: .auth_time)
        nonce = try container.decodeIfPresent(String.self, forKey: .nonce)
        sid = try container.decode(String.self, forKey: .sid)
        amr = try container.decode([String].self, forKey: .amr)
        acr = try container.decode(String.self, forKey: .acr)
        azp = try container.decode(String.self, forKey: .azp)
        at_hash = try container.decodeIfPresent(String.self, forKey: .at_hash)
        user = try OIDCUserClaims(from: decoder)
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(iss, forKey: .iss)
        try container.encode(sub, forKey: .sub)
        try container.encode(aud, forKey: .aud)
        try container.encode(exp, forKey: .exp)
        try container.encode(iat, forKey: .iat)
        try container.encode(auth_time, forKey: .auth_time)
        try container.encodeIfPresent(nonce, forKey: .nonce)
        try container.encode(sid, forKey: .sid)
        try container.encode(amr, forKey: .amr)
        try container.encode(acr, forKey: .acr)
        try container.encode(azp, forKey: .azp)
        try container.encodeIfPresent(at_hash, forKey: .at_hash)
        try user.encode(to: encoder)
    }

    /// Claims are checked by Twofold against its own clock, not by the JOSE library.
    func verify(using algorithm: some JWTAlgorithm) async throws {}

    /// `at_hash`: the left half of the SHA-256 of the access token, base64url (Core §3.1.3.6; RS256 and ES256 both hash with SHA-256).
    static func accessTokenHash(_ accessToken: String) -> String {
        Base64URL.encode(Array(SHA256.hash(data: Array(accessToken.utf8))).prefix(16))
    }
}

/// Only what RP-initiated logout reads from an `id_token_hint`.
struct IDTokenHint: JWTPayload {
    var iss: String
    var sub: String
    var aud: String
    var sid: String?

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// Claims of an access token in the JWT profile of RFC 9068 (header `typ: at+jwt`).
struct AccessTokenClaims: JWTPayload, Equatable {
    var iss: String
    var sub: String
    var aud: String
    var exp: Int64
    var iat: Int64
    var jti: String
    var client_id: String
    var scope: String
    var auth_time: Int64
    var acr: String
    var amr: [String]
    var sid: String?

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// A back-channel logout token (OpenID Connect Back-Channel Logout 1.0 §2.4, header `typ: logout+jwt`).
struct LogoutTokenClaims: JWTPayload, Equatable {
    static let event = "http://schemas.openid.net/event/backchannel-logout"

    var iss: String
    var aud: String
    var iat: Int64
    var exp: Int64
    var jti: String
    var sub: String
    var sid: String
    var events: [String: [String: String]]

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
