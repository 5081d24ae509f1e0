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
}
