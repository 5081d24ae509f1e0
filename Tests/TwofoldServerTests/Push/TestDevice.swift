import Crypto
import Foundation
import Testing
import TwofoldCore
import VaporTesting

@testable import TwofoldServer

/// A push device for tests: its own P-256 key, signing every request the way a phone would.
final class TestDevice: @unchecked Sendable {
    let key = P256.Signing.PrivateKey()
    var id = ""

    /// Enrolls with the token of an enrollment URI; the device stays pending until its first signed request.
    static func enroll(_ ctx: TestContext, uri: String, name: String = "Test phone") async throws -> (TestDevice, TestingHTTPResponse) {
        let device = TestDevice()
        let token = try PushEnrollmentURI(parsing: uri).token
        let proof = try device.key.signature(for: PushEnrollmentURI.proofMessage(token: token))
        let response = try await APIClient(ctx).send(
            .POST, "/api/v1/push/enroll",
            json: [
                "token": token, "publicKey": Base64URL.encode(Array(device.key.publicKey.x963Representation)),
                "proof": Base64URL.encode(Array(proof.rawRepresentation)), "deviceName": name,
            ])
        device.id = response.json["deviceId"] as? String ?? ""
        return (device, response)
    }

    func headers(_ method: HTTPMethod, _ path: String, body: [UInt8], at date: Date, key signingKey: P256.Signing.PrivateKey? = nil) throws
        -> HTTPHeaders
    {
        var headers = HTTPHeaders()
        for (name, value) in try DeviceRequestSignature.sign(
            method: method.rawValue, pathAndQuery: path, body: body, deviceID: id, key: signingKey ?? key, now: date)
        {
            headers.add(name: name, value: value)
        }
        headers.contentType = .json
        return headers
    }

    func send(_ ctx: TestContext, _ method: HTTPMethod, _ path: String, json: [String: any Sendable]? = nil) async throws
        -> TestingHTTPResponse
    {
        let body = try json.map { Array(try JSONSerialization.data(withJSONObject: $0)) } ?? []
        return try await ctx.app.testing().sendRequest(
            method, path, headers: try headers(method, path, body: body, at: ctx.clock.now), body: ByteBuffer(bytes: body))
    }

    func pending(_ ctx: TestContext) async throws -> [[String: Any]] {
        let response = try await send(ctx, .GET, "/api/v1/push/challenges")
        #expect(response.status == .ok, "\(response.text)")
        return response.json["challenges"] as? [[String: Any]] ?? []
    }

    func approve(_ ctx: TestContext, _ challengeID: String, number: Int) async throws -> TestingHTTPResponse {
        try await send(ctx, .POST, "/api/v1/push/challenges/\(challengeID)", json: ["decision": "approve", "number": number])
    }
}

extension Flows {
    struct PushEnrolled {
        var client: APIClient
        var totp: Enrolled
        var device: TestDevice
        var factorID: String
    }

    /// An authenticator app first, then a push device enrolled and activated beside it.
    static func enrollPush(_ ctx: TestContext, username: String = "dr.smith") async throws -> PushEnrolled {
        let totp = try await enrollTOTP(ctx, username: username)
        let start = try await totp.client.send(
            .POST, "/api/v1/me/factors/push", json: ["password": Fixtures.password, "nickname": "Work phone"])
        #expect(start.status == .ok, "\(start.text)")
        let uri = try #require(start.json["enrollmentURI"] as? String)
        let factorID = try #require(start.json["factorId"] as? String)
        let (device, enrolled) = try await TestDevice.enroll(ctx, uri: uri)
        #expect(enrolled.status == .ok, "\(enrolled.text)")
        #expect(device.id == factorID)
        _ = try await device.pending(ctx)
        let finish = try await totp.client.send(.POST, "/api/v1/me/factors/\(factorID)/activate")
        #expect(finish.status == .ok, "\(finish.text)")
        return PushEnrolled(client: totp.client, totp: totp, device: device, factorID: factorID)
    }
}
