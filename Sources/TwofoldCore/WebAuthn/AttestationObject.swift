import Crypto
import Foundation
import SwiftASN1
import X509

/// How strongly an attestation vouches for the authenticator.
public enum AttestationType: String, Sendable, Equatable {
    /// No statement (`none`): the credential is trusted on first use.
    case none
    /// Signed with the credential's own key (`packed` without certificates).
    case selfAttestation = "self"
    /// Signed by an attestation certificate (`packed` with x5c, `fido-u2f`).
    case basic
}

/// The attestation object returned by `navigator.credentials.create()` (WebAuthn §6.5): format, statement and
/// authenticator data.
public struct AttestationObject: Sendable {
    public var format: String
    public var statement: CBORValue
    public var rawAuthenticatorData: [UInt8]
    public var authenticatorData: AuthenticatorData

    /// OID of the FIDO extension that carries an attestation certificate's AAGUID.
    static let aaguidExtensionOID: ASN1ObjectIdentifier = [1, 3, 6, 1, 4, 1, 45724, 1, 1, 4]

    public init(_ bytes: [UInt8]) throws {
        let value: CBORValue
        do { value = try CBORDecoder().decode(bytes) } catch let error as CBORError {
            throw WebAuthnError.malformed("the attestation object: \(error.description)")
        }
        guard case .text(let format)? = value["fmt"] else { throw WebAuthnError.malformed("the attestation object has no format (fmt)") }
        guard let statement = value["attStmt"], case .map = statement else {
            throw WebAuthnError.malformed("the attestation object has no statement (attStmt)")
        }
        guard case .bytes(let authData)? = value["authData"] else {
            throw WebAuthnError.malformed("the attestation object has no authenticator data")
        }
        self.format = format
        self.statement = statement
        self.rawAuthenticatorData = authData
        self.authenticatorData = try AuthenticatorData(authData)
        guard authenticatorData.attestedCredential != nil else {
            throw WebAuthnError.malformed("the authenticator data carries no new credential")
        }
    }

    /// Verifies the attestation statement over `authenticatorData ‖ clientDataHash`.
    /// - Parameter trustAnchors: when not empty, only attestations that chain to one of these roots are accepted.
    public func verifyStatement(clientDataHash: [UInt8], trustAnchors: [Certificate], now: Date) async throws -> AttestationType {
        let type: AttestationType
        var chain: [Certificate] = []
        switch format {
        case "none":
            guard case .map(let entries) = statement, entries.isEmpty else {
                throw WebAuthnError.invalidAttestation("a none statement must be empty")
            }
            type = .none
        case "packed":
            (type, chain) = try verifyPacked(clientDataHash: clientDataHash)
        case "fido-u2f":
            chain = try verifyFIDOU2F(clientDataHash: clientDataHash)
            type = .basic
        default:
            throw WebAuthnError.unsupportedAttestation(String(format.prefix(40)))
        }
        if !trustAnchors.isEmpty {
            guard let leaf = chain.first else { throw WebAuthnError.untrustedAttestation }
            var verifier = Verifier(rootCertificates: CertificateStore(trustAnchors)) { RFC5280Policy(fixedValidationTime: now) }
            guard case .validCertificate = await verifier.validate(leaf: leaf, intermediates: CertificateStore(chain.dropFirst())) else {
                throw WebAuthnError.untrustedAttestation
            }
        }
        return type
    }

    private func signature() throws -> [UInt8] {
        guard case .bytes(let signature)? = statement["sig"], !signature.isEmpty else {
            throw WebAuthnError.invalidAttestation("the statement has no signature")
        }
        return signature
    }

    private func certificates() throws -> [Certificate]? {
        guard let x5c = statement["x5c"] else { return nil }
        guard case .array(let items) = x5c, !items.isEmpty, items.count <= 8 else {
            throw WebAuthnError.invalidAttestation("x5c must list one to eight certificates")
        }
        return try items.map { item in
            guard case .bytes(let der) = item else { throw WebAuthnError.invalidAttestation("an x5c entry is not a certificate") }
            do { return try Certificate(derEncoded: der) } catch {
                throw WebAuthnError.invalidAttestation("an x5c certificate cannot be parsed")
            }
        }
    }

