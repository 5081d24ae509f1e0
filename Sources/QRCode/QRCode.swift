/// A QR code symbol (ISO/IEC 18004) holding bytes in byte mode.
///
/// The smallest version that fits is chosen, error correction is added block by block and interleaved,
/// and of the eight masks the one with the lowest penalty is kept.
public struct QRCode: Sendable {
    /// 1 to 40.
    public let version: Int
    /// Modules per side without the quiet zone: 17 + 4 × version.
    public let size: Int
    /// The data mask pattern, 0 to 7.
    public let mask: Int
    public let errorCorrection: QRErrorCorrection
    let modules: [[Bool]]

    /// Encodes text as UTF-8 bytes.
    /// - Throws: ``QRCodeError`` `.dataTooLong` when it does not fit in version 40 at this level.
    public init(text: String, errorCorrection: QRErrorCorrection = .medium) throws {
        try self.init(bytes: Array(text.utf8), errorCorrection: errorCorrection)
    }

    /// Encodes bytes.
    /// - Parameters:
    ///   - bytes: the payload.
    ///   - errorCorrection: the level (medium by default).
    ///   - minimumVersion: the smallest version to consider.
    ///   - mask: a fixed mask pattern instead of the best one (for reference comparisons).
    /// - Throws: ``QRCodeError`` for data that does not fit, or a version or mask out of range.
    public init(bytes: [UInt8], errorCorrection: QRErrorCorrection = .medium, minimumVersion: Int = 1, mask: Int? = nil) throws {
        guard (1...40).contains(minimumVersion) else {
            throw QRCodeError(code: .invalidVersion, reason: "Versions run from 1 to 40 (got \(minimumVersion)).")
        }
        if let mask, !(0...7).contains(mask) {
            throw QRCodeError(code: .invalidMask, reason: "Masks run from 0 to 7 (got \(mask)).")
        }
        guard
            let version = (minimumVersion...40).first(where: {
                SymbolCapacity.byteModeBits(count: bytes.count, version: $0) <= SymbolCapacity.dataCodewords(
                    version: $0, level: errorCorrection) * 8
            })
        else {
            throw QRCodeError(
                code: .dataTooLong, reason: "\(bytes.count) bytes do not fit in a QR code at this error-correction level; shorten the text."
            )
        }
        var matrix = ModuleMatrix(version: version)
        matrix.drawFunctionPatterns()
        matrix.drawCodewords(
            Self.interleavedCodewords(
                Self.dataCodewords(bytes, version: version, level: errorCorrection), version: version, level: errorCorrection))
        let chosen =
            mask ?? (0..<8).min {
                matrix.penalty(withMask: $0, level: errorCorrection) < matrix.penalty(withMask: $1, level: errorCorrection)
            }!
        matrix.apply(mask: chosen)
        matrix.drawFormatBits(level: errorCorrection, mask: chosen)
        self.version = version
        self.size = matrix.size
        self.mask = chosen
        self.errorCorrection = errorCorrection
        self.modules = matrix.modules
    }

    /// Whether the module at column `x`, row `y` is dark.
    public subscript(x: Int, y: Int) -> Bool {
        guard (0..<size).contains(x), (0..<size).contains(y) else { return false }
        return modules[y][x]
    }

    /// The data codewords: mode indicator, count, bytes, terminator, padding (§7.4).
    static func dataCodewords(_ bytes: [UInt8], version: Int, level: QRErrorCorrection) -> [UInt8] {
        let capacityBits = SymbolCapacity.dataCodewords(version: version, level: level) * 8
        var bits = BitBuffer()
        bits.append(0b0100, count: 4)
        bits.append(bytes.count, count: version <= 9 ? 8 : 16)
        for byte in bytes { bits.append(Int(byte), count: 8) }
        bits.append(0, count: min(4, capacityBits - bits.count))
        bits.append(0, count: (8 - bits.count % 8) % 8)
        var codewords = bits.bytes
        var pad: UInt8 = 0xEC
        while codewords.count * 8 < capacityBits {
            codewords.append(pad)
            pad = pad == 0xEC ? 0x11 : 0xEC
        }
        return codewords
    }

    /// Splits data into blocks, adds error correction to each, and interleaves them (§7.6).
    static func interleavedCodewords(_ data: [UInt8], version: Int, level: QRErrorCorrection) -> [UInt8] {
        let blockCount = SymbolCapacity.errorCorrectionBlocks[level.tableIndex][version]
        let eccLength = SymbolCapacity.eccCodewordsPerBlock[level.tableIndex][version]
        let total = SymbolCapacity.totalCodewords(version: version)
        let shortBlocks = blockCount - total % blockCount
        let shortBlockLength = total / blockCount
        let divisor = ReedSolomon.divisor(degree: eccLength)
        var dataBlocks: [[UInt8]] = []
        var eccBlocks: [[UInt8]] = []
        var offset = 0
        for index in 0..<blockCount {
            let length = shortBlockLength - eccLength + (index < shortBlocks ? 0 : 1)
            let block = Array(data[offset..<(offset + length)])
            offset += length
            dataBlocks.append(block)
            eccBlocks.append(ReedSolomon.remainder(block, divisor: divisor))
        }
        var result: [UInt8] = []
        result.reserveCapacity(total)
        for column in 0..<(shortBlockLength - eccLength + 1) {
            for block in dataBlocks where column < block.count { result.append(block[column]) }
        }
        for column in 0..<eccLength {
            for block in eccBlocks { result.append(block[column]) }
        }
        return result
    }
}

/// Bits appended most significant first.
struct BitBuffer {
    private(set) var bits: [Bool] = []
    var count: Int { bits.count }

    mutating func append(_ value: Int, count: Int) {
        guard count > 0 else { return }
        for shift in stride(from: count - 1, through: 0, by: -1) { bits.append((value >> shift) & 1 == 1) }
    }

    var bytes: [UInt8] {
        stride(from: 0, to: bits.count, by: 8).map { start in
            var byte: UInt8 = 0
            for index in start..<min(start + 8, bits.count) where bits[index] { byte |= 0x80 >> UInt8(index - start) }
            return byte
        }
    }
}
