import Crypto
import Foundation

/// How a push device signs each request it makes, and how the server checks it.
///
/// The device signs, with its P-256 key (ECDSA over SHA-256), the UTF-8 text
///
///     twofold-device-v1\n<METHOD>\n<path and query>\n<unix seconds>\n<nonce>\n<hex SHA-256 of the body>
///
/// and sends the signature (raw r‖s, base64url) with the device id, timestamp and nonce in headers.
/// The server refuses a timestamp more than `allowedSkew` away from its clock and a nonce it has seen before.
public enum DeviceRequestSignature {
    public static let deviceHeader = "X-Twofold-Device"
    public static let timestampHeader = "X-Twofold-Timestamp"
    public static let nonceHeader = "X-Twofold-Nonce"
    public static let signatureHeader = "X-Twofold-Signature"
    /// How far a request's timestamp may be from the server's clock.
    public static let allowedSkew: TimeInterval = 300

    public enum Failure: Error, Equatable, CustomStringConvertible {
        case missingHeader(String)
        case malformedHeader(String)
        case staleTimestamp
        case badSignature

        public var description: String {
            switch self {
            case .missingHeader(let name): "The request lacks the \(name) header."
            case .malformedHeader(let name): "The \(name) header is malformed."
            case .staleTimestamp: "The request's timestamp is more than five minutes from the server's clock; check the device's time."
            case .badSignature: "The request's signature does not verify with this device's key."
            }
        }
    }

    /// The exact bytes a device signs.
    public static func message(method: String, pathAndQuery: String, timestamp: Int64, nonce: String, body: [UInt8]) -> [UInt8] {
        let text = ["twofold-device-v1", method.uppercased(), pathAndQuery, String(timestamp), nonce, Digest.hex(Digest.sha256(body))]
            .joined(separator: "\n")
        return Array(text.utf8)
    }

    /// The signature headers for a request (device side).
    public static func sign(
        method: String, pathAndQuery: String, body: [UInt8], deviceID: String,
        key: P256.Signing.PrivateKey, now: Date = Date()
    ) throws -> [(String, String)] {
        let timestamp = Int64(now.timeIntervalSince1970)
        let nonce = SecureRandom.token(byteCount: 16)
        let signature = try key.signature(
            for: message(method: method, pathAndQuery: pathAndQuery, timestamp: timestamp, nonce: nonce, body: body))
        return [
            (deviceHeader, deviceID), (timestampHeader, String(timestamp)), (nonceHeader, nonce),
            (signatureHeader, Base64URL.encode(Array(signature.rawRepresentation))),
        ]
    }

    /// The parts of a signed request the server reads from its headers.
    public struct Envelope: Equatable, Sendable {
        public var deviceID: String
        public var timestamp: Int64
        public var nonce: String
        public var signature: [UInt8]

        /// Reads the headers; `header` returns a header's value or nil.
        public init(header: (String) -> String?) throws {
            guard let deviceID = header(DeviceRequestSignature.deviceHeader) else {
                throw Failure.missingHeader(DeviceRequestSignature.deviceHeader)
            }
            guard let timestampText = header(DeviceRequestSignature.timestampHeader) else {
                throw Failure.missingHeader(DeviceRequestSignature.timestampHeader)
            }
            guard let nonce = header(DeviceRequestSignature.nonceHeader) else {
                throw Failure.missingHeader(DeviceRequestSignature.nonceHeader)
            }
            guard let signatureText = header(DeviceRequestSignature.signatureHeader) else {
                throw Failure.missingHeader(DeviceRequestSignature.signatureHeader)
            }
            guard let timestamp = Int64(timestampText) else { throw Failure.malformedHeader(DeviceRequestSignature.timestampHeader) }
            guard (16...64).contains(nonce.count),
                nonce.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") })
            else { throw Failure.malformedHeader(DeviceRequestSignature.nonceHeader) }
            guard let signature = try? Base64URL.decode(signatureText), signature.count == 64
            else { throw Failure.malformedHeader(DeviceRequestSignature.signatureHeader) }
            self.deviceID = deviceID
            self.timestamp = timestamp
            self.nonce = nonce
            self.signature = signature
        }

        /// Checks the clock skew and the signature (server side). Nonce reuse is the caller's to check, in storage.
        public func verify(method: String, pathAndQuery: String, body: [UInt8], publicKey: P256.Signing.PublicKey, now: Date) throws {
            guard abs(Double(timestamp) - now.timeIntervalSince1970) <= DeviceRequestSignature.allowedSkew else {
                throw Failure.staleTimestamp
            }
            guard let ecdsa = try? P256.Signing.ECDSASignature(rawRepresentation: signature),
                publicKey.isValidSignature(
                    ecdsa,
                    for: DeviceRequestSignature.message(
                        method: method, pathAndQuery: pathAndQuery, timestamp: timestamp, nonce: nonce, body: body))
            else { throw Failure.badSignature }
        }
    }
}
