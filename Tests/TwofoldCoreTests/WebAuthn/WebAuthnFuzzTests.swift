import Foundation
import Testing

@testable import TwofoldCore

/// Thousands of random and mutated inputs for the attestation and authenticator-data parsers: each must be
/// refused with a ``WebAuthnError`` (or accepted), never crash.
@Suite("WebAuthn: fuzzing the parsers")
struct WebAuthnFuzzTests {
    /// A small deterministic generator so a failure can be reproduced from its seed.
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix) -> [UInt8] {
        var bytes = input
        switch Int.random(in: 0..<5, using: &rng) {
        case 0 where !bytes.isEmpty:
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            }
        case 1 where !bytes.isEmpty:
            bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)))
        case 2:
            bytes.insert(
                contentsOf: (0..<Int.random(in: 1...16, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) },
                at: Int.random(in: 0...bytes.count, using: &rng))
        case 3 where bytes.count > 2:
            let start = Int.random(in: 0..<bytes.count - 1, using: &rng)
            bytes.removeSubrange(start..<min(bytes.count, start + Int.random(in: 1...8, using: &rng)))
        default:
            bytes = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        }
        return bytes
    }

    @Test func mutatedAttestationObjectsNeverCrash() async throws {
        var rng = SplitMix(state: 7)
        let seeds = WebAuthnFixture.all.map { (try? Base64URL.decode($0.registration.credential.response.attestationObject)) ?? [] }
        var refused = 0
        for round in 0..<4_000 {
            let input = Self.mutate(seeds[round % seeds.count], &rng)
            do {
                let object = try AttestationObject(input)
                _ = try await object.verifyStatement(clientDataHash: Array(repeating: 0, count: 32), trustAnchors: [], now: Date())
            } catch is WebAuthnError {
                refused += 1
            }
        }
        #expect(refused > 3_000)
    }

    @Test func mutatedAuthenticatorDataAndAssertionsNeverCrash() async throws {
        var rng = SplitMix(state: 11)
        for fixture in WebAuthnFixture.all {
            let key = try await fixture.register()
            let assertion = fixture.authentications[0].credential
            let data = (try? Base64URL.decode(assertion.response.authenticatorData)) ?? []
            for _ in 0..<400 {
                _ = try? AuthenticatorData(Self.mutate(data, &rng))
                var mutated = assertion
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: mutated.response.authenticatorData = Base64URL.encode(Self.mutate(data, &rng))
                case 1:
                    mutated.response.clientDataJSON = Base64URL.encode(
                        Self.mutate((try? Base64URL.decode(assertion.response.clientDataJSON)) ?? [], &rng))
                default:
                    mutated.response.signature = Base64URL.encode(
                        Self.mutate((try? Base64URL.decode(assertion.response.signature)) ?? [], &rng))
                }
                do {
                    _ = try fixture.authenticate(0, key: key, assertion: mutated)
                } catch is WebAuthnError {}
            }
        }
    }

    @Test func randomBytesAreRefused() {
        var rng = SplitMix(state: 3)
        for _ in 0..<3_000 {
            let bytes = (0..<Int.random(in: 0...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            #expect(throws: WebAuthnError.self) { try AttestationObject(bytes) }
        }
    }
}
