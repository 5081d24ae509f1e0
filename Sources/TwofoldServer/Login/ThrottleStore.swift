import Fluent
import Foundation
import SQLKit
import TwofoldCore

/// Fixed-window counters kept in the database, so every instance sees the same counts.
///
/// Every limit is *reserved* before the check it guards: ``reserve(_:limit:now:)`` counts the attempt and
/// decides in one statement, so a burst of parallel requests can never evaluate more attempts than the limit
/// (there is deliberately no "is it blocked?" read followed by a later count). Counters of failures only give
/// the reservation back with ``release(_:limit:now:)`` when the guarded check succeeded.
struct ThrottleStore {
    static let table = "throttle_buckets"
    let database: any Database

    private struct Row: Decodable {
        var count: Int
        var window_started_at: Date
    }

    /// The outcome of a reservation.
    enum Reservation: Equatable {
        /// The attempt is counted; `count` events are now in the window.
        case reserved(count: Int)
        /// The window is full; the limit lifts after `retryAfter` whole seconds (at least 1).
        case blocked(retryAfter: Int)

        var retryAfter: Int? {
            if case .blocked(let seconds) = self { return seconds }
            return nil
        }
    }

    /// Counts one attempt if the window has room, starting a new window when the old one has ended.
    /// The check and the count are one `INSERT … ON CONFLICT DO UPDATE … WHERE` statement (SQLite and PostgreSQL),
    /// which the database serialises per key.
    func reserve(_ key: String, limit: FixedWindowLimit, now: Date) async throws -> Reservation {
        let windowOpen = now.addingTimeInterval(-limit.window)
        let t = SQLIdentifier(Self.table)
        let row = try await database.sql.raw(
            """
            INSERT INTO \(t) (\(ident: "key"), \(ident: "count"), \(ident: "window_started_at")) VALUES (\(bind: key), 1, \(bind: now))
            ON CONFLICT (\(ident: "key")) DO UPDATE SET
              \(ident: "count") = CASE WHEN \(t).\(ident: "window_started_at") <= \(bind: windowOpen) THEN 1 ELSE \(t).\(ident: "count") + 1 END,
              \(ident: "window_started_at") = CASE WHEN \(t).\(ident: "window_started_at") <= \(bind: windowOpen) THEN \(bind: now) ELSE \(t).\(ident: "window_started_at") END
            WHERE \(t).\(ident: "window_started_at") <= \(bind: windowOpen) OR \(t).\(ident: "count") < \(bind: limit.limit)
            RETURNING \(ident: "count"), \(ident: "window_started_at")
            """
        ).first(decoding: Row.self)
        if let row { return .reserved(count: row.count) }
        let current = try await database.sql.select().columns("count", "window_started_at").from(Self.table)
            .where("key", .equal, key).first(decoding: Row.self)
        let end = (current?.window_started_at ?? now).addingTimeInterval(limit.window)
        return .blocked(retryAfter: max(1, Int(end.timeIntervalSince(now).rounded(.up))))
    }

    /// Gives back one reserved attempt of the current window (a failure counter whose check succeeded).
    func release(_ key: String, limit: FixedWindowLimit, now: Date) async throws {
        let windowOpen = now.addingTimeInterval(-limit.window)
        try await database.sql.raw(
            """
            UPDATE \(ident: Self.table) SET \(ident: "count") = \(ident: "count") - 1
            WHERE \(ident: "key") = \(bind: key) AND \(ident: "count") > 0 AND \(ident: "window_started_at") > \(bind: windowOpen)
            """
        ).run()
    }

    /// Clears a counter (the right password clears its account's count of wrong ones).
    func reset(_ key: String) async throws {
        try await database.sql.delete(from: Self.table).where("key", .equal, key).run()
    }

    /// Deletes counters whose window ended before `cutoff`; they would start afresh anyway.
    @discardableResult
    func prune(olderThan cutoff: Date) async throws -> Int {
        let rows = try await database.sql.raw(
            """
            DELETE FROM \(ident: Self.table) WHERE \(ident: "window_started_at") < \(bind: cutoff) RETURNING \(ident: "key")
            """
        ).all()
        return rows.count
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
