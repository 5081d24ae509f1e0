import Crypto
import Foundation

/// Hiding and revealing User-Password (RFC 2865 §5.2).
///
/// With the shared secret S and the Request Authenticator RA, the password is padded with NULs to a multiple of
/// 16 octets and split into p1, p2, …; then b1 = MD5(S + RA), c(1) = p1 xor b1, b(i) = MD5(S + c(i-1)),
/// c(i) = p(i) xor b(i). The attribute carries c(1) + c(2) + ….
public enum RADIUSUserPassword {
    /// The longest password RFC 2865 §5.2 can carry.
    public static let maximumLength = 128

    /// Hides a password for an Access-Request.
    /// - Parameters:
    ///   - password: the clear password, 0…128 octets (an empty one is sent as one block of NULs).
    ///   - secret: the shared secret.
    ///   - requestAuthenticator: the request's 16-octet Request Authenticator.
    /// - Returns: the User-Password value, 16…128 octets.
    /// - Throws: ``RADIUSError`` `.passwordTooLong` beyond 128 octets.
    public static func hide(
        _ password: [UInt8], secret: RADIUSSharedSecret,
        requestAuthenticator: [UInt8]
    ) throws -> [UInt8] {
        guard password.count <= maximumLength else {
            throw RADIUSError(.passwordTooLong, "The password has \(password.count) octets; RFC 2865 §5.2 allows 128.")
        }
        let blocks = max(1, (password.count + 15) / 16)
        var padded = password + Array(repeating: 0, count: blocks * 16 - password.count)
        var chain = requestAuthenticator
        for block in 0..<blocks {
            let pad = md5(secret.bytes + chain)
            for index in 0..<16 { padded[block * 16 + index] ^= pad[index] }
            chain = Array(padded[(block * 16)..<(block * 16 + 16)])
        }
        return padded
    }

    /// Reveals a hidden password from an Access-Request, stripping the NUL padding.
    /// - Parameters:
    ///   - hidden: the User-Password value, 16…128 octets in whole blocks of 16.
    ///   - secret: the shared secret.
    ///   - requestAuthenticator: the request's Request Authenticator.
    /// - Returns: the clear password octets (with a wrong secret, meaningless octets: RFC 2865 §5.2 has no check).
    /// - Throws: ``RADIUSError`` `.badAttribute(2)` when the value is not 16…128 octets in blocks of 16.
    public static func unhide(
        _ hidden: [UInt8], secret: RADIUSSharedSecret,
        requestAuthenticator: [UInt8]
    ) throws -> [UInt8] {
        guard (16...maximumLength).contains(hidden.count), hidden.count % 16 == 0 else {
            throw RADIUSError(
                .badAttribute(RADIUSAttributeType.userPassword.rawValue),
                "A hidden User-Password must be 16…128 octets in blocks of 16; it has \(hidden.count).")
        }
        var clear = hidden
        var chain = requestAuthenticator
        for block in 0..<(hidden.count / 16) {
            let pad = md5(secret.bytes + chain)
            for index in 0..<16 { clear[block * 16 + index] ^= pad[index] }
            chain = Array(hidden[(block * 16)..<(block * 16 + 16)])
        }
        while clear.last == 0 { clear.removeLast() }
        return clear
    }

    static func md5(_ bytes: [UInt8]) -> [UInt8] { Array(Insecure.MD5.hash(data: bytes)) }
}

extension RADIUSPacket {
    /// The clear User-Password of this Access-Request (RFC 2865 §5.2).
    /// - Parameter secret: the client's shared secret.
    /// - Returns: the password octets, or `nil` when the packet has no User-Password.
    /// - Throws: ``RADIUSError`` `.badAttribute(2)` when the hidden value has an impossible length.
    public func userPassword(secret: RADIUSSharedSecret) throws -> [UInt8]? {
        guard let hidden = hiddenUserPassword else { return nil }
        return try RADIUSUserPassword.unhide(hidden, secret: secret, requestAuthenticator: authenticator)
    }
}
