import Crypto
import Foundation

/// The authenticator's signed statement (WebAuthn §6.1): which site, what the user did, the signature counter and,
/// at registration, the new credential.
public struct AuthenticatorData: Sendable {
    public struct Flags: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let userPresent = Flags(rawValue: 0x01)
        public static let userVerified = Flags(rawValue: 0x04)
        public static let backupEligible = Flags(rawValue: 0x08)
        public static let backedUp = Flags(rawValue: 0x10)
        public static let attestedCredentialData = Flags(rawValue: 0x40)
        public static let extensionData = Flags(rawValue: 0x80)
    }

    public struct AttestedCredential: Sendable {
        public var aaguid: [UInt8]
        public var credentialID: [UInt8]
        /// The COSE key exactly as the authenticator encoded it (stored, and parsed again when used).
        public var publicKeyBytes: [UInt8]
        public var publicKey: COSEKey
    }

    public var rpIDHash: [UInt8]
    public var flags: Flags
    public var signCount: UInt32
    public var attestedCredential: AttestedCredential?
    public var extensions: CBORValue?

    /// Credential ids longer than this are refused (WebAuthn §5.4.3 caps them at 1023 bytes).
    public static let maximumCredentialIDLength = 1_023

    public init(_ bytes: [UInt8]) throws {
        guard bytes.count >= 37 else { throw WebAuthnError.malformed("authenticator data is shorter than 37 bytes") }
        rpIDHash = Array(bytes[0..<32])
        flags = Flags(rawValue: bytes[32])
        signCount = bytes[33..<37].reduce(0) { $0 << 8 | UInt32($1) }
        var offset = 37
        let decoder = CBORDecoder()
        if flags.contains(.attestedCredentialData) {
            guard bytes.count >= offset + 18 else { throw WebAuthnError.malformed("the attested credential data is truncated") }
            let aaguid = Array(bytes[offset..<offset + 16])
            let idLength = Int(bytes[offset + 16]) << 8 | Int(bytes[offset + 17])
            offset += 18
            guard idLength > 0, idLength <= Self.maximumCredentialIDLength else {
                throw WebAuthnError.malformed("the credential id length \(idLength) is out of range")
            }
            guard bytes.count >= offset + idLength else { throw WebAuthnError.malformed("the credential id is truncated") }
            let credentialID = Array(bytes[offset..<offset + idLength])
            offset += idLength
            let key: (value: CBORValue, length: Int)
            do { key = try decoder.decodePrefix(bytes[offset...]) } catch let error as CBORError {
                throw WebAuthnError.malformed("the credential public key: \(error.description)")
            }
            let keyBytes = Array(bytes[offset..<offset + key.length])
            offset += key.length
            let publicKey: COSEKey
            do { publicKey = try COSEKey(key.value) } catch let error as COSEKey.Failure {
                throw WebAuthnError.malformed(error.description)
            }
            attestedCredential = AttestedCredential(
                aaguid: aaguid, credentialID: credentialID, publicKeyBytes: keyBytes, publicKey: publicKey)
        }
        if flags.contains(.extensionData) {
            guard offset < bytes.count else { throw WebAuthnError.malformed("the extension data is missing") }
            do {
                let decoded = try decoder.decodePrefix(bytes[offset...])
                guard case .map = decoded.value else { throw WebAuthnError.malformed("the extension data is not a map") }
                extensions = decoded.value
                offset += decoded.length
            } catch let error as CBORError { throw WebAuthnError.malformed("the extension data: \(error.description)") }
        }
        guard offset == bytes.count else {
            throw WebAuthnError.malformed("\(bytes.count - offset) unexpected bytes follow the authenticator data")
        }
    }

    /// The AAGUID as a lowercase UUID string ("00000000-0000-0000-0000-000000000000" for authenticators that hide it).
    public static func uuidString(_ aaguid: [UInt8]) -> String {
        guard aaguid.count == 16 else { return "" }
        return UUID(
            uuid: (
                aaguid[0], aaguid[1], aaguid[2], aaguid[3], aaguid[4], aaguid[5], aaguid[6], aaguid[7],
                aaguid[8], aaguid[9], aaguid[10], aaguid[11], aaguid[12], aaguid[13], aaguid[14], aaguid[15]
            )
        )
        .uuidString.lowercased()
    }

    /// Checks the relying-party hash and the user-presence, user-verification and backup flags.
    func verify(rpID: String, requireUserVerification: Bool) throws {
        guard ConstantTime.equals(rpIDHash, Array(SHA256.hash(data: Array(rpID.utf8)))) else { throw WebAuthnError.relyingPartyMismatch }
        guard flags.contains(.userPresent) else { throw WebAuthnError.userNotPresent }
        guard !requireUserVerification || flags.contains(.userVerified) else { throw WebAuthnError.userNotVerified }
        guard flags.contains(.backupEligible) || !flags.contains(.backedUp) else { throw WebAuthnError.invalidBackupFlags }
    }
}
