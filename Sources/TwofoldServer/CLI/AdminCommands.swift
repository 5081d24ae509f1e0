import Fluent
import Foundation
import TwofoldCore
import Vapor

/// `twofold migrate`: brings the database schema up to date (also done by `serve`).
struct MigrateNowCommand: AsyncCommand {
    struct Signature: CommandSignature {}
    var help: String { "Creates or updates the database tables (serve does this too)." }

    func run(using context: CommandContext, signature: Signature) async throws {
        try await prepareDatabase(context.application)
        context.console.print("The database is up to date.")
    }
}

/// `twofold practice create --name NAME [--mandatory-2fa]`
struct PracticeCommands: AsyncCommandGroup {
    var help: String { "Manage practices." }
    var commands: [String: any AnyAsyncCommand] { ["create": CreatePracticeCommand()] }
}

struct CreatePracticeCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "name", help: "The practice's name, shown on the sign-in page and in authenticator apps.")
        var name: String?
        @Flag(name: "mandatory-2fa", help: "Require two-factor authentication for every user of the practice.")
        var mandatory: Bool
    }

    var help: String { "Creates a practice and prints its id." }

    func run(using context: CommandContext, signature: Signature) async throws {
        guard let name = signature.name else {
            throw CLIError("--name is required, e.g. twofold practice create --name \"Riverside Family Medicine\"")
        }
        let app = context.application
        try await prepareDatabase(app)
        let practice = try await AccountProvisioning(database: app.db, passwords: app.password.async, now: app.twofold.clock.now())
            .createPractice(name: name, mandatoryTwoFactor: signature.mandatory)
        context.console.print(try practice.requireID().uuidString)
    }
}

/// The options `user create` and `user invite` share, checked the same way.
enum UserCommandOptions {
    static func validated(
        practice: String?, username: String?, firstName: String?, lastName: String?, email: String?, role: String?,
        alsoMissing: [String] = []
    ) throws -> (practiceID: UUID, role: User.Role) {
        var missing: [String] = []
        for (flag, value) in [
            ("--practice", practice), ("--username", username), ("--first-name", firstName), ("--last-name", lastName),
            ("--email", email),
        ] where value == nil {
            missing.append(flag)
        }
        missing += alsoMissing
        guard missing.isEmpty else { throw CLIError("missing: " + missing.joined(separator: ", ")) }
        guard let practiceID = UUID(uuidString: practice!) else {
            throw CLIError("--practice must be a practice id like 3F2504E0-4F89-41D3-9A0C-0305E82C3301")
        }
        switch role?.lowercased() ?? "staff" {
        case "provider": return (practiceID, .provider)
        case "staff": return (practiceID, .staff)
        default: throw CLIError("--role must be provider or staff")
        }
    }
}

/// `twofold user create --practice ID --username U … --password-stdin`
struct UserCommands: AsyncCommandGroup {
    var help: String { "Manage users." }
    var commands: [String: any AnyAsyncCommand] { ["create": CreateUserCommand(), "invite": InviteUserCommand()] }
}

struct CreateUserCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "practice", help: "The practice id (from `twofold practice create`).") var practice: String?
        @Option(name: "username", help: "The sign-in name, unique on this server.") var username: String?
        @Option(name: "first-name", help: "First name.") var firstName: String?
        @Option(name: "last-name", help: "Last name.") var lastName: String?
        @Option(name: "email", help: "Email address.") var email: String?
        @Option(name: "cell", help: "Cell phone for text-message codes, e.g. +15551234567.") var cell: String?
        @Option(name: "role", help: "provider or staff (default staff).") var role: String?
        @Flag(name: "manage-accounts", help: "Grant the Manage Accounts permission (practice administrator).") var manageAccounts: Bool
        @Flag(name: "password-stdin", help: "Read the password from standard input (required).") var passwordStdin: Bool
    }

    var help: String { "Creates a user and prints its id; the password is read from standard input." }

    func run(using context: CommandContext, signature: Signature) async throws {
        let (practiceID, role) = try UserCommandOptions.validated(
            practice: signature.practice, username: signature.username, firstName: signature.firstName, lastName: signature.lastName,
            email: signature.email, role: signature.role,
            alsoMissing: signature.passwordStdin ? [] : ["--password-stdin (pipe the password in)"])
        guard let line = readLine(strippingNewline: true), !line.isEmpty else {
            throw CLIError("no password on standard input; try: echo 'the password' | twofold user create … --password-stdin")
        }
        let app = context.application
        try await prepareDatabase(app)
        let user = try await AccountProvisioning(database: app.db, passwords: app.password.async, now: app.twofold.clock.now()).createUser(
            .init(
                practiceID: practiceID, username: signature.username!, firstName: signature.firstName!, lastName: signature.lastName!,
                email: signature.email!, cellPhone: signature.cell, role: role,
                permissions: signature.manageAccounts ? [.manageAccounts] : [],
                password: line))
        context.console.print(try user.requireID().uuidString)
    }
}

