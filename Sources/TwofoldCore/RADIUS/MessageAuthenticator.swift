import Crypto
import Foundation

extension RADIUSPacket {
    /// HMAC-MD5 of the packet under the shared secret with every Message-Authenticator value set to 16 zero octets
    /// and the authenticator field replaced by `authenticatorField` (RFC 2869 §5.14, RFC 3579 §3.2).
    func computeMessageAuthenticator(authenticatorField: [UInt8], secret: RADIUSSharedSecret) throws -> [UInt8] {
        var zeroed = self
        zeroed.authenticator = authenticatorField
        for index in zeroed.attributes.indices where zeroed.attributes[index].type == .messageAuthenticator {
            zeroed.attributes[index].value = Array(repeating: 0, count: 16)
        }
        let key = SymmetricKey(data: secret.bytes)
        return Array(HMAC<Insecure.MD5>.authenticationCode(for: try zeroed.encoded(), using: key))
    }

    /// MD5(Code + ID + Length + RequestAuth + Attributes + Secret), the Response Authenticator (RFC 2865 §3).
    func computeResponseAuthenticator(requestAuthenticator: [UInt8], secret: RADIUSSharedSecret) throws -> [UInt8] {
        var withRequestAuthenticator = self
        withRequestAuthenticator.authenticator = requestAuthenticator
        return RADIUSUserPassword.md5(try withRequestAuthenticator.encoded() + secret.bytes)
    }

    /// Checks the Message-Authenticator of a request a NAS sent (RFC 2869 §5.14, RFC 3579 §3.2). Twofold requires
    /// one on every request as the Blast-RADIUS (CVE-2024-3596) mitigation. The comparison is constant-time.
    /// - Parameter secret: the shared secret of the client the datagram came from.
    /// - Throws: ``RADIUSError`` `.missingMessageAuthenticator`, `.badMessageAuthenticator`, or
    ///   `.unsupportedCode` for a packet that is not an Access-Request or Status-Server.
    public func verifyRequest(secret: RADIUSSharedSecret) throws {
        guard code == .accessRequest || code == .statusServer else {
            throw RADIUSError(
                .unsupportedCode(code.rawValue),
                "Only Access-Request and Status-Server are verified as requests.")
        }
        guard let received = messageAuthenticator else {
            throw RADIUSError(.missingMessageAuthenticator, "The request carries no Message-Authenticator.")
        }
        let expected = try computeMessageAuthenticator(authenticatorField: authenticator, secret: secret)
        guard ConstantTime.equals(received, expected) else {
            throw RADIUSError(.badMessageAuthenticator, "The Message-Authenticator does not match the shared secret.")
        }
    }

    /// Builds the answer to a request (RFC 2865 §3, RFC 2869 §5.14), with the Blast-RADIUS (CVE-2024-3596)
    /// mitigation: Message-Authenticator is the first attribute. It is computed over the packet with the request's
    /// authenticator in the authenticator field (RFC 3579 §3.2), then the Response Authenticator is computed and set.
    /// Proxy-State attributes of the request are copied in order at the end (RFC 2865 §5.33) unless `attributes`
    /// already holds some.
    /// - Parameters:
    ///   - request: the request being answered; its Identifier and Request Authenticator are used.
    ///   - code: Access-Accept, Access-Reject or Access-Challenge.
    ///   - attributes: the reply attributes; any Message-Authenticator among them is replaced.
    ///   - secret: the client's shared secret.
    /// - Returns: the complete response, ready for ``encoded()``.
    /// - Throws: ``RADIUSError`` `.unsupportedCode` for any other code; `.badLength`/`.badAttribute` when the
    ///   response cannot be encoded (over 4096 octets, or a value over 253).
    public static func response(
        to request: RADIUSPacket, code: RADIUSCode, attributes: [RADIUSAttribute],
        secret: RADIUSSharedSecret
    ) throws -> RADIUSPacket {
        guard [.accessAccept, .accessReject, .accessChallenge].contains(code) else {
            throw RADIUSError(
                .unsupportedCode(code.rawValue),
                "A response must be Access-Accept, Access-Reject or Access-Challenge.")
        }
        var replies = attributes.filter { $0.type != .messageAuthenticator }
        if !replies.contains(where: { $0.type == .proxyState }) {
            replies += request.attributes.filter { $0.type == .proxyState }
        }
        var response = RADIUSPacket(
            code: code, identifier: request.identifier, authenticator: request.authenticator,
            attributes: [RADIUSAttribute(.messageAuthenticator, Array(repeating: 0, count: 16))]
                + replies)
        response.attributes[0].value = try response.computeMessageAuthenticator(
            authenticatorField: request.authenticator, secret: secret)
        response.authenticator = try response.computeResponseAuthenticator(
            requestAuthenticator: request.authenticator, secret: secret)
        return response
    }

