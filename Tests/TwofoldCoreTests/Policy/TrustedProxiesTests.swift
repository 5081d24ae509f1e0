import Testing

@testable import TwofoldCore

@Suite("Trusted proxies and CIDR blocks")
struct TrustedProxiesTests {
    @Test func cidrBlocksMatchIPv4AndIPv6() throws {
        let ten = try #require(CIDRBlock("10.0.0.0/8"))
        #expect(ten.contains("10.200.3.4"))
        #expect(!ten.contains("11.0.0.1"))
        let single = try #require(CIDRBlock("192.168.1.10"))
        #expect(single.contains("192.168.1.10") && !single.contains("192.168.1.11"))
        let v6 = try #require(CIDRBlock("fd00::/8"))
        #expect(v6.contains("fd12:3456::1"))
        #expect(!v6.contains("fe80::1"))
        #expect(!v6.contains("10.0.0.1"))
        #expect(try #require(CIDRBlock("::1/128")).contains("::1"))
        #expect(try #require(CIDRBlock("172.16.0.0/12")).contains("172.31.255.255"))
        #expect(!(try #require(CIDRBlock("172.16.0.0/12")).contains("172.32.0.0")))
    }

    @Test(arguments: ["", "10.0.0.0/33", "300.1.1.1", "10.0.0/8", "::1::2", "abc", "10.0.0.0/x", "1:2:3:4:5:6:7:8:9"])
    func malformedBlocksAreRejected(text: String) {
        #expect(CIDRBlock(text) == nil)
    }

    @Test func forwardedForIsBelievedOnlyFromTrustedPeers() throws {
        let proxies = try #require(TrustedProxies(list: "127.0.0.1/32, 10.0.0.0/8"))
        #expect(proxies.clientAddress(peer: "203.0.113.5", forwardedFor: ["198.51.100.1"]) == "203.0.113.5")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["198.51.100.1"]) == "198.51.100.1")
        // A client may prepend anything; the right-most untrusted hop is the one our proxy saw.
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["6.6.6.6, 198.51.100.1, 10.1.2.3"]) == "198.51.100.1")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: []) == "127.0.0.1")
        #expect(proxies.clientAddress(peer: "127.0.0.1", forwardedFor: ["not-an-address"]) == "127.0.0.1")
        #expect(TrustedProxies(list: "10.0.0.0/8, nonsense") == nil)
    }
}
