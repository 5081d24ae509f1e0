import Fluent
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import SQLKit
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

@Suite("Hardening: numeric query parameters are bounded")
struct QueryBoundsTests {
    static let overflowing = "92233720368547759"

    @Test func overflowingPagesAreRefusedNotFatal() async throws {
        try await withTestApp { ctx in
            let (web, _) = try await AdminFlowTests.adminWeb(ctx)
            let (api, _, _) = try await APIClient.login(ctx, username: "admin")
            for page in [
                Self.overflowing, "9223372036854775807", "99999999999999999999999", "0", "-1", "-9223372036854775808", "abc", "1.5",
                "1000001",
            ] {
                let audit = try await api.send(.GET, "/api/v1/practice/audit?page=\(page)")
                #expect(audit.status == .badRequest, "audit page=\(page)")
                #expect(audit.reason.contains("page must be"), "\(audit.text)")
                let users = try await api.send(.GET, "/api/v1/practice/users?page=\(page)")
                #expect(users.status == .badRequest, "users page=\(page)")
                #expect(users.reason.contains("page must be"))
                for path in ["/admin/audit", "/admin/staff", "/admin/audit.csv"] {
                    let html = try await web.get("\(path)?page=\(page)")
                    #expect(html.status == .badRequest, "\(path) page=\(page)")
                    #expect(html.headers.contentType?.subType == "html", "\(path)")
                    #expect(html.text.contains("page must be"), "\(path)")
                }
            }
            #expect(try await api.send(.GET, "/api/v1/practice/audit?page=1000000").status == .ok)
            #expect(try await api.send(.GET, "/api/v1/practice/users?page=2").status == .ok)
            #expect(try await web.get("/admin/staff?page=1000000").status == .ok)
            #expect(try await web.get("/admin/audit?page=").status == .ok)
        }
    }

    @Test func badAndOutOfRangeDatesAreRefused() async throws {
        try await withTestApp { ctx in
            let (web, _) = try await AdminFlowTests.adminWeb(ctx)
            let (api, _, _) = try await APIClient.login(ctx, username: "admin")
            for query in [
                "from=2026-13-45", "from=0001-01-01", "to=99999-01-01", "from=1969-12-31", "to=10000-01-01T00:00:00Z",
                "from=2026-11-26&to=2026-11-25", "from=yesterday", "to=2026-02-30",
            ] {
                let audit = try await api.send(.GET, "/api/v1/practice/audit?\(query)")
                #expect(audit.status == .badRequest, "\(query): \(audit.text)")
                #expect(audit.reason.contains("from") || audit.reason.contains("to "), "\(audit.text)")
                #expect(try await web.get("/admin/audit?\(query)").status == .badRequest, "\(query)")
            }
            #expect(try await api.send(.GET, "/api/v1/practice/audit?from=2026-11-25&to=2026-11-25").status == .ok)
            #expect(try await api.send(.GET, "/api/v1/practice/audit?from=2026-11-25T14:00:00Z").status == .ok)
        }
    }
}

extension QueryBoundsTests {
    @Test func hugeNumbersInSettingsAreRefusedClearly() async throws {
        try await withTestApp { ctx in
            let (web, _) = try await AdminFlowTests.adminWeb(ctx)
            let (api, _, _) = try await APIClient.login(ctx, username: "admin")
            for (field, value) in [
                ("inactivityMinutes", "92233720368547758070"), ("rememberBrowserDays", "9223372036854775807"),
                ("otpDigits", "-9223372036854775808"), ("inactivityMinutes", "1e300"),
            ] {
                let response = try await api.send(
                    .PATCH, "/api/v1/practice",
                    document: try JSONSerialization.jsonObject(
                        with: Data("{\"adminPassword\": \"\(Fixtures.password)\", \"\(field)\": \(value)}".utf8)))
                #expect(response.status == .badRequest, "\(field)=\(value): \(response.text)")
                #expect(!response.reason.isEmpty)
                _ = try await web.get("/admin/practice")
                let form = try await web.post(
                    "/admin/practice", [field: value, "adminPassword": Fixtures.password, "name": "Riverside Family Medicine"])
                #expect(form.status.code >= 400 && form.status.code < 500, "form \(field)=\(value)")
            }
            #expect(
                try await Practice.query(on: ctx.app.db).first()?.inactivityMinutes
                    == TwofoldPolicy.standard.practice.inactivityMinutes.default)
        }
    }
}

