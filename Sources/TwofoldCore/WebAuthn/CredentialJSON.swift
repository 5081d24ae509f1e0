/// The WebAuthn Level 3 JSON forms (base64url fields) that `PublicKeyCredential.toJSON()` produces and
/// `PublicKeyCredential.parseCreationOptionsFromJSON` / `parseRequestOptionsFromJSON` read.

/// A `PublicKeyCredential` as `toJSON()` writes it; `Response` is the attestation or the assertion.
public struct PublicKeyCredentialJSON<Response: Codable & Sendable>: Codable, Sendable {
    public var id: String
    public var rawId: String
    public var type: String
    public var response: Response
    public var authenticatorAttachment: String?

    public init(id: String, rawId: String, type: String = "public-key", response: Response, authenticatorAttachment: String? = nil) {
        self.id = id
        self.rawId = rawId
        self.type = type
        self.response = response
        self.authenticatorAttachment = authenticatorAttachment
    }
}

/// The answer to `navigator.credentials.create()` (`AuthenticatorAttestationResponseJSON`).
public struct AttestationResponseJSON: Codable, Sendable {
    public var clientDataJSON: String
    public var attestationObject: String
    public var transports: [String]?

    public init(clientDataJSON: String, attestationObject: String, transports: [String]? = nil) {
        self.clientDataJSON = clientDataJSON
        self.attestationObject = attestationObject
        self.transports = transports
    }
}

/// The answer to `navigator.credentials.get()` (`AuthenticatorAssertionResponseJSON`).
public struct AssertionResponseJSON: Codable, Sendable {
    public var clientDataJSON: String
    public var authenticatorData: String
    public var signature: String
    public var userHandle: String?

    public init(clientDataJSON: String, authenticatorData: String, signature: String, userHandle: String? = nil) {
        self.clientDataJSON = clientDataJSON
        self.authenticatorData = authenticatorData
        self.signature = signature
        self.userHandle = userHandle
    }
}

/// `RegistrationResponseJSON`.
public typealias RegistrationResponseJSON = PublicKeyCredentialJSON<AttestationResponseJSON>
/// `AuthenticationResponseJSON`.
public typealias AuthenticationResponseJSON = PublicKeyCredentialJSON<AssertionResponseJSON>

/// A credential the browser may use or must not re-register.
public struct CredentialDescriptorJSON: Codable, Sendable, Equatable {
    public var type = "public-key"
    public var id: String
    public var transports: [String]?

    public init(id: String, transports: [String]?) {
        self.id = id
        self.transports = transports?.isEmpty == true ? nil : transports
    }
}

/// `PublicKeyCredentialCreationOptionsJSON`.
public struct CreationOptionsJSON: Codable, Sendable {
    public struct RelyingPartyEntity: Codable, Sendable {
        public var id: String
        public var name: String
    }
    public struct UserEntity: Codable, Sendable {
        public var id: String
        public var name: String
        public var displayName: String
    }
    public struct Parameter: Codable, Sendable {
        public var type = "public-key"
        public var alg: Int64
    }
    public struct Selection: Codable, Sendable {
        public var residentKey: String
        public var requireResidentKey: Bool
        public var userVerification: String
    }
    public struct Extensions: Codable, Sendable { public var credProps = true }

    public var rp: RelyingPartyEntity
    public var user: UserEntity
    public var challenge: String
    public var pubKeyCredParams: [Parameter]
    public var timeout: Int
    public var excludeCredentials: [CredentialDescriptorJSON]
    public var authenticatorSelection: Selection
    public var attestation: String
    public var extensions = Extensions()
}

/// `PublicKeyCredentialRequestOptionsJSON`.
public struct RequestOptionsJSON: Codable, Sendable {
    public var challenge: String
    public var timeout: Int
    public var rpId: String
    public var allowCredentials: [CredentialDescriptorJSON]
    public var userVerification: String
}
