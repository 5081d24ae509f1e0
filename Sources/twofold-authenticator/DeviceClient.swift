import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import TwofoldCore

/// Talks to a Twofold server as a push device: every request after enrollment is signed with the device key.
struct DeviceClient {
    let server: String

    struct Response {
        var status: Int
        var body: Data
    }

    func send(
        method: HTTPMethod, path: String, body: [UInt8] = [], signedBy device: (id: String, key: P256.Signing.PrivateKey)?,
        timeout: TimeAmount = .seconds(40)
    ) async throws -> Response {
        var request = HTTPClientRequest(url: server + path)
        request.method = method
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "twofold-authenticator")
        if let device {
            for (name, value) in try DeviceRequestSignature.sign(
                method: method.rawValue, pathAndQuery: path, body: body, deviceID: device.id, key: device.key)
            {
                request.headers.add(name: name, value: value)
            }
        }
        if !body.isEmpty { request.body = .bytes(ByteBuffer(bytes: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        let buffer = try await response.body.collect(upTo: 1 << 20)
        return Response(status: Int(response.status.code), body: Data(buffer.readableBytesView))
    }

    /// Decodes a 2xx body, or turns the server's `reason` into an error.
    static func decode<T: Decodable>(_ type: T.Type, from response: Response) throws -> T {
        guard (200..<300).contains(response.status) else {
            let reason =
                (try? JSONDecoder().decode(ServerError.self, from: response.body))?.reason ?? String(decoding: response.body, as: UTF8.self)
            throw AuthenticatorError("The server answered \(response.status): \(reason)")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(T.self, from: response.body)
    }

    private struct ServerError: Decodable { var reason: String }
}
