/// Why a WebAuthn ceremony was refused. Every message says what was wrong in words an administrator can act on;
/// none of them echoes secret material.
public enum WebAuthnError: Error, Equatable, CustomStringConvertible {
    case malformed(String)
    case wrongCeremony(expected: String, received: String)
    case challengeMismatch
    case originNotAllowed(String)
    case crossOriginRefused
    case relyingPartyMismatch
    case userNotPresent
    case userNotVerified
    case invalidBackupFlags
    case credentialIDMismatch
    case unsupportedAttestation(String)
    case invalidAttestation(String)
    case untrustedAttestation
    case invalidSignature
    case signCountRegressed(stored: UInt32, received: UInt32)

    public var description: String {
        switch self {
        case .malformed(let what): "The credential is malformed: \(what)."
        case .wrongCeremony(let expected, let received): "The browser answered a \(received) ceremony where \(expected) was expected."
        case .challengeMismatch: "The credential answers a different challenge; start again."
        case .originNotAllowed(let origin): "The page origin \(origin) is not one of Twofold's configured origins (TWOFOLD_ORIGINS)."
        case .crossOriginRefused: "The credential was created inside a cross-origin frame, which Twofold does not accept."
        case .relyingPartyMismatch: "The credential belongs to a different site (relying party id)."
        case .userNotPresent: "The authenticator did not confirm that a person was present."
        case .userNotVerified: "The authenticator did not verify the user (PIN or biometric), which is required here."
        case .invalidBackupFlags: "The authenticator says the credential is backed up but not backup-eligible."
        case .credentialIDMismatch: "The credential id does not match the authenticator data."
        case .unsupportedAttestation(let format):
            "Attestation format \(format) is not supported; Twofold accepts none, packed and fido-u2f."
        case .invalidAttestation(let why): "The attestation is not valid: \(why)."
        case .untrustedAttestation:
            "The authenticator's attestation does not chain to a trusted certificate (TWOFOLD_WEBAUTHN_TRUST_ANCHORS)."
        case .invalidSignature: "The authenticator's signature does not verify."
        case .signCountRegressed(let stored, let received):
            "The signature counter went from \(stored) to \(received); the authenticator may have been cloned."
        }
    }
}
