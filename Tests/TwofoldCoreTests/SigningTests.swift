import Crypto
import Foundation
import Testing

@testable import TwofoldCore

@Suite("Signed device requests and push enrollment URIs")
struct SigningTests {
    @Test func deviceSignaturesCoverMethodPathBodyTimeAndNonce() throws {
        let key = P256.Signing.PrivateKey()
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let body = Array(#"{"decision":"approve","number":42}"#.utf8)
        let headers = Dictionary(
            uniqueKeysWithValues: try DeviceRequestSignature.sign(
                method: "POST", pathAndQuery: "/api/v1/push/challenges/abc", body: body, deviceID: "device-1", key: key, now: now))
        let envelope = try DeviceRequestSignature.Envelope { headers[$0] }
        #expect(envelope.deviceID == "device-1")
        try envelope.verify(
            method: "POST", pathAndQuery: "/api/v1/push/challenges/abc", body: body, publicKey: key.publicKey,
            now: now.addingTimeInterval(299))

        #expect(throws: DeviceRequestSignature.Failure.badSignature) {
            try envelope.verify(
                method: "POST", pathAndQuery: "/api/v1/push/challenges/abc", body: Array("{}".utf8), publicKey: key.publicKey, now: now)
        }
        #expect(throws: DeviceRequestSignature.Failure.badSignature) {
            try envelope.verify(method: "POST", pathAndQuery: "/api/v1/push/challenges/xyz", body: body, publicKey: key.publicKey, now: now)
        }
        #expect(throws: DeviceRequestSignature.Failure.badSignature) {
            try envelope.verify(method: "GET", pathAndQuery: "/api/v1/push/challenges/abc", body: body, publicKey: key.publicKey, now: now)
        }
        #expect(throws: DeviceRequestSignature.Failure.staleTimestamp) {
            try envelope.verify(
                method: "POST", pathAndQuery: "/api/v1/push/challenges/abc", body: body, publicKey: key.publicKey,
                now: now.addingTimeInterval(301))
        }
        var missing = headers
        missing[DeviceRequestSignature.nonceHeader] = nil
        #expect(throws: DeviceRequestSignature.Failure.missingHeader(DeviceRequestSignature.nonceHeader)) {
            try DeviceRequestSignature.Envelope { missing[$0] }
        }
        var shortNonce = headers
        shortNonce[DeviceRequestSignature.nonceHeader] = "abc"
        #expect(throws: DeviceRequestSignature.Failure.malformedHeader(DeviceRequestSignature.nonceHeader)) {
            try DeviceRequestSignature.Envelope { shortNonce[$0] }
        }
    }

    @Test func enrollmentURIsEscapeTheServerAndParseBack() throws {
        let uri = PushEnrollmentURI(server: "https://2fa.example-clinic.org:8443", token: "tok_en-1")
        #expect(uri.uri == "twofold-push://enroll?server=https%3A%2F%2F2fa.example-clinic.org%3A8443&token=tok_en-1")
        #expect(try PushEnrollmentURI(parsing: uri.uri) == uri)
        #expect(throws: PushEnrollmentURI.ParseError.notAnEnrollmentURI) { try PushEnrollmentURI(parsing: "otpauth://totp/x?secret=AA") }
        #expect(throws: PushEnrollmentURI.ParseError.missing("token")) {
            try PushEnrollmentURI(parsing: "twofold-push://enroll?server=https%3A%2F%2Fa.b")
        }
    }
}
