import Crypto
import Foundation
import SwiftASN1
import X509

/// Twofold as a WebAuthn relying party: builds ceremony options and verifies what the browser returns
/// (WebAuthn Level 3 §7.1 registration and §7.2 authentication).
public struct RelyingParty: Sendable {
    public var id: String
    public var name: String
    public var origins: [String]
    /// Roots that attestation certificates must chain to; empty accepts any authenticator (none/self attestation too).
    public var trustAnchors: [Certificate]

    /// How long the browser is asked to wait for the authenticator; a challenge stays answerable for
    /// ``TwofoldPolicy/Passkeys/challengeLifetime`` (the server's policy), and is used once.
    public static let timeoutMilliseconds = 300_000
    public static let challengeLength = 32
    /// ES256, EdDSA and RS256, in order of preference.
    public static let supportedAlgorithms: [Int64] = [COSEKey.es256Algorithm, COSEKey.edDSAAlgorithm, COSEKey.rs256Algorithm]

    public init(id: String, name: String, origins: [String], trustAnchors: [Certificate] = []) {
        self.id = id
        self.name = name
        self.origins = origins
        self.trustAnchors = trustAnchors
    }

    // MARK: options

    public enum Discoverable: Sendable { case preferred, required }

    public func creationOptions(
        challenge: [UInt8], userHandle: [UInt8], userName: String, displayName: String,
        excluding: [CredentialDescriptorJSON], residentKey: Discoverable, userVerification: String
    ) -> CreationOptionsJSON {
        CreationOptionsJSON(
            rp: .init(id: id, name: name),
            user: .init(id: Base64URL.encode(userHandle), name: userName, displayName: displayName),
            challenge: Base64URL.encode(challenge),
            pubKeyCredParams: Self.supportedAlgorithms.map { .init(alg: $0) },
            timeout: Self.timeoutMilliseconds,
            excludeCredentials: excluding,
            authenticatorSelection: .init(
                residentKey: residentKey == .required ? "required" : "preferred",
                requireResidentKey: residentKey == .required, userVerification: userVerification),
            attestation: trustAnchors.isEmpty ? "none" : "direct")
    }

    public func requestOptions(challenge: [UInt8], allowing: [CredentialDescriptorJSON], userVerification: String) -> RequestOptionsJSON {
        RequestOptionsJSON(
            challenge: Base64URL.encode(challenge), timeout: Self.timeoutMilliseconds, rpId: id,
            allowCredentials: allowing, userVerification: userVerification)
    }

    // MARK: registration

    public struct RegisteredCredential: Sendable {
        public var credentialID: [UInt8]
        /// The COSE public key, as the authenticator encoded it.
        public var publicKey: [UInt8]
        public var algorithm: Int64
        public var signCount: UInt32
        public var aaguid: String
        public var transports: [String]
        public var userVerified: Bool
        public var backupEligible: Bool
        public var backedUp: Bool
        public var attestationFormat: String
        public var attestationType: AttestationType
    }

    /// Verifies a new credential against the challenge the server issued for it.
    public func verifyRegistration(
        _ credential: RegistrationResponseJSON, challenge: [UInt8], requireUserVerification: Bool,
        now: Date = Date()
    ) async throws -> RegisteredCredential {
        guard credential.type == "public-key" else { throw WebAuthnError.malformed("type must be public-key") }
        let rawID = try Self.bytes(credential.rawId, "rawId", limit: AuthenticatorData.maximumCredentialIDLength)
        guard try Self.bytes(credential.id, "id", limit: AuthenticatorData.maximumCredentialIDLength) == rawID else {
            throw WebAuthnError.credentialIDMismatch
        }
        let clientDataBytes = try Self.bytes(credential.response.clientDataJSON, "clientDataJSON", limit: CollectedClientData.maximumLength)
        try CollectedClientData.parse(clientDataBytes).verify(type: "webauthn.create", challenge: challenge, origins: origins)
        let attestation = try AttestationObject(try Self.bytes(credential.response.attestationObject, "attestationObject", limit: 16_384))
        let data = attestation.authenticatorData
        try data.verify(rpID: id, requireUserVerification: requireUserVerification)
        let attested = data.attestedCredential!
        guard attested.credentialID == rawID else { throw WebAuthnError.credentialIDMismatch }
        let type = try await attestation.verifyStatement(
            clientDataHash: Array(SHA256.hash(data: clientDataBytes)), trustAnchors: trustAnchors, now: now)
        let transports = (credential.response.transports ?? []).filter { Self.knownTransports.contains($0) }
        return RegisteredCredential(
            credentialID: rawID, publicKey: attested.publicKeyBytes, algorithm: attested.publicKey.algorithm, signCount: data.signCount,
            aaguid: AuthenticatorData.uuidString(attested.aaguid), transports: transports,
            userVerified: data.flags.contains(.userVerified), backupEligible: data.flags.contains(.backupEligible),
            backedUp: data.flags.contains(.backedUp), attestationFormat: attestation.format, attestationType: type)
    }

    static let knownTransports: Set<String> = ["usb", "nfc", "ble", "internal", "hybrid", "smart-card"]

    // MARK: authentication

    public struct VerifiedAssertion: Sendable {
        public var signCount: UInt32
        public var userVerified: Bool
        public var backedUp: Bool
        /// True when the counter did not grow although the authenticator keeps one: a possible clone.
        public var signCountRegressed: Bool
    }

    /// The credential the browser says it used, to find the stored key (the rest is checked by ``verifyAuthentication``).
    public static func credentialID(of assertion: AuthenticationResponseJSON) throws -> [UInt8] {
        try bytes(assertion.rawId, "rawId", limit: AuthenticatorData.maximumCredentialIDLength)
    }

