import Foundation
import Testing

@testable import TwofoldCore

/// Packets and helpers shared by the RADIUS codec and fuzz tests.
enum RADIUSFixtures {
    /// Octets from hex text; spaces and newlines are ignored.
    static func hex(_ text: String) -> [UInt8] {
        let digits = Array(text.filter(\.isHexDigit))
        return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...$0 + 1]), radix: 16)! }
    }

    /// The shared secret of RFC 2865 §7.1.
    static let rfcSecret = RADIUSSharedSecret("xyzzy5461")

    /// RFC 2865 §7.1 "User Telnet to Specified Host": Access-Request from NAS 192.168.1.16 for user nemo on port 3
    /// with password "arctangent", shared secret "xyzzy5461".
    static let rfc71Request = hex(
        """
        01 00 00 38 0f 40 3f 94 73 97 80 57 bd 83 d5 cb
        98 f4 22 7a 01 06 6e 65 6d 6f 02 12 0d be 70 8d
        93 d4 13 ce 31 96 e4 3f 78 2a 0a ee 04 06 c0 a8
        01 10 05 06 00 00 00 03
        """)

    /// RFC 2865 §7.1: the Access-Accept (Service-Type Login, Login-Service Telnet, Login-IP-Host 192.168.1.3).
    static let rfc71Accept = hex(
        """
        02 00 00 26 86 fe 22 0e 76 24 ba 2a 10 05 f6 bf
        9b 55 e0 b2 06 06 00 00 00 01 0f 06 00 00 00 00
        0e 06 c0 a8 01 03
        """)

    /// RFC 2865 §7.2 "Framed User Authenticating with CHAP": Access-Request for flopsy with CHAP-Password (CHAP ID
    /// 22), NAS-Port 20, Service-Type Framed, Framed-Protocol PPP. (The RFC gives no secret for §7.2, so its
    /// Access-Accept cannot be verified; only the request is used.)
    static let rfc72CHAPRequest = hex(
        """
        01 01 00 47 2a ee 86 f0 8d 0d 55 96 9c a5 97 8e
        0d 33 67 a2 01 08 66 6c 6f 70 73 79 03 13 16 e9
        75 57 c3 16 18 58 95 f2 93 ff 63 44 07 72 75 04
        06 c0 a8 01 10 05 06 00 00 00 14 06 06 00 00 00
        02 07 06 00 00 00 01
        """)

    /// RFC 2865 §7.3 "User with Challenge-Response card": the Access-Challenge with a Reply-Message and State.
    static let rfc73Challenge = hex(
        """
        0b 02 00 4e 36 f3 c8 76 4a e8 c7 11 57 40 3c 0c
        71 ff 9c 45 12 30 43 68 61 6c 6c 65 6e 67 65 20
        33 32 37 36 39 34 33 30 2e 20 20 45 6e 74 65 72
        20 72 65 73 70 6f 6e 73 65 20 61 74 20 70 72 6f
        6d 70 74 2e 18 0a 33 32 37 36 39 34 33 30
        """)

    /// The secret of the independently computed vectors below.
    static let vectorSecret = RADIUSSharedSecret("twofold-radius-test-secret")
    /// The Request Authenticator of those vectors: octets 0x00…0x0f.
    static let vectorAuthenticator = Array(UInt8(0)...UInt8(15))

    /// An Access-Request (Identifier 42, Request Authenticator 00…0f) with Message-Authenticator first, User-Name
    /// "alice", User-Password "123456" and NAS-Identifier "vpn-1", computed with Python's hashlib/hmac alone, not
    /// with this codec:
    ///
    ///     python3 -c 'import hashlib,hmac
    ///     S=b"twofold-radius-test-secret";RA=bytes(range(16))
    ///     up=bytes(a^b for a,b in zip(b"123456".ljust(16,b"\0"),hashlib.md5(S+RA).digest()))
    ///     A=lambda m:bytes([80,18])+m+bytes([1,7])+b"alice"+bytes([2,18])+up+bytes([32,7])+b"vpn-1"
    ///     B=A(bytes(16));H=bytes([1,42])+(20+len(B)).to_bytes(2,"big")
    ///     print((H+RA+A(hmac.new(S,H+RA+B,hashlib.md5).digest())).hex())'
    static let pythonRequest = hex(
        """
        012a0046000102030405060708090a0b0c0d0e0f50125037d7b0bf71c259c472e82c63ae86d20107616c6963650212ba1f57ab8604825d\
        13f1f05beeac70cf200776706e2d31
        """)

    /// The Access-Accept answering ``pythonRequest`` with Message-Authenticator first (HMAC-MD5 with the request's
    /// authenticator in the field), Reply-Message "Welcome" and Class "staff", then the Response Authenticator:
    ///
    ///     python3 -c 'import hashlib,hmac
    ///     S=b"twofold-radius-test-secret";RA=bytes(range(16))
    ///     A=lambda m:bytes([80,18])+m+bytes([18,9])+b"Welcome"+bytes([25,7])+b"staff"
    ///     B=A(bytes(16));H=bytes([2,42])+(20+len(B)).to_bytes(2,"big")
    ///     P=H+RA+A(hmac.new(S,H+RA+B,hashlib.md5).digest())
    ///     print((H+hashlib.md5(P+S).digest()+P[20:]).hex())'
    static let pythonAccept = hex(
        """
        022a003658ad93523c21fb2e585ff873dfcf97395012f265ac1596736c4f9326a6bb081d76f7120957656c636f6d6519077374616666
        """)

    /// A random source that always answers the vectors' Request Authenticator.
    static func fixedRandom(_ count: Int) -> [UInt8] { Array(vectorAuthenticator.prefix(count)) }

    /// A header (Length computed unless overridden) followed by raw attribute octets.
    static func datagram(code: UInt8 = 1, attributes: [UInt8], length: Int? = nil) -> [UInt8] {
        let total = length ?? 20 + attributes.count
        return [code, 7, UInt8((total >> 8) & 0xff), UInt8(total & 0xff)] + Array(repeating: 0xAB, count: 16) + attributes
    }

    /// One raw attribute.
    static func attribute(_ type: UInt8, _ value: [UInt8]) -> [UInt8] { [type, UInt8(value.count + 2)] + value }
}

