import Foundation

/// A block of IPv4 or IPv6 addresses in CIDR notation (`10.0.0.0/8`, `::1/128`).
public struct CIDRBlock: Sendable, Hashable, CustomStringConvertible {
    let network: [UInt8]
    /// The number of leading bits that are fixed (32 or 128 for a single address).
    public let prefixLength: Int
    public let description: String

    /// Reads `address/prefix`, or a single address (a /32 or /128).
    /// - Returns: nil when the text is not a CIDR block.
    public init?(_ text: String) {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: "/", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), var address = IPAddressBytes.parse(String(parts[0])) else { return nil }
        let bits = address.count * 8
        guard let parsedPrefix = parts.count == 2 ? Int(parts[1]) : bits, (0...bits).contains(parsedPrefix) else { return nil }
        var prefix = parsedPrefix
        // `::ffff:10.0.0.0/104` is the IPv4 block 10.0.0.0/8 written the IPv6 way.
        if let v4 = IPAddressBytes.mappedIPv4(address), prefix >= 96 {
            address = v4
            prefix -= 96
        }
        network = IPAddressBytes.masked(address, prefixLength: prefix)
        prefixLength = prefix
        description = text.trimmingCharacters(in: .whitespaces)
    }

    /// Whether `address` (textual IPv4 or IPv6) lies in this block.
    /// An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) is the IPv4 address it maps.
    public func contains(_ address: String) -> Bool {
        guard let bytes = IPAddressBytes.parse(address).map(IPAddressBytes.unmapped), bytes.count == network.count else { return false }
        return IPAddressBytes.masked(bytes, prefixLength: prefixLength) == network
    }
}

/// Decides which client address to believe when requests pass through reverse proxies.
public struct TrustedProxies: Sendable, Hashable {
    public let blocks: [CIDRBlock]

    /// - Parameter blocks: the proxies whose `X-Forwarded-For` is believed.
    public init(_ blocks: [CIDRBlock]) {
        self.blocks = blocks
    }

    /// Reads a comma-separated list of CIDR blocks.
    /// - Returns: nil when any entry is not a CIDR block.
    public init?(list: String) {
        var blocks: [CIDRBlock] = []
        for entry in list.split(separator: ",") where !entry.trimmingCharacters(in: .whitespaces).isEmpty {
            guard let block = CIDRBlock(String(entry)) else { return nil }
            blocks.append(block)
        }
        self.blocks = blocks
    }

    public func isTrusted(_ address: String) -> Bool {
        blocks.contains { $0.contains(address) }
    }

    /// The client address: the peer itself unless it is a trusted proxy; then the right-most address in
    /// `X-Forwarded-For` that is not a trusted proxy (addresses further left could be forged by the client).
    /// - Parameters:
    ///   - peer: the address the connection came from.
    ///   - forwardedFor: the `X-Forwarded-For` header values, in order.
    ///   IPv4-mapped IPv6 addresses come back as plain IPv4 (see ``ClientAddress/canonical(_:)``).
    public func clientAddress(peer rawPeer: String, forwardedFor: [String]) -> String {
        let peer = ClientAddress.canonical(rawPeer)
        guard isTrusted(peer) else { return peer }
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map {
            ClientAddress.canonical($0.trimmingCharacters(in: .whitespaces))
        }.filter { !$0.isEmpty }
        for hop in hops.reversed() where !isTrusted(hop) {
            return IPAddressBytes.parse(hop) != nil ? hop : peer
        }
        return hops.first ?? peer
    }
}

/// Textual IPv4/IPv6 addresses as bytes.
enum IPAddressBytes {
    static func parse(_ text: String) -> [UInt8]? {
        if text.contains(":") { return parseIPv6(text) }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isNumber), let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    /// The four IPv4 bytes of an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`), else nil.
    static func mappedIPv4(_ bytes: [UInt8]) -> [UInt8]? {
        guard bytes.count == 16, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF else { return nil }
        return Array(bytes[12..<16])
    }

    /// The address with IPv4-mapped IPv6 replaced by its IPv4 bytes.
    static func unmapped(_ bytes: [UInt8]) -> [UInt8] {
        mappedIPv4(bytes) ?? bytes
    }

    static func parseIPv6(_ text: String) -> [UInt8]? {
        var address = text
        if address.hasPrefix("["), address.hasSuffix("]") { address = String(address.dropFirst().dropLast()) }
        // A trailing dotted quad (`::ffff:192.0.2.1`) stands for the last two groups.
        if let lastColon = address.lastIndex(of: ":"), address[lastColon...].contains(".") {
            guard let v4 = parse(String(address[address.index(after: lastColon)...])), v4.count == 4 else { return nil }
            let hex = String(Int(v4[0]) << 8 | Int(v4[1]), radix: 16) + ":" + String(Int(v4[2]) << 8 | Int(v4[3]), radix: 16)
            address = String(address[...lastColon]) + hex
        }
        let halves = address.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            guard !part.isEmpty else { return [] }
            var result: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(group.count), let value = UInt16(group, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    static func masked(_ bytes: [UInt8], prefixLength: Int) -> [UInt8] {
        bytes.enumerated().map { index, byte in
            let bitsHere = max(0, min(8, prefixLength - index * 8))
            return bitsHere == 0 ? 0 : byte & UInt8(truncatingIfNeeded: 0xFF << (8 - bitsHere))
        }
    }
}
