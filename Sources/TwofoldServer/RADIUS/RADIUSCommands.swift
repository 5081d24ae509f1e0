import Fluent
import Foundation
import Vapor

/// `twofold radius-client create|list|revoke`: the devices that may ask Twofold over RADIUS.
struct RADIUSClientCommands: AsyncCommandGroup {
    var help: String { "Manage RADIUS clients (VPNs, gateways, firewalls) of a practice." }
    var commands: [String: any AnyAsyncCommand] {
        ["create": CreateRADIUSClientCommand(), "list": ListRADIUSClientsCommand(), "revoke": RevokeRADIUSClientCommand()]
    }
}

struct CreateRADIUSClientCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "practice", help: "The practice id the device belongs to.") var practice: String?
        @Option(name: "name", help: "What the device is, e.g. \"Clinic VPN\".") var name: String?
        @Option(name: "address", help: "The device's source address or CIDR block, e.g. 10.0.0.1/32.") var address: String?
        @Option(name: "mode", help: "password+code (default) or code-only.") var mode: String?
        @Flag(name: "secret-stdin", help: "Read the shared secret from standard input instead of generating one.") var secretStdin: Bool
        @Flag(name: "role-filter-id", help: "Send the user's role (provider, staff, administrator) as Filter-Id on Access-Accept.")
        var roleFilterID: Bool
    }

    var help: String { "Registers a RADIUS client and prints its shared secret once (`secret: …`)." }

    func run(using context: CommandContext, signature: Signature) async throws {
        guard let practiceText = signature.practice, let name = signature.name, let address = signature.address else {
            throw CLIError(
                "--practice, --name and --address are required, e.g. twofold radius-client create --practice <id> --name \"Clinic VPN\" --address 10.0.0.1/32"
            )
        }
        guard let practiceID = UUID(uuidString: practiceText) else { throw CLIError("--practice must be a practice id") }
        guard let mode = RADIUSClient.Mode(rawValue: signature.mode ?? RADIUSClient.Mode.passwordAndCode.rawValue) else {
            throw CLIError("--mode must be password+code or code-only")
        }
        var secret: String?
        if signature.secretStdin {
            secret = readLine(strippingNewline: true)
            if secret?.isEmpty ?? true { throw CLIError("--secret-stdin: no secret on standard input") }
        }
        let app = context.application
        try await prepareDatabase(app)
        do {
            let created = try await RADIUSClientService(database: app.db, sealer: app.twofold.sealer, now: app.twofold.clock.now())
                .create(
                    practiceID: practiceID, name: name, address: address, mode: mode, secret: secret, roleAsFilterID: signature.roleFilterID
                )
            app.radiusClients.invalidate()
            context.console.print("client_id: \(try created.client.requireID().uuidString)")
            if secret == nil { context.console.print("secret: \(created.secret)") }
            FileHandle.standardError.write(
                Data(
                    "RADIUS client \(created.client.name) (\(created.client.address), \(mode.rawValue)) added. The secret is shown only once.\n"
                        .utf8))
        } catch let error as RADIUSClientError {
            throw CLIError(error.description)
        }
    }
}

struct ListRADIUSClientsCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Option(name: "practice", help: "The practice id.") var practice: String?
    }

    var help: String { "Lists a practice's RADIUS clients (never their secrets)." }

    func run(using context: CommandContext, signature: Signature) async throws {
        guard let text = signature.practice, let practiceID = UUID(uuidString: text) else {
            throw CLIError("--practice <practice id> is required")
        }
        let app = context.application
        try await prepareDatabase(app)
        let clients = try await RADIUSClientService(database: app.db, sealer: app.twofold.sealer, now: app.twofold.clock.now()).list(
            practiceID: practiceID)
        if clients.isEmpty { context.console.print("No RADIUS clients.") }
        for client in clients {
            context.console.print(
                "\(try client.requireID().uuidString)  \(client.address)  \(client.mode.rawValue)  \(client.revokedAt == nil ? "active" : "revoked")  \(client.name)"
            )
        }
    }
}

struct RevokeRADIUSClientCommand: AsyncCommand {
    struct Signature: CommandSignature {
        @Argument(name: "id", help: "The client's id (from create or list).") var id: String
    }

    var help: String { "Revokes a RADIUS client: its packets are dropped from then on." }

    func run(using context: CommandContext, signature: Signature) async throws {
        guard let id = UUID(uuidString: signature.id) else {
            throw CLIError("give the client's id (a UUID), as printed by `twofold radius-client list`")
        }
        let app = context.application
        try await prepareDatabase(app)
        do {
            let client = try await RADIUSClientService(database: app.db, sealer: app.twofold.sealer, now: app.twofold.clock.now()).revoke(
                id: id)
            app.radiusClients.invalidate()
            context.console.print("Revoked RADIUS client \(client.name) (\(client.address)).")
        } catch let error as RADIUSClientError {
            throw CLIError(error.description)
        }
    }
}