@Suite("Hardening: audit CSV cells cannot run as formulas")
struct AuditCSVCellTests {
    @Test func formulaStartsAreNeutralisedAfterEverySeparator() {
        #expect(AuditQuery.csvCell("x;=cmd|' /C calc'!A0") == "\"x;'=cmd|' /C calc'!A0\"")
        #expect(AuditQuery.csvCell("=cmd|' /C calc'!A0") == "\"'=cmd|' /C calc'!A0\"")
        #expect(AuditQuery.csvCell("\tleading tab") == "\"'\tleading tab\"")
        #expect(AuditQuery.csvCell("a,+b;-c\t@d|=e\r\n=f") == "\"a,'+b;'-c\t'@d|'=e\r\n'=f\"")
        #expect(AuditQuery.csvCell("a; =b") == "\"a; '=b\"")
        #expect(AuditQuery.csvCell("a;\"=b\"") == "\"a;\"\"'=b\"\"\"")
        #expect(AuditQuery.csvCell("say \"hi\"") == "\"say \"\"hi\"\"\"")
    }

    @Test func normalValuesStayReadable() {
        #expect(AuditQuery.csvCell("sign_in.failed") == "\"sign_in.failed\"")
        #expect(AuditQuery.csvCell("2026-11-25T14:00:00Z") == "\"2026-11-25T14:00:00Z\"")
        #expect(AuditQuery.csvCell("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0") == "\"Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0\"")
        #expect(AuditQuery.csvCell("count=3; name=EHR") == "\"count=3; name=EHR\"")
        #expect(AuditQuery.csvCell("") == "\"\"")
    }

    @Test func exportedUserAgentIsNeutralised() async throws {
        try await withTestApp { ctx in
            let (web, _) = try await AdminFlowTests.adminWeb(ctx)
            _ = try await APIClient(ctx).send(
                .POST, "/api/v1/login", json: ["username": "admin", "password": "not the password"],
                headers: ["User-Agent": "x;=cmd|' /C calc'!A0"])
            let csv = try await web.get("/admin/audit.csv?type=sign_in.failed")
            #expect(csv.status == .ok)
            #expect(csv.text.contains("\"x;'=cmd|' /C calc'!A0\""), "\(csv.text)")
            #expect(!csv.text.contains(";=cmd"))
        }
    }
}

@Suite("Hardening: API keys")
struct APIKeyHardeningTests {
    @Test func creationAndRevocationRecordActorAndAddress() async throws {
        try await withTestApp { ctx in
            let (web, practice) = try await AdminFlowTests.adminWeb(ctx)
            let admin = try #require(try await User.query(on: ctx.app.db).filter(\.$usernameKey == "admin").first())
            _ = try await web.get("/admin/api-keys")
            let created = try await web.post("/admin/api-keys", ["name": "EHR production", "adminPassword": Fixtures.password])
            #expect(created.status == .ok)
            let stored = try #require(try await APIKey.query(on: ctx.app.db).first())
            _ = try await web.post("/admin/api-keys/\(stored.id!.uuidString)/revoke", ["adminPassword": Fixtures.password])
            let events = try await AuditEvent.query(on: ctx.app.db).filter(\.$event ~~ ["api_key.created", "api_key.revoked"]).all()
            #expect(events.count == 2)
            for event in events {
                #expect(event.actorID == admin.id)
                #expect(!event.ip.isEmpty)
            }
            // The CLI's way: no actor, address "cli".
            let service = APIKeyService(database: ctx.app.db, now: ctx.clock.now, address: "cli")
            let cliKey = try await service.create(practiceID: practice.id!, name: "VPN gateway")
            _ = try await service.revoke(id: cliKey.record.id!)
            let cliEvents = try await AuditEvent.query(on: ctx.app.db).filter(\.$event ~~ ["api_key.created", "api_key.revoked"]).filter(
                \.$ip == "cli"
            ).all()
            #expect(cliEvents.count == 2)
            #expect(cliEvents.allSatisfy { $0.actorID == nil })
        }
    }

