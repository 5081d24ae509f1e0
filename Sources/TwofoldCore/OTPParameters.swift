/// The HMAC hash of an HOTP/TOTP generator.
public enum OTPAlgorithm: String, Sendable, Codable, CaseIterable, Hashable {
    case sha1 = "SHA1"
    case sha256 = "SHA256"
    case sha512 = "SHA512"

    /// The key length RFC 6238 uses with this hash: 20, 32 or 64 bytes.
    public var recommendedSecretLength: Int {
        switch self {
        case .sha1: 20
        case .sha256: 32
        case .sha512: 64
        }
    }
}

/// A problem with OTP settings or keys.
public struct OTPError: Error, Hashable, CustomStringConvertible, Sendable {
    /// What kind of problem it is.
    public enum Code: Hashable, Sendable {
        case invalidDigits
        case invalidPeriod
        case secretTooShort
    }

    /// The kind of problem.
    public let code: Code
    /// What is wrong, for a person.
    public let reason: String
    public var description: String { "OTPError.\(code): \(reason)" }
}

/// How codes are made: hash, number of digits, seconds per time step.
public struct OTPParameters: Sendable, Hashable, Codable {
    public var algorithm: OTPAlgorithm
    /// 6, 7 or 8.
    public var digits: Int
    /// Seconds per time step, 15 to 300.
    public var period: Int

    /// Checks and stores the settings.
    /// - Throws: ``OTPError`` with `.invalidDigits` or `.invalidPeriod`.
    public init(algorithm: OTPAlgorithm = .sha1, digits: Int = 6, period: Int = 30) throws {
        guard (6...8).contains(digits) else { throw OTPError(code: .invalidDigits, reason: "Codes have 6, 7 or 8 digits (got \(digits)).") }
        guard (15...300).contains(period) else {
            throw OTPError(code: .invalidPeriod, reason: "The time step must be 15 to 300 seconds (got \(period)).")
        }
        self.algorithm = algorithm
        self.digits = digits
        self.period = period
    }

    /// SHA-1, 6 digits, 30 seconds: what every authenticator app understands.
    public static let `default` = OTPParameters(checked: .sha1, digits: 6, period: 30)

    private init(checked algorithm: OTPAlgorithm, digits: Int, period: Int) {
        self.algorithm = algorithm
        self.digits = digits
        self.period = period
    }
}

/// An HOTP/TOTP key. Its description never shows the key.
public struct OTPSecret: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// The raw key.
    public let bytes: [UInt8]

    /// Wraps raw key bytes.
    public init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Reads a key typed or imported as base32.
    /// - Throws: ``Base32Error`` for bad text, ``OTPError`` `.secretTooShort` under 80 bits.
    public init(base32: String) throws {
        let bytes = try Base32.decode(base32)
        guard bytes.count >= 10 else {
            throw OTPError(code: .secretTooShort, reason: "The key has \(bytes.count * 8) bits; at least 80 are needed.")
        }
        self.bytes = bytes
    }

    /// A new key from the system CSPRNG: 160, 256 or 512 bits to match the hash.
    public static func generate(for algorithm: OTPAlgorithm = .sha1) -> OTPSecret {
        OTPSecret(bytes: SecureRandom.bytes(algorithm.recommendedSecretLength))
    }

    /// Upper-case base32 without padding.
    public var base32: String { Base32.encode(bytes) }

    /// Base32 in groups of four, for typing by hand: `JBSW Y3DP …`.
    public var base32Grouped: String {
        var grouped = ""
        for (index, character) in base32.enumerated() {
            if index > 0 && index % 4 == 0 { grouped.append(" ") }
            grouped.append(character)
        }
        return grouped
    }

    public var description: String { "OTPSecret(redacted)" }
    public var debugDescription: String { description }
}
