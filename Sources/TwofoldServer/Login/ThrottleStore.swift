import Fluent
import Foundation
import SQLKit
import TwofoldCore

/// Fixed-window counters kept in the database, so every instance sees the same counts.
struct ThrottleStore {
    static let table = "throttle_buckets"
    let database: any Database

    private struct Row: Decodable {
        var count: Int
        var window_started_at: Date
    }

    /// The date the limit lifts, or nil when another event is allowed.
    func blockedUntil(_ key: String, limit: FixedWindowLimit, now: Date) async throws -> Date? {
        guard let row = try await database.sql.select().columns("count", "window_started_at").from(Self.table)
            .where("key", .equal, key).first(decoding: Row.self)
        else { return nil }
        return limit.blockedUntil(count: row.count, windowStart: row.window_started_at, now: now)
    }

    /// Whole seconds (at least 1) until the limit lifts, for `Retry-After`; nil when another event is allowed.
    func secondsBlocked(_ key: String, limit: FixedWindowLimit, now: Date) async throws -> Int? {
        try await blockedUntil(key, limit: limit, now: now).map { max(1, Int($0.timeIntervalSince(now).rounded(.up))) }
    }

    /// Counts one event, starting a new window when the old one has ended; returns the new count.
    @discardableResult
    func record(_ key: String, limit: FixedWindowLimit, now: Date) async throws -> Int {
        let windowOpen = now.addingTimeInterval(-limit.window)
        let t = SQLIdentifier(Self.table)
        let row = try await database.sql.raw("""
            INSERT INTO \(t) (\(ident: "key"), \(ident: "count"), \(ident: "window_started_at")) VALUES (\(bind: key), 1, \(bind: now))
            ON CONFLICT (\(ident: "key")) DO UPDATE SET
              \(ident: "count") = CASE WHEN \(t).\(ident: "window_started_at") <= \(bind: windowOpen) THEN 1 ELSE \(t).\(ident: "count") + 1 END,
              \(ident: "window_started_at") = CASE WHEN \(t).\(ident: "window_started_at") <= \(bind: windowOpen) THEN \(bind: now) ELSE \(t).\(ident: "window_started_at") END
            RETURNING \(ident: "count"), \(ident: "window_started_at")
            """).first(decoding: Row.self)
        return row?.count ?? 1
    }

    func reset(_ key: String) async throws {
        try await database.sql.delete(from: Self.table).where("key", .equal, key).run()
    }
}

struct CreateThrottleBucket: AsyncMigration {
    func prepare(on database: any Database) async throws {
        try await database.schema(ThrottleStore.table)
            .field("key", .string, .required)
            .field("count", .int, .required)
            .field("window_started_at", .datetime, .required)
            .unique(on: "key")
            .create()
    }

    func revert(on database: any Database) async throws {
        try await database.schema(ThrottleStore.table).delete()
    }
}