/// Runs `body` and checks that it throws a ``RADIUSError`` with `code`.
func expectRADIUSError(
    _ code: RADIUSError.Code, sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("Expected RADIUSError \(code), but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as RADIUSError {
        #expect(error.code == code, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("Expected RADIUSError \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

@Suite("RADIUS: RFC 2865 §7 example packets")
struct RADIUSRFCExampleTests {
    @Test func section71AccessRequestDecodesUnhidesAndReencodes() throws {
        // act
        let request = try RADIUSPacket(decoding: RADIUSFixtures.rfc71Request)
        // verify
        #expect(request.code == .accessRequest)
        #expect(request.identifier == 0)
        #expect(request.authenticator == RADIUSFixtures.hex("0f403f9473978057bd83d5cb98f4227a"))
        #expect(request.attributes.map(\.type) == [.userName, .userPassword, .nasIPAddress, .nasPort])
        #expect(request.userName == "nemo")
        #expect(request.nasIPAddress == "192.168.1.16")
        #expect(request.nasPort == 3)
        #expect(try request.userPassword(secret: RADIUSFixtures.rfcSecret) == Array("arctangent".utf8))
        #expect(try request.encoded() == RADIUSFixtures.rfc71Request)
    }

    @Test func section71PasswordHidesToTheRFCOctets() throws {
        let requestAuthenticator = RADIUSFixtures.hex("0f403f9473978057bd83d5cb98f4227a")
        let hidden = try RADIUSUserPassword.hide(
            Array("arctangent".utf8), secret: RADIUSFixtures.rfcSecret,
            requestAuthenticator: requestAuthenticator)
        #expect(hidden == RADIUSFixtures.hex("0dbe708d93d413ce3196e43f782a0aee"))
    }

    @Test func section71AccessAcceptDecodesAndItsResponseAuthenticatorVerifies() throws {
        // setup
        let request = try RADIUSPacket(decoding: RADIUSFixtures.rfc71Request)
        // act
        let accept = try RADIUSPacket(decoding: RADIUSFixtures.rfc71Accept)
        // verify
        #expect(accept.code == .accessAccept)
        #expect(accept.identifier == 0)
        #expect(accept.serviceType == 1)
        #expect(accept.value(of: RADIUSAttributeType(15)) == [0, 0, 0, 0])
        #expect(accept.value(of: RADIUSAttributeType(14)) == [192, 168, 1, 3])
        #expect(try accept.encoded() == RADIUSFixtures.rfc71Accept)
        try accept.verifyResponseAuthenticator(to: request, secret: RADIUSFixtures.rfcSecret)
        expectRADIUSError(.badResponseAuthenticator) {
            try accept.verifyResponseAuthenticator(to: request, secret: RADIUSSharedSecret("xyzzy5462"))
        }
        // The RFC predates RFC 3579: its Accept has no Message-Authenticator, which a Blast-RADIUS-aware client refuses.
        expectRADIUSError(.missingMessageAuthenticator) {
            try accept.verifyResponse(to: request, secret: RADIUSFixtures.rfcSecret)
        }
    }

    @Test func section71RequestHasNoMessageAuthenticator() throws {
        let request = try RADIUSPacket(decoding: RADIUSFixtures.rfc71Request)
        expectRADIUSError(.missingMessageAuthenticator) { try request.verifyRequest(secret: RADIUSFixtures.rfcSecret) }
    }

    @Test func section72CHAPRequestIsRecognised() throws {
        let request = try RADIUSPacket(decoding: RADIUSFixtures.rfc72CHAPRequest)
        #expect(request.identifier == 1)
        #expect(request.userName == "flopsy")
        #expect(request.hasCHAPPassword)
        #expect(request.value(of: .chapPassword)?.first == 22)
        #expect(request.nasPort == 20)
        #expect(request.serviceType == 2)
        #expect(request.value(of: RADIUSAttributeType(7)) == [0, 0, 0, 1])
        #expect(try request.encoded() == RADIUSFixtures.rfc72CHAPRequest)
    }

    @Test func section73ChallengeCarriesReplyMessageAndState() throws {
        let challenge = try RADIUSPacket(decoding: RADIUSFixtures.rfc73Challenge)
        #expect(challenge.code == .accessChallenge)
        #expect(challenge.identifier == 2)
        #expect(challenge.replyMessages == ["Challenge 32769430.  Enter response at prompt."])
        #expect(challenge.state == Array("32769430".utf8))
        #expect(try challenge.encoded() == RADIUSFixtures.rfc73Challenge)
    }
}

@Suite("RADIUS: Message-Authenticator and Response Authenticator")
struct RADIUSAuthenticatorTests {
    static let secret = RADIUSSharedSecret("a-shared-secret-of-at-least-32-characters")

    static func request() throws -> RADIUSPacket {
        try RADIUSPacket.accessRequest(
            identifier: 9, userName: "alice", password: Array("correct horse 123456".utf8),
            attributes: [.text(.nasIdentifier, "vpn"), .text(.callingStationID, "203.0.113.7")],
            secret: secret, randomBytes: RADIUSFixtures.fixedRandom)
    }

    /// Whether the bytes decode and verify as a request under ``secret``.
    static func requestVerifies(_ bytes: [UInt8]) -> Bool {
        guard let packet = try? RADIUSPacket(decoding: bytes) else { return false }
        return (try? packet.verifyRequest(secret: secret)) != nil
    }

    /// Whether the bytes decode and verify as a response to `request` under ``secret``.
    static func responseVerifies(_ bytes: [UInt8], to request: RADIUSPacket) -> Bool {
        guard let packet = try? RADIUSPacket(decoding: bytes) else { return false }
        return (try? packet.verifyResponse(to: request, secret: secret)) != nil
    }

    @Test func builtRequestPutsMessageAuthenticatorFirstAndVerifies() throws {
        // act
        let request = try Self.request()
        let bytes = try request.encoded()
        // verify
        #expect(request.attributes.first?.type == .messageAuthenticator)
        #expect(
            request.attributes.map(\.type) == [
                .messageAuthenticator, .userName, .userPassword, .nasIdentifier,
                .callingStationID,
            ])
        #expect(request.authenticator == RADIUSFixtures.vectorAuthenticator)
        #expect(Self.requestVerifies(bytes))
        let decoded = try RADIUSPacket(decoding: bytes)
        #expect(decoded == request)
        #expect(try decoded.userPassword(secret: Self.secret) == Array("correct horse 123456".utf8))
    }

    @Test func requestAuthenticatorComesFromTheInjectedRandomSource() throws {
        let first = try RADIUSPacket.accessRequest(
            identifier: 1, userName: "a", password: nil, secret: Self.secret,
            randomBytes: { Array(repeating: 0x11, count: $0) })
        let second = try RADIUSPacket.accessRequest(
            identifier: 1, userName: "a", password: nil, secret: Self.secret,
            randomBytes: { Array(repeating: 0x22, count: $0) })
        #expect(first.authenticator == Array(repeating: 0x11, count: 16))
        #expect(second.authenticator == Array(repeating: 0x22, count: 16))
        #expect(first.messageAuthenticator != second.messageAuthenticator)
    }

    @Test func flippingAnyByteOfARequestBreaksVerification() throws {
        let bytes = try Self.request().encoded()
        #expect(Self.requestVerifies(bytes))
        for index in bytes.indices {
            for mask: UInt8 in [0x01, 0x80, 0xFF] {
                var tampered = bytes
                tampered[index] ^= mask
                #expect(!Self.requestVerifies(tampered), "byte \(index) xor \(mask) still verifies")
            }
        }
    }

    @Test func requestWithoutMessageAuthenticatorIsRefused() throws {
        var request = try Self.request()
        request.attributes.removeAll { $0.type == .messageAuthenticator }
        let decoded = try RADIUSPacket(decoding: try request.encoded())
        expectRADIUSError(.missingMessageAuthenticator) { try decoded.verifyRequest(secret: Self.secret) }
    }

    @Test func requestUnderAnotherSecretIsRefused() throws {
        let request = try Self.request()
        expectRADIUSError(.badMessageAuthenticator) {
            try request.verifyRequest(secret: RADIUSSharedSecret("another-secret"))
        }
    }

    @Test func onlyRequestsAreVerifiedAsRequests() throws {
        let request = try Self.request()
        let accept = try RADIUSPacket.response(to: request, code: .accessAccept, attributes: [], secret: Self.secret)
        expectRADIUSError(.unsupportedCode(2)) { try accept.verifyRequest(secret: Self.secret) }
    }

    @Test func statusServerCarriesAVerifiedMessageAuthenticator() throws {
        let status = try RADIUSPacket.statusServer(
            identifier: 3, attributes: [.text(.nasIdentifier, "probe")],
            secret: Self.secret, randomBytes: RADIUSFixtures.fixedRandom)
        #expect(status.code == .statusServer)
        #expect(status.attributes.first?.type == .messageAuthenticator)
        try RADIUSPacket(decoding: try status.encoded()).verifyRequest(secret: Self.secret)
    }

    @Test func pythonComputedRequestMatchesTheBuilderAndVerifies() throws {
        // act
        let built = try RADIUSPacket.accessRequest(
            identifier: 42, userName: "alice", password: Array("123456".utf8),
            attributes: [.text(.nasIdentifier, "vpn-1")], secret: RADIUSFixtures.vectorSecret,
            randomBytes: RADIUSFixtures.fixedRandom)
        // verify
        #expect(try built.encoded() == RADIUSFixtures.pythonRequest)
        let decoded = try RADIUSPacket(decoding: RADIUSFixtures.pythonRequest)
        try decoded.verifyRequest(secret: RADIUSFixtures.vectorSecret)
        #expect(try decoded.userPassword(secret: RADIUSFixtures.vectorSecret) == Array("123456".utf8))
        #expect(decoded.nasIdentifier == "vpn-1")
    }

    @Test func pythonComputedAcceptMatchesTheResponseBuilderAndVerifies() throws {
        // setup
        let request = try RADIUSPacket(decoding: RADIUSFixtures.pythonRequest)
        // act
        let accept = try RADIUSPacket.response(
            to: request, code: .accessAccept,
            attributes: RADIUSAttribute.replyMessages("Welcome")
                + [RADIUSAttribute(.class, Array("staff".utf8))],
            secret: RADIUSFixtures.vectorSecret)
        // verify
        #expect(try accept.encoded() == RADIUSFixtures.pythonAccept)
        try RADIUSPacket(decoding: RADIUSFixtures.pythonAccept).verifyResponse(
            to: request,
            secret: RADIUSFixtures.vectorSecret)
    }

    @Test(arguments: [RADIUSCode.accessAccept, .accessReject, .accessChallenge])
    func responsePutsMessageAuthenticatorFirstAndVerifies(code: RADIUSCode) throws {
        // setup
        let request = try Self.request()
        // act
        let response = try RADIUSPacket.response(
            to: request, code: code,
            attributes: RADIUSAttribute.replyMessages("Enter the code") + [.state([1, 2, 3])], secret: Self.secret)
        let bytes = try response.encoded()
        // verify
        #expect(response.code == code)
        #expect(response.identifier == request.identifier)
        #expect(response.attributes.first?.type == .messageAuthenticator)
        #expect(bytes[20] == 80 && bytes[21] == 18)
        #expect(Self.responseVerifies(bytes, to: request))
    }

    @Test func flippingAnyByteOfAResponseBreaksVerification() throws {
        let request = try Self.request()
        let bytes = try RADIUSPacket.response(
            to: request, code: .accessAccept,
            attributes: [RADIUSAttribute(.class, [9, 9])], secret: Self.secret
        ).encoded()
        for index in bytes.indices {
            for mask: UInt8 in [0x01, 0x80] {
                var tampered = bytes
                tampered[index] ^= mask
                #expect(!Self.responseVerifies(tampered, to: request), "byte \(index) xor \(mask) still verifies")
            }
        }
    }

    @Test func responseIsCheckedAgainstItsOwnRequestAndSecret() throws {
        // setup
        let request = try Self.request()
        let accept = try RADIUSPacket.response(to: request, code: .accessAccept, attributes: [], secret: Self.secret)
        var otherRequest = request
        otherRequest.authenticator = Array(repeating: 0x5A, count: 16)
        var otherIdentifier = request
        otherIdentifier.identifier = 10
        // verify
        expectRADIUSError(.badResponseAuthenticator) { try accept.verifyResponse(to: otherRequest, secret: Self.secret) }
        expectRADIUSError(.identifierMismatch) { try accept.verifyResponse(to: otherIdentifier, secret: Self.secret) }
        expectRADIUSError(.badResponseAuthenticator) {
            try accept.verifyResponse(to: request, secret: RADIUSSharedSecret("wrong"))
        }
    }

    @Test func responseWithOnlyABadMessageAuthenticatorIsRefused() throws {
        // A forger who could fix the Response Authenticator (the Blast-RADIUS MD5 collision) still fails the HMAC.
        let request = try Self.request()
        var accept = try RADIUSPacket.response(to: request, code: .accessAccept, attributes: [], secret: Self.secret)
        accept.attributes[0].value[0] ^= 1
        accept.authenticator = try accept.computeResponseAuthenticator(
            requestAuthenticator: request.authenticator,
            secret: Self.secret)
        expectRADIUSError(.badMessageAuthenticator) { try accept.verifyResponse(to: request, secret: Self.secret) }
    }

    @Test func responseWithoutMessageAuthenticatorIsRefused() throws {
        let request = try Self.request()
        var accept = RADIUSPacket(code: .accessAccept, identifier: request.identifier, attributes: [])
        accept.authenticator = try accept.computeResponseAuthenticator(
            requestAuthenticator: request.authenticator,
            secret: Self.secret)
        try accept.verifyResponseAuthenticator(to: request, secret: Self.secret)
        expectRADIUSError(.missingMessageAuthenticator) { try accept.verifyResponse(to: request, secret: Self.secret) }
    }

    @Test func responseReplacesACallerMessageAuthenticatorAndCopiesProxyState() throws {
        // setup
        var request = try Self.request()
        request.attributes += [RADIUSAttribute(.proxyState, [1]), RADIUSAttribute(.proxyState, [2])]
        // act
        let response = try RADIUSPacket.response(
            to: request, code: .accessReject,
            attributes: [
                RADIUSAttribute(.replyMessage, [65]),
                RADIUSAttribute(.messageAuthenticator, [UInt8](repeating: 7, count: 16)),
            ],
            secret: Self.secret)
        // verify
        #expect(response.attributes.map(\.type) == [.messageAuthenticator, .replyMessage, .proxyState, .proxyState])
        #expect(response.values(of: .proxyState) == [[1], [2]])
        try response.verifyResponse(to: request, secret: Self.secret)
    }

    @Test func responseCodeMustBeAnAccessAnswer() throws {
        let request = try Self.request()
        expectRADIUSError(.unsupportedCode(1)) {
            _ = try RADIUSPacket.response(to: request, code: .accessRequest, attributes: [], secret: Self.secret)
        }
    }
}

@Suite("RADIUS: strict decoding, one test per failure mode")
struct RADIUSStrictDecodingTests {
    typealias F = RADIUSFixtures

    @Test func emptyDatagramIsTruncated() {
        expectRADIUSError(.truncated) { _ = try RADIUSPacket(decoding: []) }
    }

    @Test func headerShorterThan20IsTruncated() {
        expectRADIUSError(.truncated) { _ = try RADIUSPacket(decoding: Array(F.datagram(attributes: []).prefix(19))) }
    }

    @Test func lengthBelow20IsBadLength() {
        expectRADIUSError(.badLength) { _ = try RADIUSPacket(decoding: F.datagram(attributes: [0, 0], length: 19)) }
    }

    @Test func lengthAbove4096IsBadLength() {
        let bytes = F.datagram(attributes: Array(repeating: 0, count: 4080), length: 4097)
        expectRADIUSError(.badLength) { _ = try RADIUSPacket(decoding: bytes) }
    }

    @Test func lengthBeyondTheDatagramIsTruncated() {
        let bytes = F.datagram(attributes: F.attribute(1, Array("bob".utf8)), length: 26)
        expectRADIUSError(.truncated) { _ = try RADIUSPacket(decoding: bytes) }
    }

    @Test func octetsBeyondLengthAreIgnored() throws {
        // RFC 2865 §3: octets outside the range of the Length field are treated as padding.
        let packet = F.datagram(attributes: F.attribute(1, Array("bob".utf8)))
        let decoded = try RADIUSPacket(decoding: packet + [0xDE, 0xAD, 0xBE, 0xEF])
        #expect(decoded.userName == "bob")
        #expect(try decoded.encoded() == packet)
    }

    @Test func maximumLengthPacketDecodes() throws {
        let filler =
            (0..<15).flatMap { _ in F.attribute(200, Array(repeating: 1, count: 253)) }
            + F.attribute(201, Array(repeating: 2, count: 4096 - 20 - 15 * 255 - 2))
        let bytes = F.datagram(attributes: filler)
        #expect(bytes.count == 4096)
        #expect(try RADIUSPacket(decoding: bytes).encoded() == bytes)
    }

    @Test func unknownPacketCodeIsUnsupported() {
        expectRADIUSError(.unsupportedCode(99)) { _ = try RADIUSPacket(decoding: F.datagram(code: 99, attributes: [])) }
        expectRADIUSError(.unsupportedCode(0)) { _ = try RADIUSPacket(decoding: F.datagram(code: 0, attributes: [])) }
    }

    @Test func accountingCodesAreRecognised() throws {
        #expect(try RADIUSPacket(decoding: F.datagram(code: 4, attributes: [])).code == .accountingRequest)
        #expect(try RADIUSPacket(decoding: F.datagram(code: 5, attributes: [])).code == .accountingResponse)
    }

    @Test func attributeLengthZeroIsBad() {
        expectRADIUSError(.badAttribute(1)) { _ = try RADIUSPacket(decoding: F.datagram(attributes: [1, 0])) }
    }

    @Test func attributeLengthOneIsBad() {
        expectRADIUSError(.badAttribute(1)) { _ = try RADIUSPacket(decoding: F.datagram(attributes: [1, 1])) }
    }

    @Test func attributeWithoutALengthOctetIsBad() {
        expectRADIUSError(.badAttribute(18)) { _ = try RADIUSPacket(decoding: F.datagram(attributes: [18])) }
    }

    @Test func attributeOverrunningThePacketIsBad() {
        let bytes = F.datagram(attributes: [1, 6, 0x61, 0x62, 0x63])
        expectRADIUSError(.badAttribute(1)) { _ = try RADIUSPacket(decoding: bytes) }
    }

    @Test func attributeOverrunningLengthIntoPaddingIsBad() {
        // The attribute fits the datagram but not the Length field: the padding is not part of the packet.
        let bytes = F.datagram(attributes: F.attribute(1, Array("bob".utf8)), length: 24)
        expectRADIUSError(.badAttribute(1)) { _ = try RADIUSPacket(decoding: bytes) }
    }

    @Test(arguments: [UInt8(1), 2, 24, 80])
    func singletonAttributesMayNotRepeat(type: UInt8) {
        let value: [UInt8] = type == 2 || type == 80 ? Array(repeating: 0x41, count: 16) : [0x41]
        let bytes = F.datagram(attributes: F.attribute(type, value) + F.attribute(type, value))
        expectRADIUSError(.duplicateAttribute(type)) { _ = try RADIUSPacket(decoding: bytes) }
    }

    @Test func repeatableAttributesKeepOrderAndDuplicates() throws {
        let raw =
            F.attribute(18, [0x61]) + F.attribute(25, [1]) + F.attribute(18, [0x62]) + F.attribute(25, [2])
            + F.attribute(26, [0, 0, 0, 9, 1, 3, 0x78]) + F.attribute(26, [0, 0, 0, 9])
        let packet = try RADIUSPacket(decoding: F.datagram(code: 2, attributes: raw))
        #expect(packet.replyMessages == ["a", "b"])
        #expect(packet.classes == [[1], [2]])
        #expect(packet.vendorSpecific == [[0, 0, 0, 9, 1, 3, 0x78], [0, 0, 0, 9]])
        #expect(try packet.encoded() == F.datagram(code: 2, attributes: raw))
    }

    @Test func unknownAttributeTypesAreKept() throws {
        let raw = F.attribute(200, [1, 2, 3]) + F.attribute(241, []) + F.attribute(1, [0x78])
        let packet = try RADIUSPacket(decoding: F.datagram(attributes: raw))
        #expect(
            packet.attributes == [
                RADIUSAttribute(RADIUSAttributeType(200), [1, 2, 3]),
                RADIUSAttribute(RADIUSAttributeType(241), []), .text(.userName, "x"),
            ])
        #expect(try packet.encoded() == F.datagram(attributes: raw))
    }

    @Test func messageAuthenticatorOf15OctetsIsBad() {
        let bytes = F.datagram(attributes: F.attribute(80, Array(repeating: 0, count: 15)))
        expectRADIUSError(.badAttribute(80)) { _ = try RADIUSPacket(decoding: bytes) }
    }

    @Test func messageAuthenticatorOf17OctetsIsBad() {
        let bytes = F.datagram(attributes: F.attribute(80, Array(repeating: 0, count: 17)))
        expectRADIUSError(.badAttribute(80)) { _ = try RADIUSPacket(decoding: bytes) }
    }

    @Test(arguments: [0, 15, 17, 31, 144])
    func userPasswordOutsideWholeBlocksOf16To128IsBad(count: Int) {
        let bytes = F.datagram(attributes: F.attribute(2, Array(repeating: 0x55, count: count)))
        expectRADIUSError(.badAttribute(2)) { _ = try RADIUSPacket(decoding: bytes) }
    }

    @Test(arguments: [16, 32, 128])
    func userPasswordInWholeBlocksDecodes(count: Int) throws {
        let bytes = F.datagram(attributes: F.attribute(2, Array(repeating: 0x55, count: count)))
        #expect(try RADIUSPacket(decoding: bytes).hiddenUserPassword?.count == count)
    }

    @Test func emptyUserNameIsBad() {
        expectRADIUSError(.badAttribute(1)) { _ = try RADIUSPacket(decoding: F.datagram(attributes: [1, 2])) }
    }

    @Test func userNameOf253OctetsDecodes() throws {
        let name = String(repeating: "n", count: 253)
        let bytes = F.datagram(attributes: F.attribute(1, Array(name.utf8)))
        #expect(try RADIUSPacket(decoding: bytes).userName == name)
    }

    @Test func emptyStateIsBad() {
        expectRADIUSError(.badAttribute(24)) { _ = try RADIUSPacket(decoding: F.datagram(attributes: [24, 2])) }
    }

    @Test func emptyReplyMessageIsBad() {
        expectRADIUSError(.badAttribute(18)) { _ = try RADIUSPacket(decoding: F.datagram(code: 3, attributes: [18, 2])) }
    }

    @Test(arguments: [3, 5])
    func nasIPAddressOtherThanFourOctetsIsBad(count: Int) {
        let bytes = F.datagram(attributes: F.attribute(4, Array(repeating: 10, count: count)))
        expectRADIUSError(.badAttribute(4)) { _ = try RADIUSPacket(decoding: bytes) }
    }

    @Test(arguments: [UInt8(5), 6, 27, 61])
    func integerAttributeOtherThanFourOctetsIsBad(type: UInt8) {
        let bytes = F.datagram(attributes: F.attribute(type, [0, 0, 1]))
        expectRADIUSError(.badAttribute(type)) { _ = try RADIUSPacket(decoding: bytes) }
    }

    @Test func chapPasswordOtherThan17OctetsIsBad() {
        let bytes = F.datagram(attributes: F.attribute(3, Array(repeating: 1, count: 16)))
        expectRADIUSError(.badAttribute(3)) { _ = try RADIUSPacket(decoding: bytes) }
    }

    @Test func emptyEAPMessageIsBad() {
        expectRADIUSError(.badAttribute(79)) { _ = try RADIUSPacket(decoding: F.datagram(attributes: [79, 2])) }
    }

    @Test func eapRequestIsRecognised() throws {
        let bytes = F.datagram(attributes: F.attribute(79, [2, 0, 0, 5, 1]))
        #expect(try RADIUSPacket(decoding: bytes).hasEAPMessage)
    }
}

