import Fluent
import Foundation
import NIOConcurrencyHelpers
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// A clock the tests move by hand, so no test sleeps through a TOTP window or a lockout.
final class TestClock: Sendable {
    private let current: NIOLockedValueBox<Date>

    init(_ start: Date = Date(timeIntervalSince1970: 1_900_000_000)) { current = NIOLockedValueBox(start) }

    var now: Date { current.withLockedValue { $0 } }
    func advance(_ seconds: TimeInterval) { current.withLockedValue { $0 += seconds } }
    var twofoldClock: TwofoldClock { TwofoldClock { [self] in self.now } }
}

/// What a test gets: the running application and its clock.
struct TestContext {
    let app: Application
    let clock: TestClock
}

enum TestDatabase {
    /// Set by `scripts/test` for the PostgreSQL pass; each test then gets a schema of its own.
    static var postgresURL: String? {
        let url = ProcessInfo.processInfo.environment["TWOFOLD_TEST_POSTGRES_URL"]
        return (url?.isEmpty ?? true) ? nil : url
    }
}

/// Builds the whole application on a fresh database (a temporary SQLite file, or a new PostgreSQL schema),
/// runs `body`, then tears everything down.
func withTestApp(
    smsSender: TwofoldConfiguration.SMSSenderChoice = .outbox,
    metricsToken: String? = nil,
    _ body: (TestContext) async throws -> Void
) async throws {
    let clock = TestClock()
    let app = try await Application.make(.testing)
    app.logger.logLevel = .error
    let schema = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
    let sqlitePath = FileManager.default.temporaryDirectory.appendingPathComponent("twofold-test-\(schema).sqlite").path
    var config = TwofoldConfiguration()
    config.storage = TestDatabase.postgresURL.map { .postgres(url: $0, searchPath: schema) } ?? .sqliteFile(path: sqlitePath)
    config.sealingKey = SealingKey.generate()
    config.bcryptCost = 4
    // The suites run in parallel on two cores, and some tests fire fifty requests at once at one connection.
    config.databaseConnectionWaitSeconds = 180
    config.smsSender = smsSender
    config.metricsToken = metricsToken
    do {
        try await configure(app, config, clock: clock.twofoldClock)
        if TestDatabase.postgresURL != nil {
            try await app.db.sql.raw("CREATE SCHEMA \(ident: schema)").run()
        }
        try await prepareDatabase(app)
        try await body(TestContext(app: app, clock: clock))
    } catch {
        await cleanUp(app, schema: schema, sqlitePath: sqlitePath)
        throw error
    }
    await cleanUp(app, schema: schema, sqlitePath: sqlitePath)
}

private func cleanUp(_ app: Application, schema: String, sqlitePath: String) async {
    if TestDatabase.postgresURL != nil {
        try? await app.db.sql.raw("DROP SCHEMA IF EXISTS \(ident: schema) CASCADE").run()
    }
    try? await app.asyncShutdown()
    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: sqlitePath + suffix) }
}
