import Testing

@testable import TwofoldCore

@Suite("Client addresses: IPv4-mapped IPv6 and throttling keys")
struct ClientAddressTests {
    @Test func mappedIPv4IsTheIPv4Address() {
        #expect(ClientAddress.canonical("::ffff:192.0.2.1") == "192.0.2.1")
        #expect(ClientAddress.canonical("::FFFF:c000:0201") == "192.0.2.1")
        #expect(ClientAddress.canonical("[::ffff:10.1.2.3]") == "10.1.2.3")
        #expect(ClientAddress.canonical("192.0.2.1") == "192.0.2.1")
        #expect(ClientAddress.canonical("2001:db8::1") == "2001:db8::1")
        #expect(ClientAddress.canonical("unknown") == "unknown")
        #expect(IPAddressBytes.parse("::ffff:300.0.2.1") == nil)
        #expect(IPAddressBytes.parse("::ffff:1.2.3") == nil)
    }

    @Test func trustedProxyMatchesMappedPeersAndHops() throws {
        let proxies = try #require(TrustedProxies(list: "10.0.0.0/8"))
        #expect(proxies.isTrusted("::ffff:10.0.0.5"))
        #expect(proxies.clientAddress(peer: "::ffff:10.0.0.5", forwardedFor: ["::ffff:198.51.100.7"]) == "198.51.100.7")
        #expect(proxies.clientAddress(peer: "::ffff:10.0.0.5", forwardedFor: ["198.51.100.7, ::ffff:10.9.9.9"]) == "198.51.100.7")
        #expect(proxies.clientAddress(peer: "::ffff:203.0.113.9", forwardedFor: ["198.51.100.7"]) == "203.0.113.9")
        let mappedBlock = try #require(CIDRBlock("::ffff:10.0.0.0/104"))
        #expect(mappedBlock.contains("10.20.30.40") && mappedBlock.contains("::ffff:10.20.30.40"))
        #expect(!mappedBlock.contains("11.0.0.1"))
    }

    @Test func throttleKeyIsTheIPv4AddressOrTheIPv6Slash64() {
        #expect(ClientAddress.throttleKey("203.0.113.9") == "203.0.113.9")
        #expect(ClientAddress.throttleKey("::ffff:203.0.113.9") == "203.0.113.9")
        #expect(ClientAddress.throttleKey("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64")
        #expect(ClientAddress.throttleKey("2001:0DB8:0001:0002::1") == "2001:db8:1:2::/64")
        #expect(ClientAddress.throttleKey("2001:db8:1:2::ffff") == ClientAddress.throttleKey("2001:db8:1:2:1234::9"))
        #expect(ClientAddress.throttleKey("2001:db8:1:3::1") != ClientAddress.throttleKey("2001:db8:1:2::1"))
        #expect(ClientAddress.throttleKey("::1") == "0:0:0:0::/64")
        #expect(ClientAddress.throttleKey("unknown") == "unknown")
    }
}
