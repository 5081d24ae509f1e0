/// A CBOR data item (RFC 8949), as far as WebAuthn needs: integers, byte and text strings, arrays, maps,
/// booleans, null and undefined. Floats, tags and indefinite lengths are refused.
public indirect enum CBORValue: Equatable, Sendable {
    case unsigned(UInt64)
    /// A negative integer, stored as the CBOR argument `n` of the value `-1 - n`.
    case negative(UInt64)
    case bytes([UInt8])
    case text(String)
    case array([CBORValue])
    /// Entries in the order they appear.
    case map([(key: CBORValue, value: CBORValue)])
    case bool(Bool)
    case null
    case undefined

    public static func == (lhs: CBORValue, rhs: CBORValue) -> Bool {
        switch (lhs, rhs) {
        case let (.unsigned(a), .unsigned(b)), let (.negative(a), .negative(b)): a == b
        case let (.bytes(a), .bytes(b)): a == b
        case let (.text(a), .text(b)): a == b
        case let (.array(a), .array(b)): a == b
        case let (.map(a), .map(b)): a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case let (.bool(a), .bool(b)): a == b
        case (.null, .null), (.undefined, .undefined): true
        default: false
        }
    }

    /// The value as a Swift integer, when it is an integer that fits.
    public var integer: Int64? {
        switch self {
        case .unsigned(let n): n <= UInt64(Int64.max) ? Int64(n) : nil
        case .negative(let n): n <= UInt64(Int64.max) ? -1 - Int64(n) : nil
        default: nil
        }
    }

    /// The entry of a map under an integer key (COSE keys use small integers).
    public subscript(key: Int64) -> CBORValue? {
        guard case .map(let entries) = self else { return nil }
        return entries.first { $0.key.integer == key }?.value
    }

    /// The entry of a map under a text key (attestation objects use text keys).
    public subscript(key: String) -> CBORValue? {
        guard case .map(let entries) = self else { return nil }
        return entries.first { $0.key == .text(key) }?.value
    }
}

/// Why CBOR input was refused. The input is untrusted (it comes from the browser), so every limit is explicit.
public enum CBORError: Error, Equatable, CustomStringConvertible {
    case truncated
    case tooDeep
    case tooLong(Int)
    case tooManyItems(Int)
    case unsupported(String)
    case invalidUTF8
    case trailingBytes(Int)
    case duplicateKey

    public var description: String {
        switch self {
        case .truncated: "The CBOR data ends in the middle of an item."
        case .tooDeep: "The CBOR data nests deeper than allowed."
        case .tooLong(let length): "A CBOR string of \(length) bytes is longer than allowed."
        case .tooManyItems(let count): "A CBOR array or map of \(count) items is larger than allowed."
        case .unsupported(let what): "The CBOR data uses \(what), which WebAuthn data never contains."
        case .invalidUTF8: "A CBOR text string is not valid UTF-8."
        case .trailingBytes(let count): "\(count) bytes follow the CBOR item."
        case .duplicateKey: "A CBOR map repeats a key."
        }
    }
}

/// Decodes CBOR with fixed limits on depth, string length and item counts.
public struct CBORDecoder: Sendable {
    public var maxDepth = 16
    public var maxStringLength = 65_536
    public var maxItems = 1_024

    public init() {}

    /// Decodes exactly one item; bytes after it are an error.
    public func decode(_ bytes: [UInt8]) throws -> CBORValue {
        let (value, used) = try decodePrefix(bytes)
        guard used == bytes.count else { throw CBORError.trailingBytes(bytes.count - used) }
        return value
    }

    /// Decodes the first item and says how many bytes it took (authenticator data holds a COSE key followed by more).
    public func decodePrefix<C: Collection<UInt8>>(_ bytes: C) throws -> (value: CBORValue, length: Int) {
        var reader = Reader(bytes: Array(bytes))
        let value = try item(&reader, depth: 0)
        return (value, reader.offset)
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        mutating func byte() throws -> UInt8 {
            guard offset < bytes.count else { throw CBORError.truncated }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func take(_ count: Int) throws -> ArraySlice<UInt8> {
            guard count >= 0, count <= bytes.count - offset else { throw CBORError.truncated }
            defer { offset += count }
            return bytes[offset..<offset + count]
        }
    }

    private func argument(_ info: UInt8, _ reader: inout Reader) throws -> UInt64 {
        switch info {
        case 0..<24: return UInt64(info)
        case 24: return UInt64(try reader.byte())
        case 25, 26, 27:
            let width = 1 << Int(info - 24) // 2, 4 or 8 bytes
            return try reader.take(width).reduce(0) { $0 << 8 | UInt64($1) }
        case 31: throw CBORError.unsupported("indefinite lengths")
        default: throw CBORError.unsupported("reserved additional information \(info)")
        }
    }

    private func count(_ argument: UInt64, limit: Int, error: (Int) -> CBORError) throws -> Int {
        guard argument <= UInt64(limit) else { throw error(argument > UInt64(Int.max) ? Int.max : Int(argument)) }
        return Int(argument)
    }

    private func item(_ reader: inout Reader, depth: Int) throws -> CBORValue {
        guard depth <= maxDepth else { throw CBORError.tooDeep }
        let initial = try reader.byte()
        let major = initial >> 5
        let info = initial & 0x1f
        if major == 7 {
            switch info {
            case 20: return .bool(false)
            case 21: return .bool(true)
            case 22: return .null
            case 23: return .undefined
            case 25, 26, 27: throw CBORError.unsupported("floating-point numbers")
            default: throw CBORError.unsupported("simple value \(info)")
            }
        }
        let value = try argument(info, &reader)
        switch major {
        case 0: return .unsigned(value)
        case 1: return .negative(value)
        case 2:
            return .bytes(Array(try reader.take(try count(value, limit: maxStringLength, error: CBORError.tooLong))))
        case 3:
            let raw = try reader.take(try count(value, limit: maxStringLength, error: CBORError.tooLong))
            guard let text = String(validating: raw, as: UTF8.self) else { throw CBORError.invalidUTF8 }
            return .text(text)
        case 4:
            let items = try count(value, limit: maxItems, error: CBORError.tooManyItems)
            var array: [CBORValue] = []
            for _ in 0..<items { array.append(try item(&reader, depth: depth + 1)) }
            return .array(array)
        case 5:
            let items = try count(value, limit: maxItems, error: CBORError.tooManyItems)
            var entries: [(key: CBORValue, value: CBORValue)] = []
            for _ in 0..<items {
                let key = try item(&reader, depth: depth + 1)
                guard !entries.contains(where: { $0.key == key }) else { throw CBORError.duplicateKey }
                entries.append((key, try item(&reader, depth: depth + 1)))
            }
            return .map(entries)
        default:
            throw CBORError.unsupported("tags")
        }
    }
}
