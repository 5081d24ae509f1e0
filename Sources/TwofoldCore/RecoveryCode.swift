import Crypto

/// A single-use recovery code such as `7kq2-9xmf-3tch`: 12 characters from a 32-letter alphabet (60 bits).
/// Its description never shows the code.
public struct RecoveryCode: Sendable, CustomStringConvertible {
    /// 32 symbols, so each byte's low five bits pick one without bias: digits and lower-case letters
    /// without the look-alikes 1, i, l and o (an “o” typed by mistake is read as zero).
    static let symbols: [Character] = Array("023456789abcdefghjkmnpqrstuvwxyz")
    static let length = 12

    /// The code as shown to the user, in three groups of four.
    public let value: String

    /// Ten (or `count`) new codes from `random` (the system CSPRNG unless a test passes its own source).
    public static func generateSet(count: Int = 10, random: RandomSource = .system) -> [RecoveryCode] {
        (0..<count).map { _ in
            let characters = random.bytes(length).map { symbols[Int($0 & 31)] }
            let text = String(characters)
            let grouped = [text.prefix(4), text.dropFirst(4).prefix(4), text.dropFirst(8)].joined(separator: "-")
            return RecoveryCode(value: grouped)
        }
    }

    /// Lower-cases and removes spaces and hyphens.
    /// - Returns: the 12-character code, or nil when the input cannot be a recovery code.
    public static func normalize(_ input: String) -> String? {
        let cleaned = String(input.lowercased().filter { $0 != " " && $0 != "-" }.map { $0 == "o" ? "0" : $0 })
        guard cleaned.count == length, cleaned.allSatisfy(symbols.contains) else { return nil }
        return cleaned
    }

    /// A salted hash of this code for storage.
    public func hashed() -> HashedRecoveryCode {
        let salt = SecureRandom.bytes(16)
        return HashedRecoveryCode(salt: salt, digest: HashedRecoveryCode.digest(salt: salt, normalized: Self.normalize(value) ?? value))
    }

    public var description: String { "RecoveryCode(redacted)" }
}

/// How a recovery code is stored: SHA-256 over a per-code random salt and the normalised code.
public struct HashedRecoveryCode: Sendable, Hashable {
    /// 16 random bytes.
    public let salt: [UInt8]
    /// SHA-256(salt ‖ normalised code).
    public let digest: [UInt8]

    init(salt: [UInt8], digest: [UInt8]) {
        self.salt = salt
        self.digest = digest
    }

    static func digest(salt: [UInt8], normalized: String) -> [UInt8] {
        Array(SHA256.hash(data: salt + Array(normalized.utf8)))
    }

    /// `v1$<base64url salt>$<base64url digest>`.
    public var encoded: String {
        "v1$\(Base64URL.encode(salt))$\(Base64URL.encode(digest))"
    }

    /// Reads the stored form; nil when it is not one.
    public init?(encoded: String) {
        let parts = encoded.split(separator: "$")
        guard parts.count == 3, parts[0] == "v1",
            let salt = try? Base64URL.decode(String(parts[1])), let digest = try? Base64URL.decode(String(parts[2])),
            salt.count == 16, digest.count == 32
        else { return nil }
        self.salt = salt
        self.digest = digest
    }

    /// Whether `input` (in any case, with or without hyphens and spaces) is this code. Constant time.
    public func matches(_ input: String) -> Bool {
        guard let normalized = RecoveryCode.normalize(input) else { return false }
        return ConstantTime.equals(Self.digest(salt: salt, normalized: normalized), digest)
    }
}
