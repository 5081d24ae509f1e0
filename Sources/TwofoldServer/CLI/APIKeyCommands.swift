import Fluent
import Foundation
import Vapor

/// `twofold api-key create --practice ID --name NAME` (prints the key once), `twofold api-key revoke ID`, `twofold api-key list --practice ID`.
struct APIKeyCommands: AsyncCommandGroup {
    var help: String { "Manage API keys for integrating systems." }
    var commands: [String: any AnyAsyncCommand] {
        ["create": CreateAPIKeyCommand(), "revoke": RevokeAPIKeyCommand(), "list": ListAPIKeysCommand()]
    }
}

struct CreateAPIKeyCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "practice", help: "The practice id the key acts for.") var practice: String?
        @Option(name: "name", help: "What uses the key, e.g. \"VPN gateway\".") var name: String?
    }

    var help: String { "Creates an API key and prints it once (store it in the integrating system's secrets)." }

    func run(using context: CommandContext, signature: Signature) async throws {
        guard let practiceText = signature.practice, let name = signature.name else {
            throw CLIError("--practice and --name are required, e.g. twofold api-key create --practice <id> --name \"VPN gateway\"")
        }
        guard let practiceID = UUID(uuidString: practiceText) else { throw CLIError("--practice must be a practice id") }
        let app = context.application
        try await prepareDatabase(app)
        let created = try await APIKeyService(database: app.db, now: app.twofold.clock.now(), address: "cli").create(
            practiceID: practiceID, name: name)
        context.console.print(created.key)
        let id = try created.record.requireID().uuidString
        FileHandle.standardError.write(
            Data(
                "API key \(id) created; it is shown only once. Revoke it with: twofold api-key revoke \(id)\n"
                    .utf8))
    }
}

struct RevokeAPIKeyCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Argument(name: "id", help: "The key's id (from create or list).") var id: String
    }

    var help: String { "Revokes an API key; requests with it are refused from then on." }

    func run(using context: CommandContext, signature: Signature) async throws {
        guard let id = UUID(uuidString: signature.id) else {
            throw CLIError("give the key's id (a UUID), as printed by `twofold api-key list`")
        }
        let app = context.application
        try await prepareDatabase(app)
        let key = try await APIKeyService(database: app.db, now: app.twofold.clock.now(), address: "cli").revoke(id: id)
        context.console.print("Revoked API key \(key.name) (\(key.hint)…).")
    }
}

struct ListAPIKeysCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "practice", help: "The practice id.") var practice: String?
    }

    var help: String { "Lists a practice's API keys (never the keys themselves)." }

    func run(using context: CommandContext, signature: Signature) async throws {
        guard let text = signature.practice, let practiceID = UUID(uuidString: text) else {
            throw CLIError("--practice <practice id> is required")
        }
        let app = context.application
        try await prepareDatabase(app)
        let keys = try await APIKey.query(on: app.db).filter(\.$practice.$id == practiceID).sort(\.$createdAt).all()
        if keys.isEmpty { context.console.print("No API keys.") }
        for key in keys {
            let state = key.revokedAt == nil ? "active" : "revoked"
            context.console.print("\(try key.requireID().uuidString)  \(key.hint)…  \(state)  \(key.name)")
        }
    }
}
