import Foundation
import Testing

@testable import TwofoldServer

@Suite("Configuration from the environment")
struct ConfigurationTests {
    @Test func defaultsToSQLiteInTheDataDirectory() throws {
        let config = try TwofoldConfiguration.fromEnvironment(["TWOFOLD_DATA_DIR": "/var/lib/twofold"])
        #expect(config.storage == .sqliteFile(path: "/var/lib/twofold/twofold.sqlite"))
        #expect(config.smsSender == .outbox)
        #expect(config.bcryptCost == 12)
    }

    @Test func postgresURLSelectsPostgres() throws {
        let config = try TwofoldConfiguration.fromEnvironment(["DATABASE_URL": "postgres://u:p@127.0.0.1:5432/db"])
        #expect(config.storage == .postgres(url: "postgres://u:p@127.0.0.1:5432/db", searchPath: nil))
    }

    @Test func passkeySettingsComeFromTheEnvironmentOrThePublicAddress() throws {
        let defaults = try TwofoldConfiguration.fromEnvironment([:]).relyingParty
        #expect(defaults.id == "localhost" && defaults.origins == ["http://localhost:8080"])
        let published = try TwofoldConfiguration.fromEnvironment(["TWOFOLD_PUBLIC_URL": "https://2fa.clinic.org/twofold"]).relyingParty
        #expect(published.id == "2fa.clinic.org" && published.origins == ["https://2fa.clinic.org"])
        let explicit = try TwofoldConfiguration.fromEnvironment([
            "TWOFOLD_RP_ID": "clinic.org", "TWOFOLD_ORIGINS": "https://2fa.clinic.org, https://ehr.clinic.org:8443",
        ]).relyingParty
        #expect(explicit.id == "clinic.org" && explicit.origins == ["https://2fa.clinic.org", "https://ehr.clinic.org:8443"])
        for (env, variable) in [
            (["TWOFOLD_RP_ID": "10.0.0.5"], "TWOFOLD_RP_ID"),
            (["TWOFOLD_RP_ID": "clinic.org", "TWOFOLD_ORIGINS": "https://evil.org"], "TWOFOLD_ORIGINS"),
            (["TWOFOLD_WEBAUTHN_TRUST_ANCHORS": "/nonexistent/roots.pem"], "TWOFOLD_WEBAUTHN_TRUST_ANCHORS"),
        ] {
            #expect(throws: ConfigurationError.self) { try TwofoldConfiguration.fromEnvironment(env) }
            #expect((try? TwofoldConfiguration.fromEnvironment(env)) == nil)
            do { _ = try TwofoldConfiguration.fromEnvironment(env) } catch let error as ConfigurationError {
                #expect(error.description.contains(variable))
            }
        }
    }

    @Test func everyBadVariableIsListedAtOnce() {
        do {
            _ = try TwofoldConfiguration.fromEnvironment([
                "DATABASE_URL": "mysql://x", "TWOFOLD_SECRET_KEY": "short", "TWOFOLD_SMS_SENDER": "webhook",
                "TWOFOLD_SMS_WEBHOOK_URL": "http://example.org/hook", "TWOFOLD_BCRYPT_COST": "99",
            ])
            Issue.record("expected a configuration error")
        } catch let error as ConfigurationError {
            #expect(error.problems.count == 5)
            #expect(error.description.contains("DATABASE_URL"))
            #expect(error.description.contains("TWOFOLD_SECRET_KEY"))
            #expect(error.description.contains("TWOFOLD_SMS_WEBHOOK_URL"))
            #expect(error.description.contains("TWOFOLD_SMS_WEBHOOK_SECRET"))
            #expect(error.description.contains("TWOFOLD_BCRYPT_COST"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func keyFileIsCreatedOnceWithOwnerOnlyPermissions() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("twofold-key-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try SealingKeyFile.loadOrCreate(in: directory)
        let second = try SealingKeyFile.loadOrCreate(in: directory)
        #expect(first.base64 == second.base64)
        let attributes = try FileManager.default.attributesOfItem(atPath: directory + "/twofold.key")
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
    }
}