    /// `packed` (WebAuthn §8.2): with x5c a certificate signs; without, the credential signs itself.
    private func verifyPacked(clientDataHash: [UInt8]) throws -> (AttestationType, [Certificate]) {
        guard let algorithm = statement["alg"]?.integer else {
            throw WebAuthnError.invalidAttestation("the packed statement has no algorithm")
        }
        let signature = try signature()
        let data = rawAuthenticatorData + clientDataHash
        let credential = authenticatorData.attestedCredential!
        guard let chain = try certificates() else {
            guard algorithm == credential.publicKey.algorithm else {
                throw WebAuthnError.invalidAttestation("the self-attestation algorithm differs from the credential's")
            }
            guard credential.publicKey.isValidSignature(signature, for: data) else { throw WebAuthnError.invalidSignature }
            return (.selfAttestation, [])
        }
        let leaf = chain[0]
        guard let signatureAlgorithm = Self.certificateAlgorithm(algorithm) else {
            throw WebAuthnError.invalidAttestation("algorithm \(algorithm) is not supported")
        }
        guard leaf.publicKey.isValidSignature(signature, for: data, signatureAlgorithm: signatureAlgorithm) else {
            throw WebAuthnError.invalidSignature
        }
        try Self.checkPackedCertificate(leaf, aaguid: credential.aaguid)
        return (.basic, chain)
    }

    /// The attestation certificate requirements of WebAuthn §8.2.1.
    static func checkPackedCertificate(_ certificate: Certificate, aaguid: [UInt8]) throws {
        guard certificate.version == .v3 else {
            throw WebAuthnError.invalidAttestation("the attestation certificate is not X.509 version 3")
        }
        let units = certificate.subject.flatMap { $0 }.filter { $0.type == .RDNAttributeType.organizationalUnitName }.compactMap {
            String($0.value)
        }
        guard units.contains("Authenticator Attestation") else {
            throw WebAuthnError.invalidAttestation("the certificate subject lacks OU=Authenticator Attestation")
        }
        guard case .notCertificateAuthority? = try? certificate.extensions.basicConstraints else {
            throw WebAuthnError.invalidAttestation("the attestation certificate must be marked as not a certificate authority")
        }
        if let aaguidExtension = certificate.extensions[oid: aaguidExtensionOID] {
            guard !aaguidExtension.critical else { throw WebAuthnError.invalidAttestation("the AAGUID extension must not be critical") }
            guard Array(aaguidExtension.value) == [0x04, 0x10] + aaguid else {
                throw WebAuthnError.invalidAttestation("the certificate's AAGUID differs from the authenticator's")
            }
        }
    }

    /// `fido-u2f` (WebAuthn §8.6): one P-256 certificate signs 0x00 ‖ rpIdHash ‖ clientDataHash ‖ credentialId ‖ publicKey.
    private func verifyFIDOU2F(clientDataHash: [UInt8]) throws -> [Certificate] {
        guard let chain = try certificates(), chain.count == 1 else {
            throw WebAuthnError.invalidAttestation("fido-u2f needs exactly one certificate")
        }
        guard P256.Signing.PublicKey(chain[0].publicKey) != nil else {
            throw WebAuthnError.invalidAttestation("the fido-u2f certificate key is not P-256")
        }
        let credential = authenticatorData.attestedCredential!
        guard case .es256(let key) = credential.publicKey else {
            throw WebAuthnError.invalidAttestation("a fido-u2f credential must be a P-256 key")
        }
        let data = [0x00] + authenticatorData.rpIDHash + clientDataHash + credential.credentialID + Array(key.x963Representation)
        guard chain[0].publicKey.isValidSignature(try signature(), for: data, signatureAlgorithm: .ecdsaWithSHA256) else {
            throw WebAuthnError.invalidSignature
        }
        return chain
    }

    static func certificateAlgorithm(_ algorithm: Int64) -> Certificate.SignatureAlgorithm? {
        switch algorithm {
        case COSEKey.es256Algorithm: .ecdsaWithSHA256
        case COSEKey.edDSAAlgorithm: .ed25519
        case COSEKey.rs256Algorithm: .sha256WithRSAEncryption
        default: nil
        }
    }
}
