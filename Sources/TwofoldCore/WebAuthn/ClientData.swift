import Foundation

/// The browser's `clientDataJSON` (WebAuthn §5.8.1): what the page asked for, and from where.
public struct CollectedClientData: Decodable, Sendable, Equatable {
    public var type: String
    /// base64url of the challenge the server issued.
    public var challenge: String
    public var origin: String
    public var crossOrigin: Bool?
    public var topOrigin: String?

    public static let maximumLength = 4_096

    public static func parse(_ bytes: [UInt8]) throws -> CollectedClientData {
        guard !bytes.isEmpty, bytes.count <= maximumLength else { throw WebAuthnError.malformed("clientDataJSON is empty or too long") }
        do {
            return try JSONDecoder().decode(CollectedClientData.self, from: Data(bytes))
        } catch {
            throw WebAuthnError.malformed("clientDataJSON is not the JSON a browser sends (type, challenge, origin)")
        }
    }

    /// Checks the ceremony type, the challenge (constant time), the origin and that no cross-origin frame was involved.
    func verify(type expectedType: String, challenge expected: [UInt8], origins: [String]) throws {
        guard type == expectedType else { throw WebAuthnError.wrongCeremony(expected: expectedType, received: String(type.prefix(40))) }
        guard let received = try? Base64URL.decode(challenge), ConstantTime.equals(received, expected) else {
            throw WebAuthnError.challengeMismatch
        }
        guard origins.contains(origin) else { throw WebAuthnError.originNotAllowed(String(origin.prefix(200))) }
        guard crossOrigin != true else { throw WebAuthnError.crossOriginRefused }
    }
}