@Suite("RADIUS: encoding, attributes and helpers")
struct RADIUSEncodingTests {
    @Test func encodingComputesLength() throws {
        let packet = RADIUSPacket(code: .accessReject, identifier: 200, attributes: [.text(.replyMessage, "no")])
        let bytes = try packet.encoded()
        #expect(bytes.count == 24)
        #expect(Array(bytes[0..<4]) == [3, 200, 0, 24])
        #expect(Array(bytes[20...]) == [18, 4, 0x6E, 0x6F])
    }

    @Test func valueOver253OctetsIsNotEncodable() {
        let packet = RADIUSPacket(
            code: .accessAccept, identifier: 1,
            attributes: [RADIUSAttribute(.class, Array(repeating: 0, count: 254))])
        expectRADIUSError(.badAttribute(25)) { _ = try packet.encoded() }
    }

    @Test func packetOver4096OctetsIsNotEncodable() {
        let packet = RADIUSPacket(
            code: .accessAccept, identifier: 1,
            attributes: Array(
                repeating: RADIUSAttribute(.class, Array(repeating: 0, count: 253)),
                count: 17))
        expectRADIUSError(.badLength) { _ = try packet.encoded() }
    }

    @Test func authenticatorOtherThan16OctetsIsNotEncodable() {
        let packet = RADIUSPacket(code: .accessAccept, identifier: 1, authenticator: [1, 2, 3])
        expectRADIUSError(.badLength) { _ = try packet.encoded() }
    }

