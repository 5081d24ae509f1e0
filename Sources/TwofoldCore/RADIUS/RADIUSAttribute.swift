import Foundation

/// A RADIUS attribute type number (RFC 2865 §5). Unknown numbers are valid values: the codec keeps them.
public struct RADIUSAttributeType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The octet on the wire.
    public let rawValue: UInt8

    /// The type with this number.
    /// - Parameter rawValue: the type octet.
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The type with this number.
    /// - Parameter rawValue: the type octet.
    public init(_ rawValue: UInt8) { self.rawValue = rawValue }

    /// User-Name (RFC 2865 §5.1).
    public static let userName = Self(1)
    /// User-Password, hidden with the shared secret (RFC 2865 §5.2).
    public static let userPassword = Self(2)
    /// CHAP-Password (RFC 2865 §5.3); recognised so the server can refuse CHAP clearly.
    public static let chapPassword = Self(3)
    /// NAS-IP-Address (RFC 2865 §5.4).
    public static let nasIPAddress = Self(4)
    /// NAS-Port (RFC 2865 §5.5).
    public static let nasPort = Self(5)
    /// Service-Type (RFC 2865 §5.6).
    public static let serviceType = Self(6)
    /// Filter-Id (RFC 2865 §5.11).
    public static let filterID = Self(11)
    /// Reply-Message (RFC 2865 §5.18); may appear several times, concatenated in order.
    public static let replyMessage = Self(18)
    /// State (RFC 2865 §5.24); opaque to the NAS.
    public static let state = Self(24)
    /// Class (RFC 2865 §5.25).
    public static let `class` = Self(25)
    /// Vendor-Specific (RFC 2865 §5.26), kept raw.
    public static let vendorSpecific = Self(26)
    /// Session-Timeout (RFC 2865 §5.27).
    public static let sessionTimeout = Self(27)
    /// Called-Station-Id (RFC 2865 §5.30).
    public static let calledStationID = Self(30)
    /// Calling-Station-Id (RFC 2865 §5.31).
    public static let callingStationID = Self(31)
    /// NAS-Identifier (RFC 2865 §5.32).
    public static let nasIdentifier = Self(32)
    /// Proxy-State (RFC 2865 §5.33); copied unmodified, in order, into the response.
    public static let proxyState = Self(33)
    /// NAS-Port-Type (RFC 2865 §5.41).
    public static let nasPortType = Self(61)
    /// EAP-Message (RFC 3579 §3.1); recognised so the server can refuse EAP clearly.
    public static let eapMessage = Self(79)
    /// Message-Authenticator (RFC 2869 §5.14, RFC 3579 §3.2).
    public static let messageAuthenticator = Self(80)

    /// The type number, as `RADIUSAttributeType(n)`.
    public var description: String { "RADIUSAttributeType(\(rawValue))" }
}

/// One attribute as it travels: a type and its value (the octets after the type and length).
public struct RADIUSAttribute: Hashable, Sendable {
    /// The longest value one attribute can carry (255 minus the type and length octets, RFC 2865 §5).
    public static let maximumValueLength = 253

    /// The attribute type.
    public var type: RADIUSAttributeType
    /// The value octets, without type and length.
    public var value: [UInt8]

    /// An attribute.
    /// - Parameters:
    ///   - type: the attribute type.
    ///   - value: the value octets (at most ``maximumValueLength`` to be encodable).
    public init(_ type: RADIUSAttributeType, _ value: [UInt8]) {
        self.type = type
        self.value = value
    }

    /// A text attribute holding the UTF-8 bytes of a string.
    /// - Parameters:
    ///   - type: the attribute type.
    ///   - text: the text; RFC 2865 §5 text is UTF-8.
    /// - Returns: the attribute.
    public static func text(_ type: RADIUSAttributeType, _ text: String) -> RADIUSAttribute {
        RADIUSAttribute(type, Array(text.utf8))
    }

    /// An integer attribute: four octets, most significant first (RFC 2865 §5).
    /// - Parameters:
    ///   - type: the attribute type (Session-Timeout, Service-Type, …).
    ///   - value: the number.
    /// - Returns: the attribute.
    public static func integer(_ type: RADIUSAttributeType, _ value: UInt32) -> RADIUSAttribute {
        RADIUSAttribute(
            type,
            [
                UInt8(value >> 24), UInt8((value >> 16) & 0xff), UInt8((value >> 8) & 0xff),
                UInt8(value & 0xff),
            ])
    }

    /// A State attribute (RFC 2865 §5.24) carrying opaque bytes the NAS echoes back.
    /// - Parameter bytes: 1…253 octets.
    /// - Returns: the attribute.
    public static func state(_ bytes: [UInt8]) -> RADIUSAttribute { RADIUSAttribute(.state, bytes) }

