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
