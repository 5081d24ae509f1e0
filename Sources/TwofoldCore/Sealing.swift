import Crypto
import Foundation

/// Why a secret could not be sealed or opened.
public struct SealingError: Error, Hashable, CustomStringConvertible, Sendable {
    /// What kind of problem it is.
    public enum Code: Hashable, Sendable {
        case invalidKeyLength
        case invalidKeyEncoding
        case malformed
        case unknownKey
        case authenticationFailed
    }

    /// The kind of problem.
    public let code: Code
    /// What is wrong, for a person.
    public let reason: String
    public var description: String { "SealingError.\(code): \(reason)" }
}

/// A 256-bit AES-GCM key for secrets at rest, with a short id stored in every blob it seals.
public struct SealingKey: Sendable {
    let key: SymmetricKey
    /// The first four bytes of SHA-256("twofold-key-id" ‖ key): names the key without revealing it.
    public let id: [UInt8]

    /// Wraps 32 raw bytes.
    /// - Throws: ``SealingError`` `.invalidKeyLength` for any other length.
    public init(rawKey: [UInt8]) throws {
        guard rawKey.count == 32 else {
            throw SealingError(code: .invalidKeyLength, reason: "A sealing key has 32 bytes (got \(rawKey.count)).")
        }
        key = SymmetricKey(data: rawKey)
        id = Array(SHA256.hash(data: Array("twofold-key-id".utf8) + rawKey).prefix(4))
    }

    /// Reads a key from standard base64.
    /// - Throws: ``SealingError`` `.invalidKeyEncoding` or `.invalidKeyLength`.
    public init(base64: String) throws {
        guard let data = Data(base64Encoded: base64.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw SealingError(code: .invalidKeyEncoding, reason: "The sealing key is not base64.")
        }
        try self.init(rawKey: Array(data))
    }

    /// A new key from the system CSPRNG.
    public static func generate() -> SealingKey {
        // 32 bytes always make a valid key.
        guard let key = try? SealingKey(rawKey: SecureRandom.bytes(32)) else { preconditionFailure("32 random bytes are a valid key") }
        return key
    }

    /// The key in standard base64, for `TWOFOLD_SECRET_KEY` or the key file.
    public var base64: String {
        key.withUnsafeBytes { Data($0).base64EncodedString() }
    }
}

/// Seals secrets with AES-256-GCM. A blob is: format byte 0x01 ‖ key id (4) ‖ nonce (12) ‖ ciphertext ‖ tag (16).
/// The key id lets older keys keep opening old blobs after the current key changes.
public struct SecretSealer: Sendable {
    static let formatVersion: UInt8 = 1
    static let headerLength = 1 + 4 + 12
    let current: SealingKey
    let keysByID: [[UInt8]: SealingKey]

    /// Seals with `current`; opens with `current` or any of `previous`.
    public init(current: SealingKey, previous: [SealingKey] = []) {
        self.current = current
        var keys: [[UInt8]: SealingKey] = [:]
        for key in previous { keys[key.id] = key }
        keys[current.id] = current
        keysByID = keys
    }

    /// Encrypts and authenticates `plaintext`, binding `context` (e.g. the owning record's id) as associated data.
    /// - Throws: ``SealingError`` if the cipher fails.
    public func seal(_ plaintext: [UInt8], context: [UInt8] = []) throws -> [UInt8] {
        do {
            let box = try AES.GCM.seal(plaintext, using: current.key, nonce: AES.GCM.Nonce(), authenticating: context)
            return [Self.formatVersion] + current.id + Array(box.nonce) + Array(box.ciphertext) + Array(box.tag)
        } catch {
            throw SealingError(code: .malformed, reason: "The secret could not be sealed.")
        }
    }

    /// Opens a blob made by ``seal(_:context:)`` with the same `context`.
    /// - Throws: ``SealingError``: `.malformed`, `.unknownKey` (naming the key id), or `.authenticationFailed` for a changed blob, wrong key or wrong context.
    public func open(_ blob: [UInt8], context: [UInt8] = []) throws -> [UInt8] {
        guard blob.count >= Self.headerLength + 16, blob[0] == Self.formatVersion else {
            throw SealingError(code: .malformed, reason: "The sealed secret is not in Twofold's format.")
        }
        let keyID = Array(blob[1..<5])
        guard let key = keysByID[keyID] else {
            throw SealingError(
                code: .unknownKey,
                reason:
                    "The secret was sealed with key \(Digest.hex(keyID)), which is not configured; add it to TWOFOLD_PREVIOUS_SECRET_KEYS.")
        }
        do {
            let box = try AES.GCM.SealedBox(
                nonce: AES.GCM.Nonce(data: blob[5..<17]), ciphertext: blob[17..<(blob.count - 16)], tag: blob[(blob.count - 16)...])
            return Array(try AES.GCM.open(box, using: key.key, authenticating: context))
        } catch {
            throw SealingError(
                code: .authenticationFailed,
                reason: "The sealed secret does not authenticate: it was changed, or belongs to another record.")
        }
    }

    /// Whether a blob was sealed with an older key and should be sealed again with the current one.
    public func needsResealing(_ blob: [UInt8]) -> Bool {
        blob.count >= 5 && Array(blob[1..<5]) != current.id
    }
}

extension SealingKey {
    /// A 256-bit key for another purpose, derived with HKDF-SHA256; `info` names the purpose. The sealing key stays
    /// the only secret to back up, and no derived key reveals it or a key derived for another purpose.
    public func derivedKey(info: String) -> SymmetricKey {
        HKDF<SHA256>.deriveKey(inputKeyMaterial: key, info: Array(info.utf8), outputByteCount: 32)
    }
}

extension SecretSealer {
    /// ``SealingKey/derivedKey(info:)`` of the current key first, then of every previous key.
    public func derivedKeys(info: String) -> [SymmetricKey] {
        [current.derivedKey(info: info)] + keysByID.values.filter { $0.id != current.id }.map { $0.derivedKey(info: info) }
    }
}
