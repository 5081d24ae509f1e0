extension CBORValue {
    /// The item in CBOR's preferred (shortest) encoding; used to build test data and stored credential keys.
    public var encoded: [UInt8] {
        var out: [UInt8] = []
        Self.write(self, to: &out)
        return out
    }

    private static func head(_ major: UInt8, _ argument: UInt64, to out: inout [UInt8]) {
        let type = major << 5
        switch argument {
        case 0..<24: out.append(type | UInt8(argument))
        case 24...0xff: out += [type | 24, UInt8(argument)]
        case 0x100...0xffff:
            out.append(type | 25)
            out += (0..<2).reversed().map { UInt8(truncatingIfNeeded: argument >> (8 * $0)) }
        case 0x1_0000...0xffff_ffff:
            out.append(type | 26)
            out += (0..<4).reversed().map { UInt8(truncatingIfNeeded: argument >> (8 * $0)) }
        default:
            out.append(type | 27)
            out += (0..<8).reversed().map { UInt8(truncatingIfNeeded: argument >> (8 * $0)) }
        }
    }

    private static func write(_ value: CBORValue, to out: inout [UInt8]) {
        switch value {
        case .unsigned(let n): head(0, n, to: &out)
        case .negative(let n): head(1, n, to: &out)
        case .bytes(let bytes):
            head(2, UInt64(bytes.count), to: &out)
            out += bytes
        case .text(let text):
            head(3, UInt64(text.utf8.count), to: &out)
            out += Array(text.utf8)
        case .array(let items):
            head(4, UInt64(items.count), to: &out)
            for item in items { write(item, to: &out) }
        case .map(let entries):
            head(5, UInt64(entries.count), to: &out)
            for entry in entries {
                write(entry.key, to: &out)
                write(entry.value, to: &out)
            }
        case .bool(let flag): out.append(flag ? 0xf5 : 0xf4)
        case .null: out.append(0xf6)
        case .undefined: out.append(0xf7)
        }
    }

    /// An integer item from a Swift integer.
    public static func int(_ value: Int64) -> CBORValue {
        value >= 0 ? .unsigned(UInt64(value)) : .negative(UInt64(-(value + 1)))
    }
}