    @Test func longReplyMessageIsSplitIntoSeveralAttributes() throws {
        // setup
        let text = String(repeating: "0123456789", count: 60)
        // act
        let attributes = RADIUSAttribute.replyMessages(text)
        // verify
        #expect(attributes.map(\.value.count) == [253, 253, 94])
        let reply = try RADIUSPacket(
            decoding: try RADIUSPacket(
                code: .accessChallenge, identifier: 1,
                attributes: attributes
            ).encoded())
        #expect(reply.replyMessages.joined() == text)
    }

    @Test func replyMessageIsSplitAtCharacterBoundaries() {
        let text = String(repeating: "é", count: 200)
        let attributes = RADIUSAttribute.replyMessages(text)
        #expect(attributes.map(\.value.count) == [252, 148])
        #expect(attributes.compactMap(\.textValue).joined() == text)
        #expect(RADIUSAttribute.replyMessages("").isEmpty)
    }

    @Test func typedAccessorsReadTheAttributesTwofoldUses() throws {
        // setup
        let attributes: [RADIUSAttribute] = [
            .text(.userName, "bob"), RADIUSAttribute(.nasIPAddress, [10, 0, 0, 1]), .integer(.nasPort, 7),
            .integer(.serviceType, 8), .text(.filterID, "staff-vpn"), .state([0, 255, 3]),
            .integer(.sessionTimeout, 3600), .text(.calledStationID, "00-11-22-33-44-55:office"),
            .text(.callingStationID, "198.51.100.4"), .text(.nasIdentifier, "fortigate"), .integer(.nasPortType, 5),
            RADIUSAttribute(.vendorSpecific, [0, 0, 0x30, 0x39, 1, 3, 0x61]),
        ]
        // act
        let packet = try RADIUSPacket(
            decoding: try RADIUSPacket(
                code: .accessRequest, identifier: 1,
                attributes: attributes
            ).encoded())
        // verify
        #expect(packet.userName == "bob")
        #expect(packet.nasIPAddress == "10.0.0.1")
        #expect(packet.nasPort == 7)
        #expect(packet.serviceType == 8)
        #expect(packet.filterID == "staff-vpn")
        #expect(packet.state == [0, 255, 3])
        #expect(packet.sessionTimeout == 3600)
        #expect(packet.calledStationID == "00-11-22-33-44-55:office")
        #expect(packet.callingStationID == "198.51.100.4")
        #expect(packet.nasIdentifier == "fortigate")
        #expect(packet.nasPortType == 5)
        #expect(packet.vendorSpecific == [[0, 0, 0x30, 0x39, 1, 3, 0x61]])
        #expect(packet.messageAuthenticator == nil)
        #expect(!packet.hasEAPMessage && !packet.hasCHAPPassword)
        #expect(packet.hiddenUserPassword == nil)
        #expect(try packet.userPassword(secret: RADIUSSharedSecret("s")) == nil)
    }

