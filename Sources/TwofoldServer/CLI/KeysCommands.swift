import Fluent
import Foundation
import Vapor

/// `twofold keys rotate` and `twofold keys list`: the keys that sign step-up assertions.
struct KeysCommands: AsyncCommandGroup {
    var help: String { "Manage the keys that sign step-up assertions (published at /.well-known/jwks.json)." }
    var commands: [String: any AnyAsyncCommand] { ["rotate": RotateKeysCommand(), "list": ListKeysCommand()] }
}

struct RotateKeysCommand: AsyncCommand {
    struct Signature: CommandSignature {}

    var help: String { "Creates a new signing key; the previous one stays published so recent assertions still verify, older ones are deleted." }

    func run(using context: CommandContext, signature: Signature) async throws {
        let app = context.application
        try await prepareDatabase(app)
        let store = SigningKeyStore(database: app.db, sealer: app.twofold.sealer, now: app.twofold.clock.now())
        let created = try await store.create()
        let removed = try await store.pruneUnpublished()
        try await AuditLog.append(AuditEntry(type: .signingKeyRotated, practiceID: nil, details: ["kid": created.kid, "removed": String(removed)]),
                                  on: app.db, now: app.twofold.clock.now())
        context.console.print(created.kid)
        FileHandle.standardError.write(Data("New signing key \(created.kid) signs from now on; \(removed) retired key(s) deleted.\n".utf8))
    }
}

struct ListKeysCommand: AsyncCommand {
    struct Signature: CommandSignature {}

    var help: String { "Lists the published signing keys, newest (the one that signs) first." }

    func run(using context: CommandContext, signature: Signature) async throws {
        let app = context.application
        try await prepareDatabase(app)
        let keys = try await SigningKey.query(on: app.db).sort(\.$createdAt, .descending).sort(\.$kid, .descending).all()
        if keys.isEmpty { context.console.print("No signing key yet; the first step-up creates one (or run `twofold keys rotate`).") }
        for (index, key) in keys.enumerated() {
            context.console.print("\(key.kid)  created \(ISO8601DateFormatter().string(from: key.createdAt))  \(index == 0 ? "signing" : "published")")
        }
    }
}
