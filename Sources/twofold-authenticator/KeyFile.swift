import Crypto
import CryptoExtras
import Foundation
import TwofoldCore

/// What the authenticator keeps: authenticator-app keys and push-device keys.
struct Keyring: Codable {
    struct Account: Codable {
        var name: String
        var uri: String
    }

    struct Device: Codable {
        var name: String
        var server: String
        var deviceID: String
        /// The P-256 private key, raw, base64url.
        var privateKey: String

        func signingKey() throws -> P256.Signing.PrivateKey {
            try P256.Signing.PrivateKey(rawRepresentation: try Base64URL.decode(privateKey))
        }
    }

    var accounts: [Account] = []
    var devices: [Device] = []
}

/// The keyring file: JSON holding the keyring sealed with AES-256-GCM under a key derived from a passphrase
/// with scrypt. Written with mode 0600, replaced atomically.
struct KeyFile {
    let path: String

    static var defaultPath: String {
        if let path = ProcessInfo.processInfo.environment["TWOFOLD_AUTHENTICATOR_FILE"], !path.isEmpty { return path }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".twofold-authenticator").path
    }

    private struct Envelope: Codable {
        var format = "twofold-authenticator-v1"
        var kdf = "scrypt"
        var n = 32_768
        var r = 8
        var p = 1
        var salt: String
        var sealed: String
    }

    private static func key(passphrase: String, envelope: Envelope) throws -> SymmetricKey {
        try KDF.Scrypt.deriveKey(
            from: Array(passphrase.utf8), salt: try Base64URL.decode(envelope.salt), outputByteCount: 32,
            rounds: envelope.n, blockSize: envelope.r, parallelism: envelope.p)
    }

    func load(passphrase: String) throws -> Keyring {
        guard FileManager.default.fileExists(atPath: path) else { return Keyring() }
        let envelope = try JSONDecoder().decode(Envelope.self, from: try Data(contentsOf: URL(fileURLWithPath: path)))
        guard envelope.format == "twofold-authenticator-v1" else {
            throw AuthenticatorError("\(path) is not a twofold-authenticator file.")
        }
        do {
            let box = try AES.GCM.SealedBox(combined: try Base64URL.decode(envelope.sealed))
            let plain = try AES.GCM.open(box, using: try Self.key(passphrase: passphrase, envelope: envelope))
            return try JSONDecoder().decode(Keyring.self, from: plain)
        } catch {
            throw AuthenticatorError("Cannot open \(path): wrong passphrase, or the file is damaged.")
        }
    }

    func save(_ keyring: Keyring, passphrase: String) throws {
        var envelope = Envelope(salt: Base64URL.encode(SecureRandom.bytes(16)), sealed: "")
        let plain = try JSONEncoder().encode(keyring)
        let box = try AES.GCM.seal(plain, using: try Self.key(passphrase: passphrase, envelope: envelope))
        guard let combined = box.combined else { throw AuthenticatorError("Could not seal the keyring.") }
        envelope.sealed = Base64URL.encode(Array(combined))
        let data = try JSONEncoder().encode(envelope)
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: data, attributes: [.posixPermissions: 0o600]) else {
            throw AuthenticatorError("Cannot write \(temporary).")
        }
        guard rename(temporary, path) == 0 else { throw AuthenticatorError("Cannot replace \(path).") }
        chmod(path, 0o600)
    }
}

struct AuthenticatorError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum Passphrase {
    /// `$TWOFOLD_AUTHENTICATOR_PASSPHRASE`, else asked on the terminal without echo.
    static func obtain() throws -> String {
        if let value = ProcessInfo.processInfo.environment["TWOFOLD_AUTHENTICATOR_PASSPHRASE"], !value.isEmpty { return value }
        guard isatty(STDIN_FILENO) != 0, let entered = getpass("Passphrase for the authenticator file: ") else {
            throw AuthenticatorError("Set TWOFOLD_AUTHENTICATOR_PASSPHRASE or run in a terminal to enter the passphrase.")
        }
        let text = String(cString: entered)
        guard !text.isEmpty else { throw AuthenticatorError("The passphrase cannot be empty.") }
        return text
    }
}
