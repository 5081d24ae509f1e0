import Testing
import TwofoldCore

@Suite("Authentication context (amr, acr)")
struct AuthenticationContextTests {
    @Test func methodReferencesFollowRFC8176() {
        #expect(AuthenticationContext(password: true, secondFactor: nil).amr == ["pwd"])
        #expect(AuthenticationContext(password: true, secondFactor: .totp).amr == ["pwd", "otp", "mfa"])
        #expect(AuthenticationContext(password: true, secondFactor: .sms).amr == ["pwd", "sms", "mfa"])
        #expect(AuthenticationContext(password: true, secondFactor: .push).amr == ["pwd", "swk", "user", "mfa"])
        #expect(AuthenticationContext(password: true, secondFactor: .webauthn, deviceBoundKey: true).amr == ["pwd", "hwk", "user", "mfa"])
        #expect(AuthenticationContext(password: false, secondFactor: .webauthn, deviceBoundKey: false).amr == ["swk", "user", "mfa"])
    }

    @Test func levels() {
        #expect(AuthenticationContext(password: true, secondFactor: nil).level == .password)
        #expect(AuthenticationContext(password: true, secondFactor: .recoveryCode).level == .twoFactor)
        #expect(AuthenticationContext(password: true, secondFactor: .webauthn).level == .phishingResistant)
        #expect(AuthenticationContext(password: false, secondFactor: .webauthn).level == .phishingResistant)
        #expect(AssuranceLevel.required(byACRValues: "urn:twofold:acr:phishing-resistant urn:twofold:acr:2fa") == .twoFactor)
        #expect(AssuranceLevel.required(byACRValues: "phr") == .phishingResistant)
        #expect(AssuranceLevel.required(byACRValues: "urn:example:unknown") == nil)
        #expect(AssuranceLevel(acr: AssuranceLevel.twoFactor.acr) == .twoFactor)
    }
}
