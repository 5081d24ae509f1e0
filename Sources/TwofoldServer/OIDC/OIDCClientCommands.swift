import Fluent
import Foundation
import Vapor

/// `twofold oidc-client create|list|revoke|rotate-secret|delete`: the practice's OpenID Connect applications.
struct OIDCClientCommands: AsyncCommandGroup {
    var help: String { "Manage the OpenID Connect applications (EHR, portal, intranet) of a practice." }
    var commands: [String: any AnyAsyncCommand] {
        [
            "create": CreateOIDCClientCommand(), "list": ListOIDCClientsCommand(), "revoke": RevokeOIDCClientCommand(),
            "rotate-secret": RotateOIDCClientSecretCommand(), "delete": DeleteOIDCClientCommand(),
        ]
    }
}

extension OIDCClientRegistry {
    /// The registry for a command, after the schema is brought up to date.
    static func forCommand(_ context: CommandContext) async throws -> OIDCClientRegistry {
        let app = context.application
        try await prepareDatabase(app)
        return OIDCClientRegistry(database: app.db, now: app.twofold.clock.now(), actor: .cli)
    }

    /// Runs a registry call, turning its errors into the CLI's one-line messages.
    static func cli<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as OIDCClientError {
            throw CLIError(error.reason)
        }
    }
}

struct CreateOIDCClientCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "practice", help: "The practice id the application belongs to.") var practice: String?
        @Option(name: "name", help: "What the application is, e.g. \"Riverside EHR\".") var name: String?
        @Option(name: "redirect-uri", help: "A redirect URI, matched exactly; repeat for several (up to 10).") var redirectURI: String?
        @Option(name: "post-logout-redirect-uri", help: "Where RP-initiated logout may return; repeat for several.")
        var postLogoutRedirectURI: String?
        @Option(name: "backchannel-logout-uri", help: "Where Twofold posts back-channel logout tokens.") var backchannelLogoutURI: String?
        @Option(name: "start-url", help: "The link on users' home page.") var startURL: String?
        @Flag(name: "public", help: "A public client (native or browser app): no secret, PKCE required.") var isPublic: Bool
        @Option(name: "id-token-alg", help: "RS256 (default) or ES256.") var idTokenAlgorithm: String?
        @Flag(name: "allow-refresh", help: "Allow refresh tokens when the application asks for offline_access.") var allowRefresh: Bool
    }

    var help: String {
        "Registers an application and prints `client_id: …` and, for a confidential one, `client_secret: …` (shown only once)."
    }

    /// ConsoleKit reads an option once; the URI options may be repeated, so they are taken out first.
    func run(using context: inout CommandContext) async throws {
        let redirects = Self.takeAll("redirect-uri", from: &context.input)
        let postLogout = Self.takeAll("post-logout-redirect-uri", from: &context.input)
        let signature = try Signature(from: &context.input)
        guard context.input.arguments.isEmpty else { throw CommandError.unknownInput(context.input.arguments.joined(separator: " ")) }
        try await create(context, signature, redirectURIs: redirects, postLogoutRedirectURIs: postLogout)
    }

    func run(using context: CommandContext, signature: Signature) async throws {
        try await create(
            context, signature, redirectURIs: signature.redirectURI.map { [$0] } ?? [],
            postLogoutRedirectURIs: signature.postLogoutRedirectURI.map { [$0] } ?? [])
    }

    static func takeAll(_ name: String, from input: inout CommandInput) -> [String] {
        var values: [String] = []
        while let index = input.arguments.firstIndex(of: "--\(name)"), index + 1 < input.arguments.count {
            values.append(input.arguments[index + 1])
            input.arguments.removeSubrange(index...(index + 1))
        }
        return values
    }

    private func create(_ context: CommandContext, _ signature: Signature, redirectURIs: [String], postLogoutRedirectURIs: [String])
        async throws
    {
        guard let practiceText = signature.practice, let name = signature.name, !redirectURIs.isEmpty else {
            throw CLIError(
                "--practice, --name and at least one --redirect-uri are required, e.g. twofold oidc-client create --practice <id> "
                    + "--name \"Riverside EHR\" --redirect-uri https://ehr.example.org/oidc/callback")
        }
        guard let practiceID = UUID(uuidString: practiceText) else { throw CLIError("--practice must be a practice id") }
        let input = OIDCClientInput(
            name: name, redirectURIs: redirectURIs, postLogoutRedirectURIs: postLogoutRedirectURIs,
            backchannelLogoutURI: signature.backchannelLogoutURI, startURL: signature.startURL,
            isPublic: signature.isPublic, idTokenAlgorithm: signature.idTokenAlgorithm ?? "RS256",
            allowOfflineAccess: signature.allowRefresh)
        let registry = try await OIDCClientRegistry.forCommand(context)
        let created = try await OIDCClientRegistry.cli { try await registry.create(practiceID: practiceID, input) }
        context.console.print("client_id: \(created.client.clientID)")
        if let secret = created.secret { context.console.print("client_secret: \(secret)") }
        let kind =
            created.secret == nil ? "public application (PKCE, no secret)" : "confidential application; the secret is shown only once"
        FileHandle.standardError.write(Data("Registered \(created.client.name) as a \(kind).\n".utf8))
    }
}

