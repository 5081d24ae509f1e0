import Fluent
import FluentPostgresDriver
import FluentSQLiteDriver
import Vapor

/// Chooses SQLite or PostgreSQL from the configuration and registers every migration in order.
enum DatabaseSetup {
    /// Append only: a shipped migration is never edited.
    static let migrations: [any AsyncMigration] = [
        CreatePractice(), CreateUser(), CreateFactor(), CreateRecoveryCode(), CreateRememberedBrowser(),
        CreateSession(), CreateSMSCode(), CreateOutboxMessage(), CreateAuditEvent(), CreateThrottleBucket(),
        AddPrimaryProviderToUser(), CreateAPIKey(), AddPushDeviceToFactor(), AddAllowPushToPractice(),
        CreatePushChallenge(), CreateDeviceNonce(), CreateSigningKey(), CreateStepUpChallenge(),
        AddPasskeyToFactor(), AddPasskeySettingsToPractice(), CreateWebAuthnChallenge(),
        CreateSecondFactorCounter(), AddEnrollmentSessionToFactor(), AddSessionLifetimeToPractice(), AddAttemptsToSMSCode(),
        CreateKnownSignInAddress(),
        CreateSealingKeyCheck(),
        AddPasswordSingleFactorFlagToUser(),
        CreateRADIUSClient(), CreateRADIUSChallenge(), AddNumberRequiredToPushChallenge(),
        CreateOIDCTables(),
        AddAlgorithmAndRetirementToSigningKey(),
        AddKeyedAuditChain(),
        CreateEPCSTables(),
        CreateEPCSDailyAnalysis(),
        CreateMailQueue(),
        AddEPCSApprovalToPushChallenge(),
        CreateInvitation(),
        CreatePasswordResetTables(),
        AddNotificationCopyAddressToPractice(),
        AddPerInstanceAuditChains(),
    ]

    static func configure(
        _ app: Application, storage: TwofoldConfiguration.Storage, postgresConnectionsPerEventLoop: Int = 8, connectionWaitSeconds: Int = 30
    ) throws {
        switch storage {
        // SQL statements and query values are logged only at trace level: their values include code and token hashes.
        case .sqliteMemory:
            app.databases.use(
                singleConnection(
                    .sqlite(
                        .memory, connectionPoolTimeout: .seconds(Int64(connectionWaitSeconds)), dataEncoder: .init(), dataDecoder: .init(),
                        sqlLogLevel: .trace)
                ).queryValuesOnlyAtTrace, as: .sqlite)
        case .sqliteFile(let path):
            app.databases.use(
                singleConnection(
                    .sqlite(
                        .file(path), connectionPoolTimeout: .seconds(Int64(connectionWaitSeconds)), dataEncoder: .init(),
                        dataDecoder: .init(), sqlLogLevel: .trace)
                ).queryValuesOnlyAtTrace, as: .sqlite)
        case .postgres(let url, let searchPath):
            var configuration = try SQLPostgresConfiguration(url: url)
            if let searchPath { configuration.searchPath = [searchPath] }
            app.databases.use(
                .postgres(
                    configuration: configuration, maxConnectionsPerEventLoop: postgresConnectionsPerEventLoop,
                    connectionPoolTimeout: .seconds(Int64(connectionWaitSeconds)), sqlLogLevel: .trace
                ).queryValuesOnlyAtTrace, as: .psql)
        }
        for migration in migrations { app.migrations.add(migration) }
        AuditContext.install(on: app)
    }

    private static func singleConnection(_ factory: DatabaseConfigurationFactory) -> DatabaseConfigurationFactory {
        DatabaseConfigurationFactory { SingleConnectionSQLite(inner: factory.make()) }
    }

    /// WAL lets readers work while one request writes (the mode is stored in the database file). `synchronous=NORMAL`
    /// and the page cache size (below)
    /// keeps every commit durable against a crash of the process; it is a per-connection setting, and every event
    /// loop shares the one SQLite connection (see ``SingleConnectionSQLite``), so setting it once covers them all.
    /// Some filesystems (network mounts, a few container overlays) cannot hold WAL's shared-memory index: SQLite then
    /// stays in its rollback journal, which is slower under concurrent load but just as safe, and Twofold says so.
    static func tuneSQLite(_ app: Application) async throws {
        guard let sql = app.db as? any SQLDatabase, sql.dialect.name == "sqlite" else { return }
        let mode = try await sql.raw("PRAGMA journal_mode=WAL").first(decoding: JournalMode.self)?.journal_mode ?? ""
        if mode != "wal", mode != "memory" {
            app.logger.warning(
                "SQLite could not switch to WAL mode (journal mode is \(mode)); the database works but concurrent sign-ins will wait on each other. Keep the data directory on a local disk."
            )
        }
        try await sql.raw("PRAGMA synchronous=NORMAL").run()
        try await sql.raw("PRAGMA cache_size=\(unsafeRaw: String(cachePages))").run()
    }

    /// SQLite's page cache for the one connection, in KiB when negative: 64 MiB instead of SQLite's 2 MiB keeps the
    /// indexes of a large practice (and a large import's transaction) in memory rather than re-reading them from disk.
    static let cachePages = -65_536

    private struct JournalMode: Decodable { var journal_mode: String? }
}