    /// The challenge a browser response answers, to find the server's record of it. Nothing is verified yet.
    public static func challenge(inClientData clientDataJSON: String) throws -> [UInt8] {
        let clientData = try CollectedClientData.parse(
            try bytes(clientDataJSON, "clientDataJSON", limit: CollectedClientData.maximumLength))
        guard let challenge = try? Base64URL.decode(clientData.challenge), !challenge.isEmpty else {
            throw WebAuthnError.malformed("the challenge is not base64url")
        }
        return challenge
    }

    /// Verifies an assertion made with a stored credential.
    public func verifyAuthentication(
        _ assertion: AuthenticationResponseJSON, challenge: [UInt8], credentialID: [UInt8], publicKey: [UInt8],
        storedSignCount: UInt32, requireUserVerification: Bool
    ) throws -> VerifiedAssertion {
        guard assertion.type == "public-key" else { throw WebAuthnError.malformed("type must be public-key") }
        let rawID = try Self.credentialID(of: assertion)
        guard rawID == credentialID, try Self.bytes(assertion.id, "id", limit: AuthenticatorData.maximumCredentialIDLength) == rawID else {
            throw WebAuthnError.credentialIDMismatch
        }
        let clientDataBytes = try Self.bytes(assertion.response.clientDataJSON, "clientDataJSON", limit: CollectedClientData.maximumLength)
        try CollectedClientData.parse(clientDataBytes).verify(type: "webauthn.get", challenge: challenge, origins: origins)
        let rawData = try Self.bytes(assertion.response.authenticatorData, "authenticatorData", limit: 4_096)
        let data = try AuthenticatorData(rawData)
        try data.verify(rpID: id, requireUserVerification: requireUserVerification)
        let key: COSEKey
        do { key = try COSEKey(try CBORDecoder().decode(publicKey)) } catch {
            throw WebAuthnError.malformed("the stored public key cannot be read")
        }
        let signature = try Self.bytes(assertion.response.signature, "signature", limit: 1_024)
        guard key.isValidSignature(signature, for: rawData + Array(SHA256.hash(data: clientDataBytes))) else {
            throw WebAuthnError.invalidSignature
        }
        let regressed = (storedSignCount != 0 || data.signCount != 0) && data.signCount <= storedSignCount
        return VerifiedAssertion(
            signCount: data.signCount, userVerified: data.flags.contains(.userVerified),
            backedUp: data.flags.contains(.backedUp), signCountRegressed: regressed)
    }

    static func bytes(_ text: String, _ field: String, limit: Int) throws -> [UInt8] {
        guard text.utf8.count <= (limit * 4 + 2) / 3 + 4, let bytes = try? Base64URL.decode(text), !bytes.isEmpty, bytes.count <= limit
        else {
            throw WebAuthnError.malformed("\(field) is not base64url of at most \(limit) bytes")
        }
        return bytes
    }
}

extension RelyingParty {
    public enum ConfigurationProblem: Error, Equatable, CustomStringConvertible {
        case invalidID(String)
        case invalidOrigin(String)
        case trustAnchors(String)

        public var description: String {
            switch self {
            case .invalidID(let id):
                "TWOFOLD_RP_ID must be a domain name such as 2fa.example-clinic.org or localhost, not an address or URL (got \(id))"
            case .invalidOrigin(let origin):
                "TWOFOLD_ORIGINS entries must be https://host[:port] (http:// only for localhost) on the relying-party domain (got \(origin))"
            case .trustAnchors(let why): "TWOFOLD_WEBAUTHN_TRUST_ANCHORS: \(why)"
            }
        }
    }

    /// Checks a relying-party id and origins the way browsers will: the id is a registrable domain (never an IP
    /// address) and every origin's host is that domain or below it.
    public static func validated(id rawID: String, origins rawOrigins: [String], name: String) throws -> RelyingParty {
        let id = rawID.lowercased()
        let labels = id.split(separator: ".", omittingEmptySubsequences: false)
        guard !id.isEmpty, id.count <= 253, labels.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" } }),
            !labels.allSatisfy({ $0.allSatisfy(\.isNumber) })
        else { throw ConfigurationProblem.invalidID(rawID) }
        var origins: [String] = []
        for raw in rawOrigins {
            let origin = raw.hasSuffix("/") ? String(raw.dropLast()) : raw
            guard let url = URL(string: origin), let scheme = url.scheme?.lowercased(), let host = url.host?.lowercased(),
                url.path.isEmpty, url.query == nil, host == id || host.hasSuffix("." + id),
                scheme == "https" || (scheme == "http" && (host == "localhost" || host.hasSuffix(".localhost")))
            else { throw ConfigurationProblem.invalidOrigin(raw) }
            origins.append(url.port.map { "\(scheme)://\(host):\($0)" } ?? "\(scheme)://\(host)")
        }
        return RelyingParty(id: id, name: name, origins: origins)
    }

    /// Reads every certificate in a PEM file's text.
    public static func certificates(pem: String) throws -> [Certificate] {
        let documents: [PEMDocument]
        do { documents = try PEMDocument.parseMultiple(pemString: pem) } catch {
            throw ConfigurationProblem.trustAnchors("the file is not PEM")
        }
        let certificates = try documents.map { document in
            do { return try Certificate(pemDocument: document) } catch {
                throw ConfigurationProblem.trustAnchors("a PEM block is not a certificate")
            }
        }
        guard !certificates.isEmpty else { throw ConfigurationProblem.trustAnchors("the file holds no certificate") }
        return certificates
    }
}