    @Test func userNameThatIsNotUTF8ReadsAsNil() throws {
        let bytes = RADIUSFixtures.datagram(attributes: RADIUSFixtures.attribute(1, [0xC3, 0x28]))
        let packet = try RADIUSPacket(decoding: bytes)
        #expect(packet.userName == nil)
        #expect(packet.value(of: .userName) == [0xC3, 0x28])
    }

    @Test func requestKeyIdentifiesRetransmissions() throws {
        // setup
        let request = try RADIUSPacket.accessRequest(
            identifier: 5, userName: "u", password: nil,
            secret: RADIUSSharedSecret("s"),
            randomBytes: RADIUSFixtures.fixedRandom)
        var fresh = request
        fresh.authenticator = Array(repeating: 1, count: 16)
        // act
        let key = RADIUSRequestKey(clientAddress: "192.0.2.1", port: 40000, request: request)
        // verify
        #expect(
            key
                == RADIUSRequestKey(
                    clientAddress: "192.0.2.1", port: 40000, identifier: 5,
                    requestAuthenticator: RADIUSFixtures.vectorAuthenticator))
        #expect(key != RADIUSRequestKey(clientAddress: "192.0.2.1", port: 40000, request: fresh))
        #expect(key != RADIUSRequestKey(clientAddress: "192.0.2.1", port: 40001, request: request))
        #expect(key != RADIUSRequestKey(clientAddress: "192.0.2.2", port: 40000, request: request))
        #expect(Set([key, RADIUSRequestKey(clientAddress: "192.0.2.1", port: 40000, request: request)]).count == 1)
    }

    @Test func sharedSecretDescriptionIsRedacted() {
        let secret = RADIUSSharedSecret("hunter2-hunter2-hunter2")
        #expect(!"\(secret)".contains("hunter2"))
        #expect(!String(reflecting: secret).contains("hunter2"))
    }
}

