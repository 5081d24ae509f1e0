/// How Twofold names a client address for records and for throttling.
public enum ClientAddress {
    /// The address as Twofold records it: an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a dual-stack
    /// socket reports for an IPv4 client) becomes the IPv4 address; anything else stays as it is.
    public static func canonical(_ address: String) -> String {
        guard let bytes = IPAddressBytes.parse(address), let v4 = IPAddressBytes.mappedIPv4(bytes) else { return address }
        return v4.map(String.init).joined(separator: ".")
    }

    /// The key that throttling buckets count a client under: an IPv4 address as a whole, an IPv6 address by its
    /// /64 prefix (one subscriber or one LAN usually holds a whole /64 and can pick any address in it), written
    /// `2001:db8:1:2::/64`. Text that is not an address (e.g. "unknown") is its own key.
    public static func throttleKey(_ address: String) -> String {
        guard let parsed = IPAddressBytes.parse(address) else { return address }
        let bytes = IPAddressBytes.unmapped(parsed)
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        let groups = stride(from: 0, to: 8, by: 2).map { String(Int(bytes[$0]) << 8 | Int(bytes[$0 + 1]), radix: 16) }
        return groups.joined(separator: ":") + "::/64"
    }

    /// Whether a host names this machine: `localhost`, `::1` or an address in 127.0.0.0/8. Takes the form of an HTTP
    /// `Host` header (`127.0.0.1:8080`, `[::1]:8080`) as well as a bare host.
    public static func isLoopbackHost(_ hostHeader: String) -> Bool {
        var host = hostHeader.lowercased()
        if host.hasPrefix("["), let end = host.firstIndex(of: "]") {
            host = String(host[host.index(after: host.startIndex)..<end])
        } else if let colon = host.lastIndex(of: ":"), host.filter({ $0 == ":" }).count == 1 {
            host = String(host[..<colon])
        }
        let octets = host.split(separator: ".", omittingEmptySubsequences: false)
        return host == "localhost" || host == "::1" || (octets.count == 4 && octets[0] == "127" && octets.allSatisfy { UInt8($0) != nil })
    }
}
