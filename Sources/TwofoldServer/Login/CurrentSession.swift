import Fluent
import Vapor

/// The session a request carries, with its user and practice, loaded once by ``SessionLoader``.
struct CurrentSession: Sendable {
    let record: SessionRecord
    let user: User
    let practice: Practice
    let hasActiveFactor: Bool
    /// True when the token came in an `Authorization: Bearer` header rather than a cookie.
    let viaBearer: Bool
    /// The ids of ``user`` and ``practice``, read once when the session is loaded.
    let userID: UUID
    let practiceID: UUID

    /// Throws when the user or practice has no id (a model that was never saved).
    init(record: SessionRecord, user: User, practice: Practice, hasActiveFactor: Bool, viaBearer: Bool) throws {
        self.record = record
        self.user = user
        self.practice = practice
        self.hasActiveFactor = hasActiveFactor
        self.viaBearer = viaBearer
        self.userID = try user.requireID()
        self.practiceID = try practice.requireID()
    }

    /// The practice or an administrator requires 2FA of this user.
    var twoFactorRequired: Bool { practice.mandatoryTwoFactor || user.twoFactorRequired }
    var mustEnroll: Bool { twoFactorRequired && !hasActiveFactor }
}

extension Request {
    private struct CurrentSessionKey: StorageKey { typealias Value = CurrentSession }
    private struct SessionExpiredKey: StorageKey { typealias Value = Bool }

    var currentSession: CurrentSession? {
        get { storage[CurrentSessionKey.self] }
        set { storage[CurrentSessionKey.self] = newValue }
    }

    /// Set when this request arrived with a session that had been idle too long.
    var sessionExpired: Bool {
        get { storage[SessionExpiredKey.self] ?? false }
        set { storage[SessionExpiredKey.self] = newValue }
    }
}

enum SessionCookie {
    /// The names on plain HTTP. Over HTTPS (`TWOFOLD_SECURE_COOKIES=true`) each carries the `__Host-` prefix, which
    /// browsers accept only with Secure, Path=/ and no Domain: no subdomain or plain-HTTP page can plant or shadow them.
    static let name = "twofold_session"
    static let rememberName = "twofold_remember"
    static let csrfName = "twofold_csrf"

    static func name(secure: Bool) -> String { secure ? "__Host-" + name : name }
    static func rememberName(secure: Bool) -> String { secure ? "__Host-" + rememberName : rememberName }
    static func csrfName(secure: Bool) -> String { secure ? "__Host-" + csrfName : csrfName }

    static func value(_ token: String, secure: Bool, maxAge: Int? = nil) -> HTTPCookies.Value {
        HTTPCookies.Value(string: token, maxAge: maxAge, path: "/", isSecure: secure, isHTTPOnly: true, sameSite: .lax)
    }

    static func expired(secure: Bool) -> HTTPCookies.Value {
        HTTPCookies.Value(
            string: "", expires: Date(timeIntervalSince1970: 0), maxAge: 0, path: "/", isSecure: secure, isHTTPOnly: true, sameSite: .lax)
    }
}

extension Request {
    /// The session cookie's name for this server (with `__Host-` over HTTPS).
    var sessionCookieName: String { SessionCookie.name(secure: twofold.configuration.secureCookies) }
    var rememberCookieName: String { SessionCookie.rememberName(secure: twofold.configuration.secureCookies) }
    var csrfCookieName: String { SessionCookie.csrfName(secure: twofold.configuration.secureCookies) }
}