@Suite("RADIUS: User-Password hiding (RFC 2865 §5.2)")
struct RADIUSUserPasswordTests {
    static let secret = RADIUSSharedSecret("password-hiding-secret")
    static let authenticator: [UInt8] = [
        0x9c, 0x1f, 0x33, 0x08, 0x77, 0x00, 0xfe, 0x42,
        0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80,
    ]

    @Test func everyLengthFrom1To128RoundTrips() throws {
        var rng = RADIUSFuzzTests.SplitMix(state: 2865)
        for length in 1...128 {
            // NUL is the padding octet, so the password itself holds none (RFC 2865 §5.2).
            let password = (0..<length).map { _ in UInt8.random(in: 1...255, using: &rng) }
            let hidden = try RADIUSUserPassword.hide(
                password, secret: Self.secret,
                requestAuthenticator: Self.authenticator)
            #expect(hidden.count == (length + 15) / 16 * 16)
            #expect(hidden.prefix(length) != password[...])
            let clear = try RADIUSUserPassword.unhide(
                hidden, secret: Self.secret,
                requestAuthenticator: Self.authenticator)
            #expect(clear == password, "length \(length)")
        }
    }

    @Test func passwordOver128OctetsIsRefused() {
        expectRADIUSError(.passwordTooLong) {
            _ = try RADIUSUserPassword.hide(
                Array(repeating: 0x61, count: 129), secret: Self.secret,
                requestAuthenticator: Self.authenticator)
        }
        expectRADIUSError(.passwordTooLong) {
            _ = try RADIUSPacket.accessRequest(
                identifier: 1, userName: "u",
                password: Array(repeating: 0x61, count: 129),
                secret: Self.secret, randomBytes: RADIUSFixtures.fixedRandom)
        }
    }

