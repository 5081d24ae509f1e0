import Crypto

/// HMAC-based one-time passwords (RFC 4226).
public struct HOTP: Sendable {
    let secret: OTPSecret
    let algorithm: OTPAlgorithm
    let digits: Int

    /// A generator for one key.
    /// - Parameters:
    ///   - secret: the shared key.
    ///   - algorithm: the HMAC hash (SHA-1 in RFC 4226; SHA-256/512 as RFC 6238 allows).
    ///   - digits: 6, 7 or 8.
    public init(secret: OTPSecret, algorithm: OTPAlgorithm = .sha1, digits: Int = 6) {
        self.secret = secret
        self.algorithm = algorithm
        self.digits = digits
    }

    /// The code for one counter value, zero-padded to ``digits``.
    public func code(counter: UInt64) -> String {
        let value = Self.truncate(mac(counter: counter)) % Self.modulus(digits)
        let text = String(value)
        return String(repeating: "0", count: max(0, digits - text.count)) + text
    }

    func mac(counter: UInt64) -> [UInt8] {
        let message = withUnsafeBytes(of: counter.bigEndian) { Array($0) }
        let key = SymmetricKey(data: secret.bytes)
        switch algorithm {
        case .sha1: return Array(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: key))
        case .sha256: return Array(HMAC<SHA256>.authenticationCode(for: message, using: key))
        case .sha512: return Array(HMAC<SHA512>.authenticationCode(for: message, using: key))
        }
    }

    /// Dynamic truncation (RFC 4226 §5.3): 31 bits from the offset the last nibble names.
    static func truncate(_ mac: [UInt8]) -> UInt32 {
        let offset = Int(mac[mac.count - 1] & 0x0f)
        return (UInt32(mac[offset] & 0x7f) << 24) | (UInt32(mac[offset + 1]) << 16) | (UInt32(mac[offset + 2]) << 8)
            | UInt32(mac[offset + 3])
    }

    static func modulus(_ digits: Int) -> UInt32 {
        var value: UInt32 = 1
        for _ in 0..<digits { value *= 10 }
        return value
    }
}