    @Test func revokedKeyStopsAtOnceHereAndWithinTwoSecondsElsewhere() async throws {
        try await withTestApp { ctx in
            let (web, _) = try await AdminFlowTests.adminWeb(ctx)
            _ = try await web.get("/admin/api-keys")
            let created = try await web.post("/admin/api-keys", ["name": "EHR production", "adminPassword": Fixtures.password])
            let key = try #require(PushWebTests.capture(#"id="new-key">(tfk_[A-Za-z0-9_-]+)<"#, in: created.text))
            let integrator = APIClient(ctx, token: key)
            #expect(try await integrator.send(.POST, "/api/v1/validate", json: [:]).status == .badRequest)
            // Another instance's cache, warmed before the revocation.
            let otherInstance = APIKeyCache()
            #expect(try await otherInstance.active(bearer: key, database: ctx.app.db, now: ctx.clock.now) != nil)

            let stored = try #require(try await APIKey.query(on: ctx.app.db).first())
            _ = try await web.post("/admin/api-keys/\(stored.id!.uuidString)/revoke", ["adminPassword": Fixtures.password])
            let refused = try await integrator.send(.POST, "/api/v1/validate", json: [:])
            #expect(refused.status == .unauthorized)
            #expect(refused.reason.contains("revoked"))

            #expect(try await otherInstance.active(bearer: key, database: ctx.app.db, now: ctx.clock.now.addingTimeInterval(1.5)) != nil)
            #expect(try await otherInstance.active(bearer: key, database: ctx.app.db, now: ctx.clock.now.addingTimeInterval(2.01)) == nil)
        }
    }
}

@Suite("Hardening: client addresses")
struct ClientAddressRequestTests {
    @Test func mappedIPv4PeersAreIPv4AndIPv6IsThrottledPerSlash64() async throws {
        try await withTestApp { ctx in
            func request(from address: String) throws -> Request {
                Request(
                    application: ctx.app, method: .GET, url: "/", remoteAddress: try SocketAddress(ipAddress: address, port: 40_000),
                    on: ctx.app.eventLoopGroup.any())
            }
            let mapped = try request(from: "::ffff:203.0.113.9")
            #expect(mapped.clientIP == "203.0.113.9")
            #expect(mapped.clientThrottleKey == "203.0.113.9")
            let v6 = try request(from: "2001:db8:1:2:aaaa:bbbb:cccc:dddd")
            #expect(v6.clientThrottleKey == "2001:db8:1:2::/64")
            #expect(try request(from: "2001:db8:1:2::1").clientThrottleKey == v6.clientThrottleKey)
            #expect(try request(from: "198.51.100.4").clientThrottleKey == "198.51.100.4")
        }
    }
}

@Suite("Hardening: pruning stale rows")
struct PruningTests {
    @Test func pruneDeletesDayOldBucketsCodesAndChallengesOnly() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let user = try await Fixtures.user(ctx, practice: practice)
            let store = ThrottleStore(database: ctx.app.db)
            let old = ctx.clock.now.addingTimeInterval(-25 * 3600)
            _ = try await store.reserve("old-bucket", limit: FixedWindowLimit(limit: 5, window: 3600), now: old)
            _ = try await store.reserve(
                "recent-bucket", limit: FixedWindowLimit(limit: 5, window: 3600), now: ctx.clock.now.addingTimeInterval(-3600))
            try await SMSCode(
                userID: user.id!, factorID: nil, phone: "+15551234567", purpose: .signIn, codeHash: "old", now: old,
                lifetime: TwofoldPolicy.standard.sms.codeLifetime
            ).create(on: ctx.app.db)
            try await SMSCode(
                userID: user.id!, factorID: nil, phone: "+15551234567", purpose: .signIn, codeHash: "new", now: ctx.clock.now,
                lifetime: TwofoldPolicy.standard.sms.codeLifetime
            ).create(on: ctx.app.db)
            try await WebAuthnChallenge(
                challenge: [1, 2, 3], purpose: .registration, userID: user.id, contextID: nil, userVerificationRequired: false, now: old,
                lifetime: TwofoldPolicy.standard.passkeys.challengeLifetime
            )
            .create(on: ctx.app.db)
            try await WebAuthnChallenge(
                challenge: [4, 5, 6], purpose: .registration, userID: user.id, contextID: nil, userVerificationRequired: false,
                now: ctx.clock.now, lifetime: TwofoldPolicy.standard.passkeys.challengeLifetime
            )
            .create(on: ctx.app.db)

            let pruned = try await MaintenanceTask.prune(database: ctx.app.db, now: ctx.clock.now)
            #expect(pruned == .init(throttleBuckets: 1, smsCodes: 1, webAuthnChallenges: 1))
            let keys = try await ctx.app.db.sql.raw("SELECT \(ident: "key") FROM \(ident: ThrottleStore.table)").all(decoding: KeyRow.self)
                .map(\.key)
            #expect(keys == ["recent-bucket"])
            #expect(try await SMSCode.query(on: ctx.app.db).all().map(\.codeHash) == ["new"])
            #expect(try await WebAuthnChallenge.query(on: ctx.app.db).count() == 1)
            #expect(
                try await MaintenanceTask.prune(database: ctx.app.db, now: ctx.clock.now)
                    == .init(throttleBuckets: 0, smsCodes: 0, webAuthnChallenges: 0))
        }
    }

    private struct KeyRow: Decodable { var key: String }
}

