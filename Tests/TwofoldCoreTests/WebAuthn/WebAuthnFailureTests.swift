import Foundation
import Testing

@testable import TwofoldCore

/// Every verification rule, broken one at a time on otherwise valid recorded ceremonies.
@Suite("WebAuthn: failure paths")
struct WebAuthnFailureTests {
    let passkey = WebAuthnFixture.named("chromium-none-es256")
    let packed = WebAuthnFixture.named("fido2-packed-self-es256")
    let u2f = WebAuthnFixture.named("chromium-u2f")

    @Test func wrongOriginIsRefused() async throws {
        let party = RelyingParty(id: "localhost", name: "T", origins: ["http://localhost:9999"])
        await #expect(throws: WebAuthnError.originNotAllowed(passkey.origin)) { try await passkey.register(with: party) }
        let key = try await passkey.register()
        #expect(throws: WebAuthnError.originNotAllowed(passkey.origin)) { try passkey.authenticate(0, key: key, party: party) }
    }

    @Test func wrongRelyingPartyIsRefused() async throws {
        let party = RelyingParty(id: "example.org", name: "T", origins: [passkey.origin])
        await #expect(throws: WebAuthnError.relyingPartyMismatch) { try await passkey.register(with: party) }
        let key = try await passkey.register()
        #expect(throws: WebAuthnError.relyingPartyMismatch) { try passkey.authenticate(0, key: key, party: party) }
    }

