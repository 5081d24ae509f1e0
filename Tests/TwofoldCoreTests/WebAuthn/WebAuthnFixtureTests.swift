import Foundation
import Testing

@testable import TwofoldCore

@Suite("WebAuthn: recorded ceremonies verify")
struct WebAuthnFixtureTests {
    @Test func everyRecordedCeremonyIsPresent() {
        #expect(WebAuthnFixture.all.count >= 10)
        let formats = Set(WebAuthnFixture.all.map(\.expected.format))
        #expect(formats == ["none", "packed", "fido-u2f"])
        #expect(Set(WebAuthnFixture.all.map(\.expected.algorithm)) == [-7, -8, -257])
    }

    @Test(arguments: WebAuthnFixture.all.map(\.name))
    func registrationAndSignInsVerify(name: String) async throws {
        let fixture = WebAuthnFixture.named(name)
        let party = RelyingParty(id: fixture.rpId, name: "Twofold tests", origins: [fixture.origin], trustAnchors: fixture.anchors)
        let key = try await fixture.register(with: party)
        #expect(Base64URL.encode(key.credentialID) == fixture.expected.credentialId)
        #expect(key.attestationFormat == fixture.expected.format)
        #expect(key.attestationType.rawValue == fixture.expected.attestation)
        #expect(key.algorithm == fixture.expected.algorithm)
        #expect(key.signCount == fixture.expected.signCount)
        #expect(key.aaguid == fixture.expected.aaguid)
        #expect(key.userVerified == fixture.expected.userVerified)
        #expect(key.backupEligible == fixture.expected.backupEligible)
        #expect(key.backedUp == fixture.expected.backupState)
        for (index, step) in fixture.authentications.enumerated() {
            let result = try fixture.authenticate(index, key: key)
            #expect(result.signCount == step.expectedSignCount)
            #expect(result.userVerified == step.userVerified)
            #expect(!result.signCountRegressed)
        }
    }

    @Test func trustAnchorsAcceptOnlyChainedAttestations() async throws {
        let chained = WebAuthnFixture.named("fido2-packed-x5c-es256")
        let anchors = chained.anchors
        #expect(anchors.count == 1)
        for name in ["chromium-none-es256", "chromium-packed-es256", "fido2-packed-self-es256", "fido2-fido-u2f"] {
            let fixture = WebAuthnFixture.named(name)
            var party = fixture.party
            party.trustAnchors = anchors
            await #expect(throws: WebAuthnError.untrustedAttestation) { try await fixture.register(with: party) }
        }
        var party = chained.party
        party.trustAnchors = anchors
        #expect(try await chained.register(with: party).attestationType == .basic)
        // An expired validation time is refused too.
        await #expect(throws: WebAuthnError.untrustedAttestation) {
            try await party.verifyRegistration(
                chained.registration.credential, challenge: chained.challenge(chained.registration.challenge),
                requireUserVerification: true, now: Date(timeIntervalSince1970: 4_000_000_000))
        }
    }

    @Test func trustAnchorsAreReadFromPEM() throws {
        let der = try #require(WebAuthnFixture.named("fido2-packed-x5c-es256").trustAnchors?.first)
        var lines = ["-----BEGIN CERTIFICATE-----"]
        var rest = Substring(der)
        while !rest.isEmpty {
            lines.append(String(rest.prefix(64)))
            rest = rest.dropFirst(64)
        }
        lines.append("-----END CERTIFICATE-----")
        let pem = lines.joined(separator: "\n")
        let certificates = try RelyingParty.certificates(pem: pem + "\n" + pem + "\n")
        #expect(certificates.count == 2)
        #expect(certificates[0] == WebAuthnFixture.named("fido2-packed-x5c-es256").anchors[0])
    }

    @Test func creationOptionsUseTheJSONForms() throws {
        let party = RelyingParty(id: "localhost", name: "Clinic", origins: ["http://localhost:8080"])
        let options = party.creationOptions(
            challenge: SecureRandom.bytes(32), userHandle: Array(repeating: 7, count: 16), userName: "alice",
            displayName: "Alice Smith", excluding: [CredentialDescriptorJSON(id: "AAEC", transports: ["usb"])],
            residentKey: .preferred, userVerification: "preferred")
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(options)) as? [String: Any] ?? [:]
        #expect((json["challenge"] as? String)?.count == 43)
        #expect((json["rp"] as? [String: String])?["id"] == "localhost")
        #expect((json["user"] as? [String: String])?["id"] == Base64URL.encode(Array(repeating: UInt8(7), count: 16)))
        #expect((json["pubKeyCredParams"] as? [[String: Any]])?.compactMap { $0["alg"] as? Int } == [-7, -8, -257])
        #expect(json["attestation"] as? String == "none")
        #expect(((json["excludeCredentials"] as? [[String: Any]])?.first?["type"] as? String) == "public-key")
        let request = party.requestOptions(challenge: SecureRandom.bytes(32), allowing: [], userVerification: "required")
        #expect(request.rpId == "localhost" && request.allowCredentials.isEmpty && request.timeout == 300_000)
    }

    @Test func relyingPartySettingsAreChecked() throws {
        let good = try RelyingParty.validated(
            id: "2FA.Example-Clinic.org", origins: ["https://2fa.example-clinic.org/", "https://ehr.2fa.example-clinic.org:8443"], name: "T"
        )
        #expect(good.id == "2fa.example-clinic.org")
        #expect(good.origins == ["https://2fa.example-clinic.org", "https://ehr.2fa.example-clinic.org:8443"])
        #expect(
            try RelyingParty.validated(id: "localhost", origins: ["http://localhost:8080"], name: "T").origins == ["http://localhost:8080"])
        #expect(throws: RelyingParty.ConfigurationProblem.self) {
            try RelyingParty.validated(id: "127.0.0.1", origins: ["http://127.0.0.1:8080"], name: "T")
        }
        #expect(throws: RelyingParty.ConfigurationProblem.self) {
            try RelyingParty.validated(id: "https://clinic.org", origins: [], name: "T")
        }
        #expect(throws: RelyingParty.ConfigurationProblem.self) {
            try RelyingParty.validated(id: "clinic.org", origins: ["https://evil.org"], name: "T")
        }
        #expect(throws: RelyingParty.ConfigurationProblem.self) {
            try RelyingParty.validated(id: "clinic.org", origins: ["http://clinic.org"], name: "T")
        }
        #expect(throws: RelyingParty.ConfigurationProblem.self) {
            try RelyingParty.validated(id: "clinic.org", origins: ["https://clinic.org/login"], name: "T")
        }
        #expect(throws: RelyingParty.ConfigurationProblem.self) { try RelyingParty.certificates(pem: "not a certificate") }
    }
}