/// Keeps every log line a handler receives.
final class CapturedLog: Sendable {
    private let lines = NIOLockedValueBox<[String]>([])
    func append(_ line: String) { lines.withLockedValue { $0.append(line) } }
    var text: String { lines.withLockedValue { $0.joined(separator: "\n") } }
}

struct CapturingLogHandler: LogHandler {
    let sink: CapturedLog
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        sink.append("\(event.level) \(event.message) \(metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }))")
    }
}

@Suite("Hardening: SQL values stay out of logs below trace")
struct SQLLoggingTests {
    @Test func debugLogsCarryNoBindValuesTraceDoes() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let user = try await Fixtures.user(ctx, practice: practice)
            func run(at level: Logger.Level) async throws -> (String, String) {
                let sink = CapturedLog()
                let logger = Logger(label: "test.sql") { _ in CapturingLogHandler(sink: sink, logLevel: level) }
                let database = try #require(ctx.app.databases.database(logger: logger, on: ctx.app.eventLoopGroup.any()))
                let hash = Digest.sha256Hex("code-\(UUID().uuidString)")
                // what sending and redeeming an SMS code does: store the hash, then look it up
                try await SMSCode(
                    userID: user.id!, factorID: nil, phone: "+15551234567", purpose: .signIn, codeHash: hash, now: ctx.clock.now,
                    lifetime: TwofoldPolicy.standard.sms.codeLifetime
                ).create(on: database)
                _ = try await SMSCode.query(on: database).filter(\.$codeHash == hash).filter(\.$usedAt == nil).first()
                try await database.sql.raw("UPDATE sms_codes SET used_at = \(bind: ctx.clock.now) WHERE code_hash = \(bind: hash)").run()
                return (sink.text, hash)
            }
            let (debug, debugHash) = try await run(at: .debug)
            #expect(!debug.contains(debugHash))
            #expect(!debug.contains("sms_codes"))
            let (trace, traceHash) = try await run(at: .trace)
            #expect(trace.contains(traceHash), "the capture sees SQL at trace level, so the debug check above means something")
        }
    }
}

@Suite("Hardening: the sealing key the database expects")
struct SealingKeyCheckTests {
    /// Starts apps on one database (SQLite file or PostgreSQL schema) with the keys given, the way `serve` does.
    final class SharedDatabase: Sendable {
        let schema = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        var sqlitePath: String { FileManager.default.temporaryDirectory.appendingPathComponent("twofold-keycheck-\(schema).sqlite").path }
        private let apps = NIOLockedValueBox<[Application]>([])
        let clock = TestClock()

        func start(key: SealingKey, previous: [SealingKey] = []) async throws -> Application {
            let app = try await Application.make(.testing)
            app.logger.logLevel = .error
            apps.withLockedValue { $0.append(app) }
            var config = TwofoldConfiguration()
            config.storage = TestDatabase.postgresURL.map { .postgres(url: $0, searchPath: schema) } ?? .sqliteFile(path: sqlitePath)
            config.sealingKey = key
            config.previousSealingKeys = previous
            config.bcryptCost = 4
            try await configure(app, config, clock: clock.twofoldClock)
            if TestDatabase.postgresURL != nil {
                try await app.db.sql.raw("CREATE SCHEMA IF NOT EXISTS \(ident: schema)").run()
            }
            try await prepareDatabase(app)
            return app
        }

        func recordedKeyID() async throws -> String? {
            guard let app = apps.withLockedValue({ $0.first }) else { return nil }
            struct Row: Decodable { var key_id: String }
            return try await app.db.sql.raw("SELECT key_id FROM sealing_key_check WHERE id = 1").first(decoding: Row.self)?.key_id
        }