    /// Checks a response as a client would: it answers `request` (same Identifier), carries a Message-Authenticator,
    /// and both its Response Authenticator (RFC 2865 §3) and Message-Authenticator (RFC 3579 §3.2) verify.
    /// Comparisons are constant-time.
    /// - Parameters:
    ///   - request: the request this packet claims to answer.
    ///   - secret: the shared secret.
    /// - Throws: ``RADIUSError`` `.identifierMismatch`, `.missingMessageAuthenticator`,
    ///   `.badResponseAuthenticator` or `.badMessageAuthenticator`.
    public func verifyResponse(to request: RADIUSPacket, secret: RADIUSSharedSecret) throws {
        guard identifier == request.identifier else {
            throw RADIUSError(
                .identifierMismatch,
                "Response \(identifier) does not answer request \(request.identifier).")
        }
        guard let received = messageAuthenticator else {
            throw RADIUSError(.missingMessageAuthenticator, "The response carries no Message-Authenticator.")
        }
        try verifyResponseAuthenticator(to: request, secret: secret)
        let expected = try computeMessageAuthenticator(authenticatorField: request.authenticator, secret: secret)
        guard ConstantTime.equals(received, expected) else {
            throw RADIUSError(.badMessageAuthenticator, "The response's Message-Authenticator does not verify.")
        }
    }

    /// Checks only the Response Authenticator (RFC 2865 §3), for responses from peers that send no
    /// Message-Authenticator, such as the RFC 2865 §7 examples. Prefer ``verifyResponse(to:secret:)``.
    /// - Parameters:
    ///   - request: the request this packet claims to answer.
    ///   - secret: the shared secret.
    /// - Throws: ``RADIUSError`` `.badResponseAuthenticator`.
    public func verifyResponseAuthenticator(to request: RADIUSPacket, secret: RADIUSSharedSecret) throws {
        let expected = try computeResponseAuthenticator(requestAuthenticator: request.authenticator, secret: secret)
        guard ConstantTime.equals(authenticator, expected) else {
            throw RADIUSError(.badResponseAuthenticator, "The Response Authenticator does not verify.")
        }
    }

    /// Builds an Access-Request the way a NAS would (for tests and the benchmark client): a random Request
    /// Authenticator (RFC 2865 §3), Message-Authenticator first (RFC 3579 §3.2), then User-Name, the hidden
    /// User-Password (RFC 2865 §5.2), State, and the extra attributes.
    /// - Parameters:
    ///   - identifier: the Identifier.
    ///   - userName: the User-Name.
    ///   - password: the clear password (0…128 octets), or `nil` to send none.
    ///   - state: the State from an Access-Challenge, if answering one.
    ///   - attributes: further attributes (NAS-Identifier, Calling-Station-Id, …).
    ///   - secret: the shared secret.
    ///   - randomBytes: the random source for the Request Authenticator (asked for 16 octets); inject it in tests.
    /// - Returns: the request, ready for ``encoded()``.
    /// - Throws: ``RADIUSError`` `.passwordTooLong`, or `.badLength`/`.badAttribute` when it cannot be encoded.
    public static func accessRequest(
        identifier: UInt8, userName: String, password: [UInt8]?, state: [UInt8]? = nil,
        attributes: [RADIUSAttribute] = [], secret: RADIUSSharedSecret,
        randomBytes: (Int) -> [UInt8] = SecureRandom.bytes
    ) throws -> RADIUSPacket {
        let requestAuthenticator = randomBytes(16)
        var list = [RADIUSAttribute.text(.userName, userName)]
        if let password {
            list.append(
                RADIUSAttribute(
                    .userPassword,
                    try RADIUSUserPassword.hide(
                        password, secret: secret, requestAuthenticator: requestAuthenticator)))
        }
        if let state { list.append(.state(state)) }
        return try signedRequest(
            code: .accessRequest, identifier: identifier, authenticator: requestAuthenticator,
            attributes: list + attributes, secret: secret)
    }

    /// Builds a Status-Server request (RFC 5997 §3), which must carry a Message-Authenticator.
    /// - Parameters:
    ///   - identifier: the Identifier.
    ///   - attributes: further attributes (usually NAS-Identifier).
    ///   - secret: the shared secret.
    ///   - randomBytes: the random source for the Request Authenticator.
    /// - Returns: the request.
    /// - Throws: ``RADIUSError`` `.badLength`/`.badAttribute` when it cannot be encoded.
    public static func statusServer(
        identifier: UInt8, attributes: [RADIUSAttribute] = [], secret: RADIUSSharedSecret,
        randomBytes: (Int) -> [UInt8] = SecureRandom.bytes
    ) throws -> RADIUSPacket {
        try signedRequest(
            code: .statusServer, identifier: identifier, authenticator: randomBytes(16),
            attributes: attributes, secret: secret)
    }

    static func signedRequest(
        code: RADIUSCode, identifier: UInt8, authenticator: [UInt8],
        attributes: [RADIUSAttribute], secret: RADIUSSharedSecret
    ) throws -> RADIUSPacket {
        var request = RADIUSPacket(
            code: code, identifier: identifier, authenticator: authenticator,
            attributes: [RADIUSAttribute(.messageAuthenticator, Array(repeating: 0, count: 16))]
                + attributes.filter { $0.type != .messageAuthenticator })
        request.attributes[0].value = try request.computeMessageAuthenticator(
            authenticatorField: authenticator,
            secret: secret)
        return request
    }
}
