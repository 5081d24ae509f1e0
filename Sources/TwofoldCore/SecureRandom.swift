import ExtrasBase64

/// Randomness from the system's cryptographically secure generator, for every secret Twofold makes.
public enum SecureRandom {
    /// Random bytes.
    /// - Parameter count: how many.
    /// - Returns: `count` bytes from the system CSPRNG.
    public static func bytes(_ count: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var result = [UInt8]()
        result.reserveCapacity(count)
        while result.count < count {
            let word = generator.next()
            withUnsafeBytes(of: word) { result.append(contentsOf: $0.prefix(count - result.count)) }
        }
        return result
    }

    /// A random token for cookies and bearer headers: base64url without padding.
    /// - Parameter byteCount: entropy in bytes (32 by default: 256 bits).
    /// - Returns: the encoded token.
    public static func token(byteCount: Int = 32) -> String {
        Base64URL.encode(bytes(byteCount))
    }

    /// Uniform random decimal digits (no modulo bias), for codes sent by text message.
    /// - Parameter count: how many digits.
    /// - Returns: a string of `count` digits; it may start with zero.
    public static func digits(_ count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return String((0..<count).map { _ in Character(String(UInt8.random(in: 0...9, using: &generator))) })
    }
}

/// Base64url (RFC 4648 §5) without padding.
public enum Base64URL {
    /// Encodes bytes as base64url without `=` padding.
    public static func encode<C: Collection<UInt8>>(_ bytes: C) -> String {
        ExtrasBase64.Base64.encodeToString(bytes: bytes, options: [.base64UrlAlphabet, .omitPaddingCharacter])
    }

    /// Decodes base64url with or without padding.
    /// - Throws: when the text is not base64url.
    public static func decode(_ text: String) throws -> [UInt8] {
        try ExtrasBase64.Base64.decode(string: text, options: [.base64UrlAlphabet, .omitPaddingCharacter])
    }
}