struct ListOIDCClientsCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "practice", help: "The practice id.") var practice: String?
        @Flag(name: "json", help: "Print JSON instead of a table.") var json: Bool
    }

    var help: String { "Lists a practice's applications (never their secrets)." }

    struct Item: Codable {
        var clientId: String
        var name: String
        var type: String
        var status: String
        var redirectUris: [String]
        var createdAt: Date
    }

    func run(using context: CommandContext, signature: Signature) async throws {
        guard let text = signature.practice, let practiceID = UUID(uuidString: text) else {
            throw CLIError("--practice <practice id> is required")
        }
        let registry = try await OIDCClientRegistry.forCommand(context)
        guard try await Practice.find(practiceID, on: registry.database) != nil else {
            throw CLIError(OIDCClientError.practiceNotFound.reason)
        }
        let items = try await registry.list(practiceID: practiceID).map { client in
            Item(
                clientId: client.clientID, name: client.name, type: client.isPublic ? "public" : "confidential",
                status: client.enabled ? "enabled" : "disabled", redirectUris: client.redirectURIs, createdAt: client.createdAt)
        }
        if signature.json {
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            context.console.print(String(decoding: try encoder.encode(items), as: UTF8.self))
            return
        }
        guard !items.isEmpty else { return context.console.print("No applications.") }
        let width = max(9, items.map(\.clientId.count).max() ?? 0)
        func pad(_ text: String, _ count: Int) -> String { text.padding(toLength: max(count, text.count), withPad: " ", startingAt: 0) }
        context.console.print("\(pad("CLIENT_ID", width))  \(pad("TYPE", 12))  \(pad("STATUS", 8))  NAME")
        for item in items {
            context.console.print("\(pad(item.clientId, width))  \(pad(item.type, 12))  \(pad(item.status, 8))  \(item.name)")
        }
    }
}

struct RevokeOIDCClientCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Argument(name: "client_id", help: "The application's client_id (from create or list).") var clientID: String
    }

    var help: String { "Disables an application: nobody signs in to it through Twofold and its tokens stop working." }

    func run(using context: CommandContext, signature: Signature) async throws {
        let registry = try await OIDCClientRegistry.forCommand(context)
        let client = try await OIDCClientRegistry.cli { try await registry.disable(clientID: signature.clientID) }
        context.console.print("Disabled \(client.name) (\(client.clientID)): its tokens no longer work.")
    }
}

struct RotateOIDCClientSecretCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Argument(name: "client_id", help: "The application's client_id.") var clientID: String
    }

    var help: String { "Gives a confidential application a new secret (printed once as `client_secret: …`); the old one stops working." }

    func run(using context: CommandContext, signature: Signature) async throws {
        let registry = try await OIDCClientRegistry.forCommand(context)
        let rotated = try await OIDCClientRegistry.cli { try await registry.rotateSecret(clientID: signature.clientID) }
        context.console.print("client_id: \(rotated.client.clientID)")
        context.console.print("client_secret: \(rotated.secret)")
        FileHandle.standardError.write(
            Data("The old secret of \(rotated.client.name) no longer works; the new one is shown only once.\n".utf8))
    }
}

struct DeleteOIDCClientCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Argument(name: "client_id", help: "The application's client_id.") var clientID: String
    }

    var help: String { "Deletes an application with its tokens (the audit log keeps its history)." }

    func run(using context: CommandContext, signature: Signature) async throws {
        let registry = try await OIDCClientRegistry.forCommand(context)
        let client = try await OIDCClientRegistry.cli { try await registry.delete(clientID: signature.clientID) }
        context.console.print("Deleted \(client.name) (\(client.clientID)).")
    }
}