    @Test func anotherChallengeIsRefused() async throws {
        let other = Base64URL.encode(SecureRandom.bytes(32))
        await #expect(throws: WebAuthnError.challengeMismatch) {
            try await passkey.party.verifyRegistration(
                passkey.registration.credential, challenge: passkey.challenge(other), requireUserVerification: true)
        }
        let key = try await passkey.register()
        // Replaying the first sign-in against the second sign-in's challenge.
        #expect(throws: WebAuthnError.challengeMismatch) {
            try passkey.authenticate(0, key: key, challenge: passkey.authentications[1].challenge)
        }
    }

    @Test func tamperedAssertionSignatureIsRefused() async throws {
        for fixture in WebAuthnFixture.all {
            let key = try await fixture.register()
            var assertion = fixture.authentications[0].credential
            assertion.response.signature = Tamper.flip(assertion.response.signature, at: -3)
            #expect(throws: WebAuthnError.invalidSignature, "\(fixture.name)") {
                try fixture.authenticate(0, key: key, assertion: assertion)
            }
            var counter = fixture.authentications[0].credential
            counter.response.authenticatorData = Tamper.flip(counter.response.authenticatorData, at: 36)
            #expect(throws: WebAuthnError.invalidSignature, "\(fixture.name)") {
                try fixture.authenticate(0, key: key, storedSignCount: 0, assertion: counter)
            }
        }
    }

    @Test func tamperedAttestationSignatureIsRefused() async throws {
        for fixture in WebAuthnFixture.all where fixture.expected.format != "none" {
            var credential = fixture.registration.credential
            credential.response.attestationObject = Tamper.attestation(credential.response.attestationObject) { entries in
                guard let index = entries.firstIndex(where: { $0.key == .text("attStmt") }),
                    case .map(var statement) = entries[index].value,
                    let sig = statement.firstIndex(where: { $0.key == .text("sig") }), case .bytes(var bytes) = statement[sig].value
                else { return }
                bytes[bytes.count - 2] ^= 0x01
                statement[sig].value = .bytes(bytes)
                entries[index].value = .map(statement)
            }
            await #expect(throws: WebAuthnError.invalidSignature, "\(fixture.name)") { try await fixture.register(credential: credential) }
        }
    }

    @Test func tamperedRelyingPartyHashInRegistrationIsRefused() async throws {
        var credential = packed.registration.credential
        credential.response.attestationObject = Tamper.attestation(credential.response.attestationObject) { entries in
            guard let index = entries.firstIndex(where: { $0.key == .text("authData") }), case .bytes(var bytes) = entries[index].value
            else { return }
            bytes[0] ^= 0x01
            entries[index].value = .bytes(bytes)
        }
        await #expect(throws: WebAuthnError.relyingPartyMismatch) { try await packed.register(credential: credential) }
    }

    @Test func missingUserVerificationIsRefusedWhenRequired() async throws {
        await #expect(throws: WebAuthnError.userNotVerified) { try await u2f.register(requireUserVerification: true) }
        let key = try await u2f.register()
        #expect(throws: WebAuthnError.userNotVerified) { try u2f.authenticate(0, key: key, requireUserVerification: true) }
        #expect(try u2f.authenticate(0, key: key, requireUserVerification: false).userVerified == false)
    }

    @Test func missingUserPresenceAndInconsistentBackupFlagsAreRefused() async throws {
        let key = try await passkey.register()
        var absent = passkey.authentications[0].credential
        absent.response.authenticatorData = Tamper.bytes(absent.response.authenticatorData) { $0[32] &= ~0x01 }
        #expect(throws: WebAuthnError.userNotPresent) { try passkey.authenticate(0, key: key, assertion: absent) }
        var backedUp = passkey.authentications[0].credential
        backedUp.response.authenticatorData = Tamper.bytes(backedUp.response.authenticatorData) { $0[32] |= 0x10 }
        #expect(throws: WebAuthnError.invalidBackupFlags) { try passkey.authenticate(0, key: key, assertion: backedUp) }
    }

    @Test func wrongCeremonyTypeAndCrossOriginFramesAreRefused() async throws {
        let key = try await passkey.register()
        var swapped = passkey.authentications[0].credential
        swapped.response.clientDataJSON = passkey.registration.credential.response.clientDataJSON
        #expect(throws: WebAuthnError.wrongCeremony(expected: "webauthn.get", received: "webauthn.create")) {
            try passkey.authenticate(0, key: key, assertion: swapped)
        }
        var framed = passkey.registration.credential
        framed.response.clientDataJSON = Tamper.clientData(framed.response.clientDataJSON) { $0["crossOrigin"] = true }
        await #expect(throws: WebAuthnError.crossOriginRefused) { try await passkey.register(credential: framed) }
    }

    @Test func credentialIDsMustAgree() async throws {
        let key = try await passkey.register()
        var other = key
        other.credentialID = SecureRandom.bytes(32)
        #expect(throws: WebAuthnError.credentialIDMismatch) { try passkey.authenticate(0, key: other) }
        var renamed = passkey.registration.credential
        renamed.id = Base64URL.encode(SecureRandom.bytes(32))
        renamed.rawId = renamed.id
        await #expect(throws: WebAuthnError.credentialIDMismatch) { try await passkey.register(credential: renamed) }
    }

    @Test func signCountRegressionIsReported() async throws {
        let key = try await passkey.register()
        let later = passkey.authentications[1].expectedSignCount
        #expect(try passkey.authenticate(0, key: key, storedSignCount: later).signCountRegressed)
        #expect(try passkey.authenticate(1, key: key, storedSignCount: later).signCountRegressed)
        #expect(!(try passkey.authenticate(1, key: key, storedSignCount: later - 1).signCountRegressed))
    }

    @Test func malformedInputIsRefusedWithAClearError() async throws {
        var credential = packed.registration.credential
        credential.response.attestationObject = Base64URL.encode([0xFF, 0x00])
        await #expect(throws: WebAuthnError.self) { try await packed.register(credential: credential) }
        credential.response.attestationObject = "***"
        await #expect(throws: WebAuthnError.malformed("attestationObject is not base64url of at most 16384 bytes")) {
            try await packed.register(credential: credential)
        }
        credential = packed.registration.credential
        credential.response.clientDataJSON = Base64URL.encode(Array("not json".utf8))
        await #expect(throws: WebAuthnError.self) { try await packed.register(credential: credential) }
        credential = packed.registration.credential
        credential.response.attestationObject = Tamper.attestation(credential.response.attestationObject) { entries in
            if let index = entries.firstIndex(where: { $0.key == .text("fmt") }) { entries[index].value = .text("tpm") }
        }
        await #expect(throws: WebAuthnError.unsupportedAttestation("tpm")) { try await packed.register(credential: credential) }
        credential = packed.registration.credential
        credential.type = "password"
        await #expect(throws: WebAuthnError.malformed("type must be public-key")) { try await packed.register(credential: credential) }
    }
}
