import Foundation
import TwofoldCore
import Vapor

/// `twofold import users|factors --practice ID FILE.csv`: all rows or none.
struct ImportCommands: AsyncCommandGroup {
    var help: String { "Import staff and authenticator keys from another system (CSV)." }
    var commands: [String: any AnyAsyncCommand] { ["users": ImportCommand(kind: .users), "factors": ImportCommand(kind: .factors)] }
}

struct ImportCommand: AsyncCommand {
    enum Kind { case users, factors }
    let kind: Kind

    struct Signature: CommandSignature {
        @Option(name: "practice", help: "The practice to import into.") var practice: String?
        @Argument(name: "file", help: "The CSV file.") var file: String
        @Flag(
            name: "invite",
            help: "Users: email an invitation (valid \(TwofoldPolicy.standard.invitation.validityDays) days) to each imported user "
                + "without a password_hash.")
        var invite: Bool
    }

    var help: String {
        switch kind {
        case .users:
            "Imports staff: username,first_name,last_name,email,cell,role[,password_hash] (bcrypt); --invite emails an invitation to those without a hash."
        case .factors: "Imports authenticator keys: username,secret,digits,algorithm,period,nickname (secret in base32)."
        }
    }

    func run(using context: CommandContext, signature: Signature) async throws {
        guard let text = signature.practice, let practiceID = UUID(uuidString: text) else {
            throw CLIError("--practice <practice id> is required")
        }
        guard let data = FileManager.default.contents(atPath: signature.file), let csv = String(data: data, encoding: .utf8) else {
            throw CLIError("cannot read \(signature.file) as UTF-8 text")
        }
        guard !signature.invite || kind == .users else { throw CLIError("--invite is for `twofold import users`") }
        let app = context.application
        try await prepareDatabase(app)
        let importer = Importer(database: app.db, sealer: app.twofold.sealer, now: app.twofold.clock.now(), practiceID: practiceID)
        do {
            let started = Date()
            let count = try await kind == .users ? importer.importUsers(csv: csv) : importer.importFactors(csv: csv)
            let seconds = String(format: "%.1f", Date().timeIntervalSince(started))
            context.console.print("Imported \(count) \(kind == .users ? "users" : "authenticator keys") in \(seconds) s.")
            if signature.invite {
                let usernames = try Importer.records(
                    csv, required: [], optional: ["username", "first_name", "last_name", "email", "cell", "role", "password_hash"]
                )
                .map { $0["username"] }
                let invited = try await InvitationService(application: app).inviteImported(usernames: usernames, practiceID: practiceID)
                context.console.print(
                    "Queued \(invited) invitation\(invited == 1 ? "" : "s") (valid \(app.policy.invitation.validityDays) days) "
                        + "to the imported users without a password.")
            }
        } catch let problems as Importer.Problems {
            throw CLIError(problems.description)
        }
    }
}
