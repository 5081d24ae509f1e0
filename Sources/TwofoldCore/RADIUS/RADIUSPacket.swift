/// The packet codes Twofold recognises (RFC 2865 §3, RFC 2866 §3, RFC 5997). Twofold serves only the Access-*
/// exchange and Status-Server; accounting codes are recognised so the server can drop them knowingly.
public enum RADIUSCode: UInt8, Hashable, Sendable, CaseIterable {
    /// Access-Request (RFC 2865 §4.1).
    case accessRequest = 1
    /// Access-Accept (RFC 2865 §4.2).
    case accessAccept = 2
    /// Access-Reject (RFC 2865 §4.3).
    case accessReject = 3
    /// Accounting-Request (RFC 2866 §4.1); not served.
    case accountingRequest = 4
    /// Accounting-Response (RFC 2866 §4.2); not served.
    case accountingResponse = 5
    /// Access-Challenge (RFC 2865 §4.4).
    case accessChallenge = 11
    /// Status-Server (RFC 5997).
    case statusServer = 12

    /// Whether packets of this code are sent by a NAS to a server (and so carry a Request Authenticator).
    public var isRequest: Bool { self == .accessRequest || self == .accountingRequest || self == .statusServer }
}

/// The shared secret between Twofold and one RADIUS client (RFC 2865 §3). Its description is redacted, and it is
/// deliberately not `Equatable`: compare secrets with `ConstantTime.equals` on ``bytes``.
public struct RADIUSSharedSecret: Sendable, CustomStringConvertible {
    /// The secret octets.
    public let bytes: [UInt8]

    /// A secret from its octets.
    /// - Parameter bytes: the secret; RFC 2865 §3 asks for at least 16 octets, Twofold generates 32 or more.
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    /// A secret from text, as administrators type it into NAS configurations.
    /// - Parameter text: the secret; its UTF-8 octets are used.
    public init(_ text: String) { self.bytes = Array(text.utf8) }

    /// Always `RADIUSSharedSecret(redacted)`.
    public var description: String { "RADIUSSharedSecret(redacted)" }
}

/// One RADIUS packet (RFC 2865 §3): code, identifier, 16-octet authenticator and an ordered list of attributes
/// that keeps duplicates and unknown types exactly as they came.
public struct RADIUSPacket: Hashable, Sendable {
    /// The shortest packet: the header alone (RFC 2865 §3).
    public static let minimumLength = 20
    /// The longest packet (RFC 2865 §3).
    public static let maximumLength = 4096
    /// Attribute types that may appear at most once in a packet we accept.
    static let singletons: [RADIUSAttributeType] = [.userName, .userPassword, .state, .messageAuthenticator]

    /// The packet code.
    public var code: RADIUSCode
    /// Matches a response to its request (RFC 2865 §3).
    public var identifier: UInt8
    /// The Request Authenticator of a request or the Response Authenticator of a response; 16 octets.
    public var authenticator: [UInt8]
    /// The attributes in packet order.
    public var attributes: [RADIUSAttribute]

    /// A packet from its fields.
    /// - Parameters:
    ///   - code: the packet code.
    ///   - identifier: the identifier.
    ///   - authenticator: 16 octets (zeros by default, for packets whose authenticator is computed later).
    ///   - attributes: the attributes in order.
    public init(
        code: RADIUSCode, identifier: UInt8, authenticator: [UInt8] = Array(repeating: 0, count: 16),
        attributes: [RADIUSAttribute] = []
    ) {
        self.code = code
        self.identifier = identifier
        self.authenticator = authenticator
        self.attributes = attributes
    }

    /// Strictly decodes a datagram (RFC 2865 §3 and §5, RFC 2869 §5.14). Octets after the Length field's count are
    /// padding and ignored (RFC 2865 §3); every other irregularity is refused. Never traps, whatever the input.
    /// - Parameter bytes: the UDP payload.
    /// - Throws: ``RADIUSError`` with `.truncated`, `.badLength`, `.unsupportedCode`, `.badAttribute` or
    ///   `.duplicateAttribute`.
    public init(decoding bytes: [UInt8]) throws {
        guard bytes.count >= Self.minimumLength else {
            throw RADIUSError(.truncated, "The datagram has \(bytes.count) octets; a RADIUS header needs 20.")
        }
        let length = Int(bytes[2]) << 8 | Int(bytes[3])
        guard (Self.minimumLength...Self.maximumLength).contains(length) else {
            throw RADIUSError(.badLength, "The Length field says \(length); it must be 20…4096 (RFC 2865 §3).")
        }
        guard length <= bytes.count else {
            throw RADIUSError(.truncated, "The Length field says \(length) but the datagram has \(bytes.count) octets.")
        }
        guard let code = RADIUSCode(rawValue: bytes[0]) else {
            throw RADIUSError(.unsupportedCode(bytes[0]), "Packet code \(bytes[0]) is not supported.")
        }
        var attributes: [RADIUSAttribute] = []
        var offset = Self.minimumLength
        while offset < length {
            let type = bytes[offset]
            guard offset + 1 < length else {
                throw RADIUSError(.badAttribute(type), "Attribute \(type) at offset \(offset) has no length octet.")
            }
            let attributeLength = Int(bytes[offset + 1])
            guard attributeLength >= 2 else {
                throw RADIUSError(
                    .badAttribute(type),
                    "Attribute \(type) has length \(attributeLength); the minimum is 2.")
            }
            guard offset + attributeLength <= length else {
                throw RADIUSError(.badAttribute(type), "Attribute \(type) runs past the end of the packet.")
            }
            let value = Array(bytes[(offset + 2)..<(offset + attributeLength)])
            let attribute = RADIUSAttribute(RADIUSAttributeType(type), value)
            try Self.checkBounds(attribute)
            if Self.singletons.contains(attribute.type), attributes.contains(where: { $0.type == attribute.type }) {
                throw RADIUSError(.duplicateAttribute(type), "Attribute \(type) may appear only once.")
            }
            attributes.append(attribute)
            offset += attributeLength
        }
        self.init(code: code, identifier: bytes[1], authenticator: Array(bytes[4..<20]), attributes: attributes)
    }

