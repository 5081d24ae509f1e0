/// Where the randomness of the secrets Twofold makes comes from: the system's CSPRNG in production. Services take one
/// in their context, so a test can hand them a repeatable source and know the code a user will receive.
public struct RandomSource: Sendable {
    private let fill: @Sendable (Int) -> [UInt8]

    /// - Parameter bytes: returns exactly the number of random bytes asked for.
    public init(bytes: @escaping @Sendable (Int) -> [UInt8]) {
        self.fill = bytes
    }

    /// The system's cryptographically secure generator (``SecureRandom``).
    public static let system = RandomSource(bytes: SecureRandom.bytes)

    /// `count` random bytes.
    public func bytes(_ count: Int) -> [UInt8] {
        let bytes = fill(count)
        precondition(bytes.count == count, "a random source returned \(bytes.count) bytes for \(count)")
        return bytes
    }

    /// A random token for cookies and bearer headers: base64url without padding, `byteCount` bytes of entropy.
    public func token(byteCount: Int = 32) -> String {
        Base64URL.encode(bytes(byteCount))
    }

    /// Uniform random decimal digits, for codes sent by text message. Bytes of 250 and above are drawn again, so every
    /// digit is equally likely (no modulo bias).
    public func digits(_ count: Int) -> String {
        var digits = ""
        digits.reserveCapacity(count)
        while digits.count < count {
            for byte in bytes(count - digits.count) where byte < 250 {
                digits.append(Character(String(byte % 10)))
            }
        }
        return digits
    }
}