    /// Reply-Message attributes for a text of any length (RFC 2865 §5.18): a text longer than 253 octets is split
    /// into several attributes, at character boundaries so that each one is valid UTF-8 by itself.
    /// - Parameter text: the message for the person at the terminal.
    /// - Returns: the attributes in order; none for an empty text (Reply-Message must hold at least one octet).
    public static func replyMessages(_ text: String) -> [RADIUSAttribute] {
        var attributes: [RADIUSAttribute] = []
        var chunk: [UInt8] = []
        for scalar in text.unicodeScalars {
            let encoded = Array(String(scalar).utf8)
            if chunk.count + encoded.count > maximumValueLength {
                attributes.append(RADIUSAttribute(.replyMessage, chunk))
                chunk = []
            }
            chunk.append(contentsOf: encoded)
        }
        if !chunk.isEmpty { attributes.append(RADIUSAttribute(.replyMessage, chunk)) }
        return attributes
    }

    /// The value read as a four-octet integer.
    /// - Returns: the number, or `nil` when the value is not exactly four octets.
    public var integerValue: UInt32? {
        guard value.count == 4 else { return nil }
        return value.reduce(0) { ($0 << 8) | UInt32($1) }
    }

    /// The value read as UTF-8 text.
    /// - Returns: the text, or `nil` when the value is not valid UTF-8.
    public var textValue: String? { String(bytes: value, encoding: .utf8) }
}

extension RADIUSPacket {
    /// The value of the first attribute of a type.
    /// - Parameter type: the attribute type.
    /// - Returns: its value, or `nil` when the packet has none.
    public func value(of type: RADIUSAttributeType) -> [UInt8]? {
        attributes.first { $0.type == type }?.value
    }

    /// The values of every attribute of a type, in packet order.
    /// - Parameter type: the attribute type.
    /// - Returns: the values; empty when there are none.
    public func values(of type: RADIUSAttributeType) -> [[UInt8]] {
        attributes.filter { $0.type == type }.map(\.value)
    }

    /// Whether the packet holds at least one attribute of a type.
    /// - Parameter type: the attribute type.
    /// - Returns: `true` when one is present.
    public func contains(_ type: RADIUSAttributeType) -> Bool {
        attributes.contains { $0.type == type }
    }

    private func text(_ type: RADIUSAttributeType) -> String? {
        attributes.first { $0.type == type }?.textValue
    }

    private func integer(_ type: RADIUSAttributeType) -> UInt32? {
        attributes.first { $0.type == type }?.integerValue
    }

    /// User-Name (RFC 2865 §5.1) as text; `nil` when absent or not UTF-8.
    public var userName: String? { text(.userName) }
    /// The hidden User-Password octets as sent (RFC 2865 §5.2); see ``userPassword(secret:)`` to reveal them.
    public var hiddenUserPassword: [UInt8]? { value(of: .userPassword) }
    /// NAS-IP-Address (RFC 2865 §5.4) in dotted-quad form.
    public var nasIPAddress: String? {
        guard let bytes = value(of: .nasIPAddress), bytes.count == 4 else { return nil }
        return bytes.map(String.init).joined(separator: ".")
    }
    /// NAS-Port (RFC 2865 §5.5).
    public var nasPort: UInt32? { integer(.nasPort) }
    /// Service-Type (RFC 2865 §5.6).
    public var serviceType: UInt32? { integer(.serviceType) }
    /// Filter-Id (RFC 2865 §5.11) as text.
    public var filterID: String? { text(.filterID) }
    /// Every Reply-Message (RFC 2865 §5.18), in order; a long message spans several of them.
    public var replyMessages: [String] { values(of: .replyMessage).map { String(decoding: $0, as: UTF8.self) } }
    /// State (RFC 2865 §5.24), opaque bytes.
    public var state: [UInt8]? { value(of: .state) }
    /// Every Class (RFC 2865 §5.25), in order.
    public var classes: [[UInt8]] { values(of: .class) }
    /// Every Vendor-Specific attribute (RFC 2865 §5.26), raw (Vendor-Id followed by the vendor's data).
    public var vendorSpecific: [[UInt8]] { values(of: .vendorSpecific) }
    /// Session-Timeout in seconds (RFC 2865 §5.27).
    public var sessionTimeout: UInt32? { integer(.sessionTimeout) }
    /// Called-Station-Id (RFC 2865 §5.30) as text.
    public var calledStationID: String? { text(.calledStationID) }
    /// Calling-Station-Id (RFC 2865 §5.31) as text, often the client's IP or MAC address.
    public var callingStationID: String? { text(.callingStationID) }
    /// NAS-Identifier (RFC 2865 §5.32) as text.
    public var nasIdentifier: String? { text(.nasIdentifier) }
    /// NAS-Port-Type (RFC 2865 §5.41).
    public var nasPortType: UInt32? { integer(.nasPortType) }
    /// The Message-Authenticator value (RFC 2869 §5.14), 16 octets.
    public var messageAuthenticator: [UInt8]? { value(of: .messageAuthenticator) }
    /// Whether the request carries EAP (RFC 3579), which Twofold does not serve.
    public var hasEAPMessage: Bool { contains(.eapMessage) }
    /// Whether the request uses CHAP (RFC 2865 §5.3), which Twofold does not serve.
    public var hasCHAPPassword: Bool { contains(.chapPassword) }
}
