import Crypto
import Foundation
import Testing
@testable import TwofoldCore

@Suite("ES256 JWS, JWKs and signed device requests")
struct SigningTests {
    struct Claims: Codable, Equatable {
        var sub: String
        var exp: Int
    }

    @Test func jwsRoundTripsAndRefusesTampering() throws {
        let key = P256.Signing.PrivateKey()
        let token = try CompactJWS.sign(Claims(sub: "user-1", exp: 1_800_000_000), key: key, kid: "k1")
        let parts = token.split(separator: ".")
        #expect(parts.count == 3)
        #expect(try Base64URL.decode(String(parts[2])).count == 64, "ES256 signatures are raw r‖s")
        let (header, payload) = try CompactJWS.verify(token, keys: ["k1": key.publicKey])
        #expect(header == CompactJWS.Header(kid: "k1"))
        #expect(try JSONDecoder().decode(Claims.self, from: Data(payload)) == Claims(sub: "user-1", exp: 1_800_000_000))

        let forged = Base64URL.encode(Array(#"{"exp":1800000000,"sub":"admin"}"#.utf8))
        #expect(throws: JWSError.badSignature) { try CompactJWS.verify("\(parts[0]).\(forged).\(parts[2])", keys: ["k1": key.publicKey]) }
        #expect(throws: JWSError.badSignature) { try CompactJWS.verify(token, keys: ["k1": P256.Signing.PrivateKey().publicKey]) }
        #expect(throws: JWSError.unknownKey("k1")) { try CompactJWS.verify(token, keys: [:]) }
        let none = Base64URL.encode(Array(#"{"alg":"none","kid":"k1"}"#.utf8))
        #expect(throws: JWSError.unsupportedAlgorithm("none")) { try CompactJWS.verify("\(none).\(parts[1]).", keys: ["k1": key.publicKey]) }
        #expect(throws: JWSError.self) { try CompactJWS.verify("only.two", keys: ["k1": key.publicKey]) }
    }

    @Test func jwkCarriesTheCoordinatesAndRoundTrips() throws {
        let key = P256.Signing.PrivateKey()
        let jwk = JSONWebKey(publicKey: key.publicKey, kid: "k9")
        #expect(jwk.kty == "EC" && jwk.crv == "P-256" && jwk.alg == "ES256")
        #expect(try Base64URL.decode(jwk.x).count == 32)
        #expect(try jwk.publicKey().rawRepresentation == key.publicKey.rawRepresentation)
        let json = try JSONEncoder().encode(JSONWebKeySet(keys: [jwk]))
        #expect(try JSONDecoder().decode(JSONWebKeySet.self, from: json).keys == [jwk])
    }

    @Test func deviceSignaturesCoverMethodPathBodyTimeAndNonce() throws {
        let key = P256.Signing.PrivateKey()
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let body = Array(#"{"decision":"approve","number":42}"#.utf8)
        let headers = Dictionary(uniqueKeysWithValues: try DeviceRequestSignature.sign(
            method: "POST", pathAndQuery: "/api/v1/push/challenges/abc", body: body, deviceID: "device-1", key: key, now: now))
        let envelope = try DeviceRequestSignature.Envelope { headers[$0] }
        #expect(envelope.deviceID == "device-1")
        try envelope.verify(method: "POST", pathAndQuery: "/api/v1/push/challenges/abc", body: body, publicKey: key.publicKey, now: now.addingTimeInterval(299))

        #expect(throws: DeviceRequestSignature.Failure.badSignature) {
            try envelope.verify(method: "POST", pathAndQuery: "/api/v1/push/challenges/abc", body: Array("{}".utf8), publicKey: key.publicKey, now: now)
        }
        #expect(throws: DeviceRequestSignature.Failure.badSignature) {
            try envelope.verify(method: "POST", pathAndQuery: "/api/v1/push/challenges/xyz", body: body, publicKey: key.publicKey, now: now)
        }
        #expect(throws: DeviceRequestSignature.Failure.badSignature) {
            try envelope.verify(method: "GET", pathAndQuery: "/api/v1/push/challenges/abc", body: body, publicKey: key.publicKey, now: now)
        }
        #expect(throws: DeviceRequestSignature.Failure.staleTimestamp) {
            try envelope.verify(method: "POST", pathAndQuery: "/api/v1/push/challenges/abc", body: body, publicKey: key.publicKey, now: now.addingTimeInterval(301))
        }
        var missing = headers
        missing[DeviceRequestSignature.nonceHeader] = nil
        #expect(throws: DeviceRequestSignature.Failure.missingHeader(DeviceRequestSignature.nonceHeader)) { try DeviceRequestSignature.Envelope { missing[$0] } }
        var shortNonce = headers
        shortNonce[DeviceRequestSignature.nonceHeader] = "abc"
        #expect(throws: DeviceRequestSignature.Failure.malformedHeader(DeviceRequestSignature.nonceHeader)) { try DeviceRequestSignature.Envelope { shortNonce[$0] } }
    }

    @Test func enrollmentURIsEscapeTheServerAndParseBack() throws {
        let uri = PushEnrollmentURI(server: "https://2fa.example-clinic.org:8443", token: "tok_en-1")
        #expect(uri.uri == "twofold-push://enroll?server=https%3A%2F%2F2fa.example-clinic.org%3A8443&token=tok_en-1")
        #expect(try PushEnrollmentURI(parsing: uri.uri) == uri)
        #expect(throws: PushEnrollmentURI.ParseError.notAnEnrollmentURI) { try PushEnrollmentURI(parsing: "otpauth://totp/x?secret=AA") }
        #expect(throws: PushEnrollmentURI.ParseError.missing("token")) { try PushEnrollmentURI(parsing: "twofold-push://enroll?server=https%3A%2F%2Fa.b") }
    }
}
