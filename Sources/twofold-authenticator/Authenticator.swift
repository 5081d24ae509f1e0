import ArgumentParser
import Foundation
import TwofoldCore

@main
struct Authenticator: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "twofold-authenticator",
        abstract: "A reference authenticator: time-based codes and a push device for Twofold, with its keys in a sealed local file.",
        discussion: """
            The keys live in $TWOFOLD_AUTHENTICATOR_FILE (default ~/.twofold-authenticator), mode 0600, sealed with AES-256-GCM
            under a key derived (scrypt) from $TWOFOLD_AUTHENTICATOR_PASSPHRASE or a passphrase asked on the terminal.
            """,
        subcommands: [Add.self, List.self, Code.self, Push.self])

    /// Loads the keyring, lets `body` read or change it, and saves it when it says so.
    static func withKeyring<T>(saving: Bool, _ body: (inout Keyring) async throws -> T) async throws -> T {
        let file = KeyFile(path: KeyFile.defaultPath)
        let passphrase = try Passphrase.obtain()
        var keyring = try file.load(passphrase: passphrase)
        let result = try await body(&keyring)
        if saving { try file.save(keyring, passphrase: passphrase) }
        return result
    }
}

struct Add: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Adds an authenticator-app account from its otpauth:// URI.")

    @Argument(help: "The otpauth://totp/… URI (from the QR code or the set-up page).") var uri: String
    @Option(help: "A name to refer to it (default: issuer:account).") var name: String?

    func run() async throws {
        let parsed: OTPAuthURI
        do { parsed = try OTPAuthURI(parsing: uri) } catch let error as OTPAuthURIError { throw ValidationError(error.reason) }
        let label = name ?? [parsed.issuer, parsed.account].compactMap { $0 }.joined(separator: ":")
        try await Authenticator.withKeyring(saving: true) { keyring in
            guard !keyring.accounts.contains(where: { $0.name == label }) else {
                throw ValidationError("There is already an account named \(label); pass --name.")
            }
            keyring.accounts.append(.init(name: label, uri: uri))
        }
        print("Added \(label).")
    }
}

struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Lists the accounts and push devices (never their keys).")

    func run() async throws {
        let keyring = try await Authenticator.withKeyring(saving: false) { $0 }
        if keyring.accounts.isEmpty && keyring.devices.isEmpty { print("Nothing yet: use `add` or `push enroll`.") }
        for account in keyring.accounts { print("code  \(account.name)") }
        for device in keyring.devices { print("push  \(device.name)  \(device.server)  device \(device.deviceID)") }
    }
}

struct Code: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Prints the current code of an account and how many seconds it stays valid.")

    @Argument(help: "The account's name (see `list`).") var name: String

    func run() async throws {
        let keyring = try await Authenticator.withKeyring(saving: false) { $0 }
        guard
            let account = keyring.accounts.first(where: { $0.name == name })
                ?? (keyring.accounts.count == 1 && name.isEmpty ? keyring.accounts.first : nil)
        else { throw ValidationError("No account named \(name). `list` shows the names.") }
        let uri = try OTPAuthURI(parsing: account.uri)
        let totp = TOTP(secret: uri.secret, parameters: uri.parameters)
        let now = Date()
        print("\(totp.code(at: now)) (\(totp.secondsRemaining(at: now)) s left)")
    }
}
