import Crypto

/// SHA-256 helpers for storing tokens and chaining the audit log.
public enum Digest {
    /// The SHA-256 of the UTF-8 bytes of `text`, as lower-case hex.
    /// - Parameter text: the input, e.g. a session token.
    /// - Returns: 64 hex characters.
    public static func sha256Hex(_ text: String) -> String {
        hex(sha256(Array(text.utf8)))
    }

    /// The SHA-256 of `bytes`.
    public static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: bytes))
    }

    /// Lower-case hex of bytes.
    public static func hex<C: Collection<UInt8>>(_ bytes: C) -> String {
        let digits = Array("0123456789abcdef")
        var text = ""
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0f)])
        }
        return text
    }
}
