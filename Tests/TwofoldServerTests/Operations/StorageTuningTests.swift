import Foundation
import SQLKit
import Testing
import VaporTesting

@testable import TwofoldServer

@Suite("Storage tuning")
struct StorageTuningTests {
    private struct Row: Decodable {
        var journal_mode: String?
        var synchronous: Int?
        var cache_size: Int?
    }

    /// SQLite runs in WAL mode with synchronous=NORMAL and a 64 MiB page cache on every event loop's connection (PostgreSQL needs no tuning).
    @Test func sqliteUsesWALAndNormalSyncOnEveryConnection() async throws {
        try await withTestApp { ctx in
            guard TestDatabase.postgresURL == nil else {
                #expect(ctx.app.db.isPostgres)
                return
            }
            var checked = 0
            for eventLoop in ctx.app.eventLoopGroup.makeIterator() {
                let database = try #require(ctx.app.databases.database(logger: ctx.app.logger, on: eventLoop) as? any SQLDatabase)
                let row = try await database.raw("PRAGMA synchronous").first(decoding: Row.self)
                // A connection opened before the switch learns of WAL from the file header at its next read.
                _ = try await database.raw("SELECT count(*) AS n FROM sqlite_master").all()
                let mode = try await database.raw("PRAGMA journal_mode").first(decoding: Row.self)
                #expect(mode?.journal_mode == "wal")
                #expect(row?.synchronous == 1, "synchronous should be NORMAL (1)")
                #expect(try await database.raw("PRAGMA cache_size").first(decoding: Row.self)?.cache_size == DatabaseSetup.cachePages)
                checked += 1
            }
            #expect(checked == System.coreCount)
        }
    }
}
