import Crypto
import Foundation
import TwofoldCore

/// A software passkey for the server tests: answers the options Twofold sends with real P-256 signatures over
/// real authenticator data, and can be told to misbehave (another origin, no user verification, a reset counter).
final class SoftAuthenticator: @unchecked Sendable {
    let key = P256.Signing.PrivateKey()
    let credentialID = SecureRandom.bytes(32)
    var signCount: UInt32 = 0
    var userVerifies = true
    var origin = "http://localhost:8080"
    var rpID = "localhost"
    private(set) var userHandle: [UInt8] = []

    var id: String { Base64URL.encode(credentialID) }

    private var coseKey: [UInt8] {
        let point = Array(key.publicKey.x963Representation)
        return CBORValue.map([
            (.int(1), .int(2)), (.int(3), .int(-7)), (.int(-1), .int(1)),
            (.int(-2), .bytes(Array(point[1..<33]))), (.int(-3), .bytes(Array(point[33...]))),
        ]).encoded
    }

    private func clientData(_ type: String, _ options: [String: Any]) -> [UInt8] {
        Array(
            #"{"type":"\#(type)","challenge":"\#(options["challenge"] as? String ?? "")","origin":"\#(origin)","crossOrigin":false}"#.utf8)
    }

    private func authenticatorData(attested: Bool) -> [UInt8] {
        var flags: UInt8 = 0x01
        if userVerifies { flags |= 0x04 }
        if attested { flags |= 0x40 }
        var data = Array(SHA256.hash(data: Array(rpID.utf8))) + [flags] + withUnsafeBytes(of: signCount.bigEndian) { Array($0) }
        if attested {
            data +=
                [UInt8](repeating: 0, count: 16) + [UInt8(credentialID.count >> 8), UInt8(credentialID.count & 0xFF)] + credentialID
                + coseKey
        }
        return data
    }

    /// `navigator.credentials.create()` followed by `toJSON()`, with "none" attestation.
    func create(_ options: [String: Any]) -> [String: Any] {
        userHandle = ((options["user"] as? [String: Any])?["id"] as? String).flatMap { try? Base64URL.decode($0) } ?? []
        let attestation = CBORValue.map([
            (.text("fmt"), .text("none")), (.text("attStmt"), .map([])), (.text("authData"), .bytes(authenticatorData(attested: true))),
        ])
        return [
            "id": id, "rawId": id, "type": "public-key", "authenticatorAttachment": "platform", "clientExtensionResults": [String: Any](),
            "response": [
                "clientDataJSON": Base64URL.encode(clientData("webauthn.create", options)),
                "attestationObject": Base64URL.encode(attestation.encoded), "transports": ["internal", "hybrid"],
            ],
        ]
    }

    /// `navigator.credentials.get()` followed by `toJSON()`; the counter goes up by one.
    func get(_ options: [String: Any]) throws -> [String: Any] {
        signCount += 1
        let client = clientData("webauthn.get", options)
        let data = authenticatorData(attested: false)
        let signature = try key.signature(for: data + Array(SHA256.hash(data: client))).derRepresentation
        return [
            "id": id, "rawId": id, "type": "public-key", "clientExtensionResults": [String: Any](),
            "response": [
                "clientDataJSON": Base64URL.encode(client), "authenticatorData": Base64URL.encode(data),
                "signature": Base64URL.encode(Array(signature)), "userHandle": Base64URL.encode(userHandle),
            ],
        ]
    }
}
