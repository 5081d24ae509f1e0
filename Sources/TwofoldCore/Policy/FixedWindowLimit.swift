import Foundation

/// A count of events in a fixed time window, such as wrong passwords per account per 15 minutes.
public struct FixedWindowLimit: Sendable, Hashable {
    /// Events allowed in one window.
    public var limit: Int
    /// Length of the window.
    public var window: TimeInterval

    /// Creates a limit of `limit` events per `window` seconds.
    public init(limit: Int, window: TimeInterval) {
        self.limit = limit
        self.window = window
    }

    /// Whether another event is allowed, given the window's count so far.
    /// - Parameters:
    ///   - count: events counted in the window that started at `windowStart`.
    ///   - windowStart: when that window began.
    ///   - now: the current time.
    /// - Returns: `nil` when allowed, otherwise the date the window ends.
    public func blockedUntil(count: Int, windowStart: Date, now: Date) -> Date? {
        let end = windowStart.addingTimeInterval(window)
        guard now < end else { return nil }
        return count >= limit ? end : nil
    }
}

/// The limits Twofold applies to guessable inputs.
public enum ThrottleLimits {
    /// Wrong passwords for one username in 15 minutes.
    public static let passwordPerAccount = FixedWindowLimit(limit: 10, window: 15 * 60)
    /// Wrong passwords from one client address in 15 minutes (a clinic shares one address, hence generous).
    public static let passwordPerAddress = FixedWindowLimit(limit: 100, window: 15 * 60)
    /// Text messages to one user: one per 30 seconds and five per hour; the same for one phone number.
    public static let smsBurst = FixedWindowLimit(limit: 1, window: 30)
    public static let smsHourly = FixedWindowLimit(limit: 5, window: 60 * 60)
    /// Passwordless passkey ceremonies started from one client address in 5 minutes.
    public static let passkeyOptionsPerAddress = FixedWindowLimit(limit: 60, window: 5 * 60)
    /// Failed passwordless passkey sign-ins from one client address in 15 minutes.
    public static let passkeyFailuresPerAddress = FixedWindowLimit(limit: 30, window: 15 * 60)
    /// Failed client authentications (wrong secret) for one OpenID Connect client id from one address in 10 minutes; a success
    /// gives its reservation back.
    public static let oidcClientAuthenticationFailures = FixedWindowLimit(limit: 20, window: 10 * 60)
    /// Requests to the token, revocation and introspection endpoints from one client address per minute.
    public static let oidcTokenRequestsPerAddress = FixedWindowLimit(limit: 600, window: 60)
}