    @Test func emptyPasswordIsOneBlockOfPadding() throws {
        let hidden = try RADIUSUserPassword.hide([], secret: Self.secret, requestAuthenticator: Self.authenticator)
        #expect(hidden.count == 16)
        let clear = try RADIUSUserPassword.unhide(hidden, secret: Self.secret, requestAuthenticator: Self.authenticator)
        #expect(clear == [])
    }

    @Test func secondBlockIsChainedOnTheFirstCiphertext() throws {
        // Same first 16 octets, different second block: only the second hidden block may differ.
        let first = try RADIUSUserPassword.hide(
            Array(repeating: 0x61, count: 20), secret: Self.secret,
            requestAuthenticator: Self.authenticator)
        let second = try RADIUSUserPassword.hide(
            Array(repeating: 0x61, count: 16) + Array(repeating: 0x62, count: 4),
            secret: Self.secret, requestAuthenticator: Self.authenticator)
        #expect(first.prefix(16) == second.prefix(16))
        #expect(first.suffix(16) != second.suffix(16))
    }

    @Test func hiddenValueOfImpossibleLengthIsRefused() {
        expectRADIUSError(.badAttribute(2)) {
            _ = try RADIUSUserPassword.unhide(
                Array(repeating: 1, count: 17), secret: Self.secret,
                requestAuthenticator: Self.authenticator)
        }
        expectRADIUSError(.badAttribute(2)) {
            _ = try RADIUSUserPassword.unhide([], secret: Self.secret, requestAuthenticator: Self.authenticator)
        }
    }

    @Test func wrongSecretRevealsSomethingElse() throws {
        let hidden = try RADIUSUserPassword.hide(
            Array("123456".utf8), secret: Self.secret,
            requestAuthenticator: Self.authenticator)
        let revealed = try RADIUSUserPassword.unhide(
            hidden, secret: RADIUSSharedSecret("other"),
            requestAuthenticator: Self.authenticator)
        #expect(revealed != Array("123456".utf8))
    }
}
