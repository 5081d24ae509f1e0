/// Why a RADIUS packet was refused or could not be built.
///
/// Callers branch on ``code`` only; ``reason`` is for logs and never contains the shared secret or a password.
public struct RADIUSError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What went wrong, in a form a server can count and branch on (for example, drops by reason in `/metrics`).
    public enum Code: Hashable, Sendable {
        /// The datagram is shorter than the 20-octet header or than its own Length field (RFC 2865 §3).
        case truncated
        /// The Length field is outside 20…4096, or a packet to encode would exceed 4096 octets (RFC 2865 §3).
        case badLength
        /// The packet code is not one Twofold recognises (RFC 2865 §3, RFC 5997).
        case unsupportedCode(UInt8)
        /// An attribute of this type is malformed: its length is under 2, it runs past the packet, or its value is
        /// outside the bounds RFC 2865 §5 / RFC 2869 §5 give it.
        case badAttribute(UInt8)
        /// An attribute that may appear at most once appears again (RFC 2865 §5.44 table, RFC 2869 §5.14).
        case duplicateAttribute(UInt8)
        /// The packet has no Message-Authenticator, which Twofold requires (RFC 3579 §3.2, CVE-2024-3596).
        case missingMessageAuthenticator
        /// The Message-Authenticator does not match the HMAC-MD5 of the packet under the shared secret.
        case badMessageAuthenticator
        /// The Response Authenticator does not match MD5(Code+ID+Length+RequestAuth+Attributes+Secret).
        case badResponseAuthenticator
        /// A response carries a different Identifier than the request it claims to answer.
        case identifierMismatch
        /// A User-Password longer than 128 octets cannot be hidden (RFC 2865 §5.2).
        case passwordTooLong
    }

    /// The machine-readable kind of failure.
    public let code: Code
    /// A human explanation for logs.
    public let reason: String

    /// An error of one kind with its explanation.
    /// - Parameters:
    ///   - code: the kind of failure.
    ///   - reason: a human explanation, without secrets.
    public init(_ code: Code, _ reason: String) {
        self.code = code
        self.reason = reason
    }

    /// `RADIUSError.<code>: <reason>`.
    public var description: String { "RADIUSError.\(code): \(reason)" }
}
