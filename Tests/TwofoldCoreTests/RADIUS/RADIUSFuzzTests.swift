import Foundation
import Testing

@testable import TwofoldCore

/// Tens of thousands of random and mutated datagrams for the RADIUS decoder: each is refused with a
/// ``RADIUSError`` or decoded, never crashes, and every packet that decodes re-encodes to the same octets
/// (up to its Length field, RFC 2865 §3).
@Suite("RADIUS: fuzzing the decoder")
struct RADIUSFuzzTests {
    /// A small deterministic generator (SplitMix64) so a failure can be reproduced from its seed.
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

    static let secret = RADIUSSharedSecret("fuzzing-shared-secret")

    static func seeds() throws -> [[UInt8]] {
        let request = try RADIUSPacket.accessRequest(
            identifier: 77, userName: "carol", password: Array("a password of more than 32 octets..".utf8),
            state: [1, 2, 3, 4],
            attributes: [
                .text(.nasIdentifier, "fw"), .integer(.nasPort, 1),
                RADIUSAttribute(.vendorSpecific, [0, 0, 0, 9, 1, 4, 0x61, 0x62]),
            ],
            secret: secret, randomBytes: RADIUSFixtures.fixedRandom)
        let challenge = try RADIUSPacket.response(
            to: request, code: .accessChallenge,
            attributes: RADIUSAttribute.replyMessages(String(repeating: "Enter your code. ", count: 20)) + [.state([9])],
            secret: secret)
        return [
            RADIUSFixtures.rfc71Request, RADIUSFixtures.rfc71Accept, RADIUSFixtures.rfc72CHAPRequest,
            RADIUSFixtures.rfc73Challenge, RADIUSFixtures.pythonRequest, RADIUSFixtures.pythonAccept,
            try request.encoded(), try challenge.encoded(),
        ]
    }

    static func randomBytes(_ count: Int, _ rng: inout SplitMix) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    /// One mutation of a seed; about half the time the Length field is then set to the datagram's size, so that
    /// the mutation reaches the attribute walk instead of stopping at the header checks.
    static func mutate(_ input: [UInt8], _ seeds: [[UInt8]], _ rng: inout SplitMix) -> [UInt8] {
        var bytes = input
        switch Int.random(in: 0..<8, using: &rng) {
        case 0 where !bytes.isEmpty:
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            }
        case 1 where !bytes.isEmpty:
            bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng)))
        case 2:
            bytes.insert(
                contentsOf: randomBytes(Int.random(in: 1...16, using: &rng), &rng),
                at: Int.random(in: 0...bytes.count, using: &rng))
        case 3 where bytes.count > 2:
            let start = Int.random(in: 0..<bytes.count - 1, using: &rng)
            bytes.removeSubrange(start..<min(bytes.count, start + Int.random(in: 1...8, using: &rng)))
        case 4 where bytes.count > 21:
            // Rewrite one attribute length octet (or whatever sits where one might be).
            bytes[Int.random(in: 21..<bytes.count, using: &rng)] = UInt8.random(in: 0...40, using: &rng)
        case 5 where bytes.count > 20:
            // Splice the attributes of another seed, creating duplicates and unexpected mixtures.
            let other = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            bytes += other.dropFirst(20)
        case 6:
            bytes = Array(bytes.prefix(20)) + randomBytes(Int.random(in: 0...120, using: &rng), &rng)
        default:
            bytes = randomBytes(Int.random(in: 0...300, using: &rng), &rng)
        }
        if bytes.count >= 4, Bool.random(using: &rng) {
            bytes[2] = UInt8((bytes.count >> 8) & 0xff)
            bytes[3] = UInt8(bytes.count & 0xff)
        }
        return bytes
    }

    @Test func twentyThousandRandomAndMutatedInputsNeverCrashAndRoundTrip() throws {
        // setup
        var rng = SplitMix(state: 2024_3596)
        let seeds = try Self.seeds()
        let request = try RADIUSPacket(decoding: seeds[6])
        var decoded = 0
        var refused = 0
        // act
        for round in 0..<20_000 {
            let input = Self.mutate(seeds[round % seeds.count], seeds, &rng)
            do {
                let packet = try RADIUSPacket(decoding: input)
                decoded += 1
                // verify
                let length = Int(input[2]) << 8 | Int(input[3])
                #expect(try packet.encoded() == Array(input.prefix(length)), "round \(round)")
                _ = try? packet.verifyRequest(secret: Self.secret)
                _ = try? packet.verifyResponse(to: request, secret: Self.secret)
                _ = try? packet.userPassword(secret: Self.secret)
                _ = (packet.userName, packet.replyMessages, packet.nasIPAddress, packet.sessionTimeout)
            } catch is RADIUSError {
                refused += 1
            } catch {
                Issue.record("round \(round) threw a non-RADIUS error: \(error)")
            }
        }
        // Both outcomes are reached often, so the fuzzing exercises the attribute rules and not only the header.
        #expect(decoded > 2_000)
        #expect(refused > 2_000)
    }

    @Test func tamperedSignedRequestsNeverVerify() throws {
        // setup
        var rng = SplitMix(state: 5080)
        let original = try Self.seeds()[6]
        // act / verify
        for _ in 0..<2_000 {
            var bytes = original
            bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            guard let packet = try? RADIUSPacket(decoding: bytes) else { continue }
            #expect(throws: RADIUSError.self) { try packet.verifyRequest(secret: Self.secret) }
        }
    }

    @Test func randomWellFormedPacketsRoundTripThroughTheModel() throws {
        var rng = SplitMix(state: 2865)
        let boundedTypes: Set<UInt8> = [1, 2, 3, 4, 5, 6, 18, 24, 27, 61, 79, 80]
        for _ in 0..<3_000 {
            // setup: unknown types, plus repeatable known ones, with any value length the decoder allows
            var attributes: [RADIUSAttribute] = []
            for _ in 0..<Int.random(in: 0...12, using: &rng) {
                var type = UInt8.random(in: 0...255, using: &rng)
                while boundedTypes.contains(type) { type = UInt8.random(in: 0...255, using: &rng) }
                attributes.append(
                    RADIUSAttribute(
                        RADIUSAttributeType(type),
                        Self.randomBytes(Int.random(in: 0...253, using: &rng), &rng)))
            }
            attributes += RADIUSAttribute.replyMessages(String(repeating: "x", count: Int.random(in: 0...600, using: &rng)))
            let code = RADIUSCode.allCases[Int.random(in: 0..<RADIUSCode.allCases.count, using: &rng)]
            let packet = RADIUSPacket(
                code: code, identifier: UInt8.random(in: 0...255, using: &rng),
                authenticator: Self.randomBytes(16, &rng), attributes: attributes)
            guard let bytes = try? packet.encoded() else { continue }
            // act / verify
            #expect(try RADIUSPacket(decoding: bytes) == packet)
        }
    }
}
