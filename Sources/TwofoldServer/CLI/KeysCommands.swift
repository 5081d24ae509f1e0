import Fluent
import Foundation
import Vapor

/// `twofold keys rotate` and `twofold keys list`: the keys that sign id, access and logout tokens and step-up assertions.
struct KeysCommands: AsyncCommandGroup {
    var help: String { "Manage the keys that sign tokens and step-up assertions (published at /.well-known/jwks.json)." }
    var commands: [String: any AnyAsyncCommand] { ["rotate": RotateKeysCommand(), "list": ListKeysCommand()] }
}

struct RotateKeysCommand: AsyncCommand {
    struct Signature: CommandSignature {}

    var help: String {
        "Creates a new RS256 and a new ES256 signing key, which sign at once; the previous keys stay published for 24 hours so tokens they signed still verify, older ones are deleted."
    }

    func run(using context: CommandContext, signature: Signature) async throws {
        let app = context.application
        try await prepareDatabase(app)
        let now = app.twofold.clock.now()
        let store = SigningKeyStore(database: app.db, sealer: app.twofold.sealer, now: now)
        let removed = try await SigningKeyStore.prune(on: app.db, now: now)
        var created: [OpenedSigningKey] = []
        for algorithm in SigningAlgorithm.allCases {
            let rotated = try await store.rotate(algorithm)
            created.append(rotated.key)
            try await AuditLog.append(
                AuditEntry(
                    type: .signingKeyRotated, practiceID: nil,
                    details: [
                        "kid": rotated.key.kid, "alg": algorithm.rawValue, "retired": rotated.retired.joined(separator: ","),
                        "removed": String(removed.count),
                    ]), on: app.db, now: now)
        }
        // One new kid a line, ES256 (the step-up key) last.
        for key in created { context.console.print(key.kid) }
        let named = created.map { "\($0.algorithm.rawValue) \($0.kid)" }.joined(separator: ", ")
        FileHandle.standardError.write(
            Data(
                "New signing keys \(named) sign from now on; the previous ones stay published for 24 hours; \(removed.count) expired key(s) deleted.\n"
                    .utf8))
    }
}

struct ListKeysCommand: AsyncCommand {
    struct Signature: CommandSignature {}

    var help: String { "Lists the signing keys of each algorithm, newest (the one that signs) first." }

    func run(using context: CommandContext, signature: Signature) async throws {
        let app = context.application
        try await prepareDatabase(app)
        let now = app.twofold.clock.now()
        let keys = try await SigningKey.query(on: app.db).sort(\.$createdAt, .descending).sort(\.$kid, .descending).all()
        if keys.isEmpty { context.console.print("No signing key yet; the first signed token creates one (or run `twofold keys rotate`).") }
        let time = ISO8601DateFormatter()
        for algorithm in SigningAlgorithm.allCases {
            for key in keys where key.algorithm == algorithm {
                let state =
                    switch key.retiredAt {
                    case nil: "signing"
                    case let retired? where retired.addingTimeInterval(SigningKeyStore.publishedAfterRetirement) > now:
                        "published until \(time.string(from: retired.addingTimeInterval(SigningKeyStore.publishedAfterRetirement)))"
                    case _?: "expired"
                    }
                context.console.print("\(key.kid)  \(algorithm.rawValue)  created \(time.string(from: key.createdAt))  \(state)")
            }
        }
    }
}