/// `twofold outbox list [--to PHONE] [--json]`: what the outbox sender "sent", newest first.
struct OutboxCommands: AsyncCommandGroup {
    var help: String { "Read text messages kept by the outbox sender." }
    var commands: [String: any AnyAsyncCommand] { ["list": ListOutboxCommand()] }
}

struct ListOutboxCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "to", help: "Only messages to this phone number.") var to: String?
        @Option(name: "limit", help: "At most this many messages (default 50).") var limit: Int?
        @Flag(name: "json", help: "Print JSON instead of text.") var json: Bool
    }

    var help: String { "Lists messages the outbox sender kept, newest first." }

    struct Item: Codable {
        var to: String
        var body: String
        var sentAt: Date
    }

    func run(using context: CommandContext, signature: Signature) async throws {
        let app = context.application
        try await prepareDatabase(app)
        var query = OutboxMessage.query(on: app.db).sort(\.$createdAt, .descending).limit(max(1, signature.limit ?? 50))
        if let to = signature.to {
            query = query.filter(\.$recipient == (SMSCodeService.normalizedPhone(to) ?? to))
        }
        let items = try await query.all().map { Item(to: $0.recipient, body: $0.body, sentAt: $0.createdAt) }
        if signature.json {
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            context.console.print(String(decoding: try encoder.encode(items), as: UTF8.self))
        } else if items.isEmpty {
            context.console.print("The outbox is empty.")
        } else {
            for item in items { context.console.print("\(item.sentAt.ISO8601Format())  \(item.to)  \(item.body)") }
        }
    }
}

/// `twofold audit verify [--checkpoints FILE]`, `twofold audit public-key`, `twofold audit export …` and
/// `twofold audit verify-export FILE --public-key KEY`.
struct AuditCommands: AsyncCommandGroup {
    var help: String { "Check the audit log." }
    var commands: [String: any AnyAsyncCommand] {
        [
            "verify": VerifyAuditCommand(), "public-key": AuditPublicKeyCommand(), "export": ExportAuditCommand(),
            "verify-export": VerifyAuditExportCommand(),
        ]
    }
}

/// Writes a practice's audit events with a signed manifest: CSV plus `FILE.manifest.json`, or one JSON document.
struct ExportAuditCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "practice", help: "The practice id.")
        var practice: String?
        @Option(name: "output", help: "The file to write (CSV: the manifest goes to FILE.manifest.json beside it).")
        var output: String?
        @Option(name: "format", help: "csv (default) or json.")
        var format: String?
        @Option(name: "from", help: "The first day or time, like 2026-11-25 or 2026-11-25T14:00:00Z.")
        var from: String?
        @Option(name: "to", help: "The last day or time.")
        var to: String?
        @Option(name: "user", help: "Only events where this username is the actor or the subject.")
        var user: String?
        @Option(name: "type", help: "Only events of this type, like sign_in.failed.")
        var type: String?
    }
    var help: String { "Exports a practice's audit events with a manifest signed by the checkpoint key, for offline verification." }

    func run(using context: CommandContext, signature: Signature) async throws {
        guard let practice = signature.practice, let practiceID = UUID(uuidString: practice) else {
            throw CLIError("--practice must be a practice id like 3F2504E0-4F89-41D3-9A0C-0305E82C3301")
        }
        guard let output = signature.output, !output.isEmpty else { throw CLIError("--output FILE is required") }
        guard let format = AuditExportManifest.Kind(rawValue: signature.format ?? "csv") else {
            throw CLIError("--format must be csv or json")
        }
        func date(_ name: String, _ text: String?, endOfDay: Bool) throws -> Date? {
            guard let text, !text.isEmpty else { return nil }
            if text.count == 10, let day = try? Date(text + "T00:00:00Z", strategy: .iso8601), AuditQuery.dateBounds.contains(day) {
                return endOfDay ? day.addingTimeInterval(86_399.999) : day
            }
            guard let time = try? Date(text, strategy: .iso8601), AuditQuery.dateBounds.contains(time) else {
                throw CLIError("--\(name) must be a day like 2026-11-25 or a time like 2026-11-25T14:00:00Z, from 1970 to 9999")
            }
            return time
        }
        let filter = AuditQuery.Filter(
            from: try date("from", signature.from, endOfDay: false), to: try date("to", signature.to, endOfDay: true),
            user: signature.user, type: signature.type)
        if let from = filter.from, let to = filter.to, from > to { throw CLIError("--from must not be later than --to") }
        let app = context.application
        try await prepareDatabase(app)
        guard try await Practice.find(practiceID, on: app.db) != nil else { throw CLIError("no practice has the id \(practice)") }
        let export = AuditExport(database: app.db, practiceID: practiceID, now: app.twofold.clock.now())
        let manifest: AuditExportManifest
        switch format {
        case .csv:
            let (csv, signed) = try await export.csv(filter)
            try Data(csv.utf8).write(to: URL(fileURLWithPath: output))
            try AuditExportManifest.encoder(pretty: true).encode(signed).write(to: URL(fileURLWithPath: output + ".manifest.json"))
            manifest = signed
        case .json:
            let bundle = try await export.json(filter)
            try AuditExportManifest.encoder(pretty: true).encode(bundle).write(to: URL(fileURLWithPath: output))
            manifest = bundle.manifest
        }
        let state =
            manifest.logIntact ? "the audit log verified intact" : "WARNING: the audit log is NOT intact: \(manifest.logProblem ?? "")"
        context.console.print(
            "Exported \(manifest.count) events to \(output)\(format == .csv ? " (manifest: \(output).manifest.json)" : ""); \(state).")
    }
}