        func tearDown() async {
            let all = apps.withLockedValue { $0 }
            if TestDatabase.postgresURL != nil, let first = all.first {
                try? await first.db.sql.raw("DROP SCHEMA IF EXISTS \(ident: schema) CASCADE").run()
            }
            for app in all { try? await app.asyncShutdown() }
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: sqlitePath + suffix) }
        }
    }

    static func withSharedDatabase(_ body: (SharedDatabase) async throws -> Void) async throws {
        let shared = SharedDatabase()
        do { try await body(shared) } catch {
            await shared.tearDown()
            throw error
        }
        await shared.tearDown()
    }

    @Test func anInstanceWithAnotherKeyRefusesToStartAndNamesBothIDs() async throws {
        try await Self.withSharedDatabase { shared in
            let first = SealingKey.generate(), second = SealingKey.generate()
            _ = try await shared.start(key: first)
            #expect(try await shared.recordedKeyID() == first.fingerprint)
            #expect(first.fingerprint.count == 16 && first.fingerprint.allSatisfy(\.isHexDigit))
            #expect(!first.fingerprint.contains(Digest.hex(first.id)))
            do {
                _ = try await shared.start(key: second)
                Issue.record("an instance with another key started")
            } catch let error as ConfigurationError {
                let message = error.description
                #expect(message.contains("key with id \(first.fingerprint)"), "\(message)")
                #expect(message.contains("has id \(second.fingerprint)"), "\(message)")
                #expect(message.contains("TWOFOLD_SECRET_KEY"))
                #expect(!message.contains(first.base64) && !message.contains(second.base64))
            }
            #expect(try await shared.recordedKeyID() == first.fingerprint)
            // the same key again starts
            _ = try await shared.start(key: first)
        }
    }

    @Test func aRotatedKeyWithTheOldOneAsPreviousStartsAndIsRecorded() async throws {
        try await Self.withSharedDatabase { shared in
            let old = SealingKey.generate(), new = SealingKey.generate()
            _ = try await shared.start(key: old)
            _ = try await shared.start(key: new, previous: [old])
            #expect(try await shared.recordedKeyID() == new.fingerprint)
            // from now on an instance that has only the old key is refused
            await #expect(throws: ConfigurationError.self) { _ = try await shared.start(key: old) }
            _ = try await shared.start(key: new)
        }
    }

    @Test func aDatabaseFromBeforeTheCheckRefusesAKeyThatDidNotSealItsSecrets() async throws {
        try await Self.withSharedDatabase { shared in
            let owner = SealingKey.generate(), stranger = SealingKey.generate()
            let app = try await shared.start(key: owner)
            let ctx = TestContext(app: app, clock: shared.clock)
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            _ = try await Flows.enrollTOTP(ctx)
            // as if the database predates the check
            try await app.db.sql.raw("DELETE FROM sealing_key_check").run()
            await #expect(throws: ConfigurationError.self) { _ = try await shared.start(key: stranger) }
            #expect(try await shared.recordedKeyID() == nil)
            _ = try await shared.start(key: owner)
            #expect(try await shared.recordedKeyID() == owner.fingerprint)
        }
    }
}

@Suite("Hardening: the key file is created once")
struct SealingKeyFileTests {
    static func freshDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("twofold-keyfile-\(UUID().uuidString)/data").path
    }

    @Test func parallelFirstStartsAgreeOnOneKey() async throws {
        for _ in 0..<5 {
            let directory = Self.freshDirectory()
            defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
            let keys = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<16 {
                    group.addTask { try SealingKeyFile.loadOrCreate(in: directory).base64 }
                }
                var all: [String] = []
                for try await key in group { all.append(key) }
                return all
            }
            #expect(keys.count == 16)
            #expect(Set(keys).count == 1)
            let path = (directory as NSString).appendingPathComponent(SealingKeyFile.fileName)
            let onDisk = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(onDisk == keys.first)
            let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
    }

    @Test func aFileAnotherProcessIsStillWritingIsReadAgain() async throws {
        let directory = Self.freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = (directory as NSString).appendingPathComponent(SealingKeyFile.fileName)
        #expect(FileManager.default.createFile(atPath: path, contents: Data(), attributes: [.posixPermissions: 0o600]))
        let winner = SealingKey.generate()
        // a thread of its own: the reader blocks while it waits, as it does at start-up
        Thread.detachNewThread {
            usleep(300_000)
            try? Data((winner.base64 + "\n").utf8).write(to: URL(fileURLWithPath: path))
        }
        let read = try SealingKeyFile.loadOrCreate(in: directory)
        #expect(read.base64 == winner.base64)
    }

    @Test func aFileThatStaysEmptyIsAClearError() throws {
        let directory = Self.freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: (directory as NSString).deletingLastPathComponent) }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = (directory as NSString).appendingPathComponent(SealingKeyFile.fileName)
        _ = FileManager.default.createFile(atPath: path, contents: Data())
        #expect(throws: ConfigurationError.self) { _ = try SealingKeyFile.loadOrCreate(in: directory) }
    }
}
