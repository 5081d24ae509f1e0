import Foundation
import X509

@testable import TwofoldCore

/// A recorded ceremony (Tests/TwofoldCoreTests/Fixtures/WebAuthn, made by Tests/e2e/webauthn_fixtures/make_fixtures.py
/// with Chromium's virtual authenticator and python-fido2, and checked there with py_webauthn and fido2).
struct WebAuthnFixture: Decodable {
    struct Registration: Decodable {
        var challenge: String
        var requireUserVerification: Bool
        var credential: RegistrationResponseJSON
    }

    struct Expected: Decodable {
        var format: String
        var attestation: String
        var algorithm: Int64
        var credentialId: String
        var signCount: UInt32
        var aaguid: String
        var userVerified: Bool
        var backupEligible: Bool
        var backupState: Bool
    }

    struct Authentication: Decodable {
        var challenge: String
        var requireUserVerification: Bool
        var credential: AuthenticationResponseJSON
        var expectedSignCount: UInt32
        var userVerified: Bool
    }

    var name: String
    var rpId: String
    var origin: String
    var registration: Registration
    var expected: Expected
    var authentications: [Authentication]
    var trustAnchors: [String]?

    static let all: [WebAuthnFixture] = {
        guard let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)?.appendingPathComponent("WebAuthn"),
            let files = try? FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
        else { return [] }
        return files.filter { $0.pathExtension == "json" }.sorted { $0.lastPathComponent < $1.lastPathComponent }.compactMap { url in
            try? JSONDecoder().decode(WebAuthnFixture.self, from: Data(contentsOf: url))
        }
    }()

    static func named(_ name: String) -> WebAuthnFixture {
        guard let fixture = all.first(where: { $0.name == name }) else { fatalError("missing fixture \(name)") }
        return fixture
    }

    var party: RelyingParty { RelyingParty(id: rpId, name: "Twofold tests", origins: [origin]) }

    var anchors: [Certificate] {
        (trustAnchors ?? []).compactMap { Data(base64Encoded: $0) }.compactMap { try? Certificate(derEncoded: Array($0)) }
    }

    func challenge(_ text: String) -> [UInt8] { (try? Base64URL.decode(text)) ?? [] }

    func register(with party: RelyingParty? = nil, credential: RegistrationResponseJSON? = nil, requireUserVerification: Bool? = nil)
        async throws -> RelyingParty.RegisteredCredential
    {
        try await (party ?? self.party).verifyRegistration(
            credential ?? registration.credential, challenge: challenge(registration.challenge),
            requireUserVerification: requireUserVerification ?? registration.requireUserVerification)
    }

    func authenticate(
        _ index: Int, key: RelyingParty.RegisteredCredential, storedSignCount: UInt32? = nil, party: RelyingParty? = nil,
        assertion: AuthenticationResponseJSON? = nil, challenge text: String? = nil,
        requireUserVerification: Bool? = nil
    ) throws -> RelyingParty.VerifiedAssertion {
        let step = authentications[index]
        return try (party ?? self.party).verifyAuthentication(
            assertion ?? step.credential, challenge: challenge(text ?? step.challenge), credentialID: key.credentialID,
            publicKey: key.publicKey,
            storedSignCount: storedSignCount ?? (index == 0 ? key.signCount : authentications[index - 1].expectedSignCount),
            requireUserVerification: requireUserVerification ?? step.requireUserVerification)
    }
}

/// Byte-level edits of base64url fields, for the failure-path tests.
enum Tamper {
    static func bytes(_ text: String, _ edit: (inout [UInt8]) -> Void) -> String {
        var bytes = (try? Base64URL.decode(text)) ?? []
        edit(&bytes)
        return Base64URL.encode(bytes)
    }

    static func flip(_ text: String, at index: Int) -> String {
        bytes(text) { $0[index < 0 ? $0.count + index : index] ^= 0x01 }
    }

    /// Re-encodes an attestation object after changing its CBOR map.
    static func attestation(_ text: String, _ edit: (inout [(key: CBORValue, value: CBORValue)]) -> Void) -> String {
        guard case .map(var entries)? = try? CBORDecoder().decode((try? Base64URL.decode(text)) ?? []) else { return text }
        edit(&entries)
        return Base64URL.encode(CBORValue.map(entries).encoded)
    }

    static func clientData(_ text: String, _ edit: (inout [String: Any]) -> Void) -> String {
        let data = Data((try? Base64URL.decode(text)) ?? [])
        var object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        edit(&object)
        return Base64URL.encode(Array((try? JSONSerialization.data(withJSONObject: object)) ?? Data()))
    }
}