/// Checks an export against the published public key, without the database or the sealing key.
struct VerifyAuditExportCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Argument(name: "file", help: "The exported CSV or JSON file.")
        var file: String
        @Option(name: "public-key", help: "The checkpoint public key (base64), or a file with the lines `twofold audit public-key` prints.")
        var publicKey: String?
        @Option(name: "manifest", help: "The manifest of a CSV export (default: FILE.manifest.json).")
        var manifest: String?
    }
    var help: String { "Checks an audit export offline with the public key: names every edited, removed, inserted or moved row." }

    func run(using context: CommandContext, signature: Signature) async throws {
        guard let keyText = signature.publicKey, !keyText.isEmpty else {
            throw CLIError("--public-key is required (see twofold audit public-key)")
        }
        let keys = AuditExportVerifier.publicKeys(
            FileManager.default.contents(atPath: keyText).map { String(decoding: $0, as: UTF8.self) } ?? keyText)
        guard !keys.isEmpty else {
            throw CLIError("--public-key must be a base64 Ed25519 public key or a file with the lines of twofold audit public-key")
        }
        guard let file = FileManager.default.contents(atPath: signature.file) else { throw CLIError("cannot read \(signature.file)") }
        let manifestPath = signature.manifest ?? signature.file + ".manifest.json"
        let outcome = AuditExportVerifier.verify(file: file, manifest: FileManager.default.contents(atPath: manifestPath), keys: keys)
        guard outcome.isIntact, let manifest = outcome.manifest else {
            throw CLIError("the export is NOT as signed:\n" + outcome.problems.prefix(50).map { "  - " + $0 }.joined(separator: "\n"))
        }
        let exported = AuditLog.date(manifest.exportedMS).ISO8601Format()
        context.console.print(
            "The export matches its signed manifest: \(manifest.count) events of practice \(manifest.practice), exported \(exported) with key \(manifest.keyID)."
        )
        if !manifest.logIntact {
            context.console.print("Note: when it was exported, the server found the audit log NOT intact: \(manifest.logProblem ?? "")")
        }
    }
}

/// Walks the audit chain and its checkpoints; exit status 0 only when intact.
struct VerifyAuditCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(
            name: "checkpoints",
            help:
                "An audit-checkpoints.jsonl kept outside the database (a copy of the one in the data directory), to check the database against."
        )
        var checkpoints: String?
    }
    var help: String { "Checks that no audit event was changed, removed, inserted, reordered or backdated." }

    func run(using context: CommandContext, signature: Signature) async throws {
        let app = context.application
        try await prepareDatabase(app)
        let external = try signature.checkpoints.map { try AuditCheckpoint.read(file: $0) } ?? []
        let result = try await AuditLog.verify(on: app.db, external: external, source: signature.checkpoints ?? "the checkpoint file")
        if let problem = result.problem {
            throw CLIError("the audit log is NOT intact: \(problem) (\(result.checked) events before it verified)")
        }
        let file = signature.checkpoints.map { "; the \(external.count) checkpoints in \($0) match it" } ?? ""
        context.console.print(
            "The audit log is intact: \(result.checked) events in \(result.chains) chains and \(result.checkpoints - external.count) signed checkpoints verified\(file)."
        )
    }
}

/// Prints the Ed25519 public keys that sign audit checkpoints, for an auditor checking a checkpoint file offline.
struct AuditPublicKeyCommand: AsyncCommand {
    struct Signature: CommandSignature {}
    var help: String { "Prints the public keys that sign audit checkpoints (key id, then the raw Ed25519 key in base64)." }

    func run(using context: CommandContext, signature: Signature) async throws {
        let keys = try context.application.auditContext.keys
        context.console.print(
            "ed25519 \(keys.signingKeyID) \(keys.signingKey.publicKey.rawRepresentation.base64EncodedString())  (current)")
        for (id, key) in keys.publicKeys.sorted(by: { $0.key < $1.key }) where id != keys.signingKeyID {
            context.console.print("ed25519 \(id) \(key.rawRepresentation.base64EncodedString())  (previous sealing key)")
        }
    }
}

/// A command-line mistake, printed as one line without a stack trace.
public struct CLIError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