    /// The value bounds of the attributes Twofold reads (RFC 2865 §5.1–5.41, RFC 2869 §5.14, RFC 3579 §3.1).
    /// Other attributes, Vendor-Specific included, are only held to the 253-octet limit of their length octet.
    static func checkBounds(_ attribute: RADIUSAttribute) throws {
        let count = attribute.value.count
        let valid: Bool
        switch attribute.type {
        case .userName, .state, .replyMessage, .eapMessage: valid = count >= 1
        case .userPassword: valid = (16...128).contains(count) && count % 16 == 0
        case .chapPassword: valid = count == 17
        case .messageAuthenticator: valid = count == 16
        case .nasIPAddress: valid = count == 4
        case .nasPort, .serviceType, .sessionTimeout, .nasPortType: valid = count == 4
        default: valid = true
        }
        guard valid else {
            throw RADIUSError(
                .badAttribute(attribute.type.rawValue),
                "Attribute \(attribute.type.rawValue) has a \(count)-octet value, outside its bounds.")
        }
    }

    /// The packet on the wire, with the Length field computed.
    /// - Returns: the encoded packet.
    /// - Throws: ``RADIUSError`` `.badLength` when the authenticator is not 16 octets or the packet would exceed
    ///   4096 octets; `.badAttribute` when a value exceeds 253 octets.
    public func encoded() throws -> [UInt8] {
        guard authenticator.count == 16 else {
            throw RADIUSError(.badLength, "The authenticator has \(authenticator.count) octets; it must have 16.")
        }
        var bytes: [UInt8] = [code.rawValue, identifier, 0, 0]
        bytes.reserveCapacity(Self.minimumLength + attributes.reduce(0) { $0 + 2 + $1.value.count })
        bytes.append(contentsOf: authenticator)
        for attribute in attributes {
            guard attribute.value.count <= RADIUSAttribute.maximumValueLength else {
                throw RADIUSError(
                    .badAttribute(attribute.type.rawValue),
                    "Attribute \(attribute.type.rawValue) holds \(attribute.value.count) octets; "
                        + "at most 253 fit.")
            }
            bytes.append(attribute.type.rawValue)
            bytes.append(UInt8(attribute.value.count + 2))
            bytes.append(contentsOf: attribute.value)
        }
        guard bytes.count <= Self.maximumLength else {
            throw RADIUSError(.badLength, "The packet would be \(bytes.count) octets; RADIUS allows 4096.")
        }
        bytes[2] = UInt8(bytes.count >> 8)
        bytes[3] = UInt8(bytes.count & 0xff)
        return bytes
    }
}

/// What identifies one request for duplicate detection (RFC 5080 §2.2.2): a retransmission repeats all four, so a
/// server answers it from its cache instead of processing (and counting) it again.
public struct RADIUSRequestKey: Hashable, Sendable {
    /// The client's source address, as text.
    public let clientAddress: String
    /// The client's source UDP port.
    public let port: UInt16
    /// The request's Identifier.
    public let identifier: UInt8
    /// The request's Request Authenticator.
    public let requestAuthenticator: [UInt8]

    /// A key from its parts.
    /// - Parameters:
    ///   - clientAddress: the source address.
    ///   - port: the source port.
    ///   - identifier: the Identifier.
    ///   - requestAuthenticator: the 16-octet Request Authenticator.
    public init(clientAddress: String, port: UInt16, identifier: UInt8, requestAuthenticator: [UInt8]) {
        self.clientAddress = clientAddress
        self.port = port
        self.identifier = identifier
        self.requestAuthenticator = requestAuthenticator
    }

    /// The key of a decoded request.
    /// - Parameters:
    ///   - clientAddress: the source address.
    ///   - port: the source port.
    ///   - request: the decoded request.
    public init(clientAddress: String, port: UInt16, request: RADIUSPacket) {
        self.init(
            clientAddress: clientAddress, port: port, identifier: request.identifier,
            requestAuthenticator: request.authenticator)
    }
}
