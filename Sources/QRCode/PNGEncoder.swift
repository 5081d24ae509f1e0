extension QRCode {
    /// The symbol as an 8-bit grayscale PNG, black on white, for e-mail and downloads.
    /// - Parameters:
    ///   - scale: pixels per module.
    ///   - quietZone: light modules around the symbol.
    /// - Returns: the PNG file's bytes.
    public func png(scale: Int = 4, quietZone: Int = 4) -> [UInt8] {
        let side = (size + 2 * quietZone) * scale
        var raw: [UInt8] = []
        raw.reserveCapacity((side + 1) * side)
        for row in 0..<side {
            raw.append(0) // filter type: none
            let y = row / scale - quietZone
            for column in 0..<side {
                let x = column / scale - quietZone
                raw.append(self[x, y] ? 0x00 : 0xFF)
            }
        }
        var header: [UInt8] = []
        header += PNG.bigEndian(UInt32(side))
        header += PNG.bigEndian(UInt32(side))
        header += [8, 0, 0, 0, 0] // bit depth 8, grayscale, deflate, no filter method variants, no interlace
        return PNG.signature + PNG.chunk("IHDR", header) + PNG.chunk("IDAT", Zlib.stored(raw)) + PNG.chunk("IEND", [])
    }
}

/// The PNG container (ISO/IEC 15948): signature and CRC-checked chunks.
enum PNG {
    static let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let typeBytes = Array(type.utf8)
        return bigEndian(UInt32(data.count)) + typeBytes + data + bigEndian(CRC32.checksum(typeBytes + data))
    }

    static func bigEndian(_ value: UInt32) -> [UInt8] {
        [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }
}

/// A zlib stream (RFC 1950) of uncompressed deflate blocks (RFC 1951 §3.2.4): simple and always valid.
enum Zlib {
    static func stored(_ data: [UInt8]) -> [UInt8] {
        var output: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let length = min(65_535, data.count - offset)
            let final: UInt8 = offset + length == data.count ? 1 : 0
            output.append(final)
            output += [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(~length & 0xFF), UInt8((~length >> 8) & 0xFF)]
            output += data[offset..<(offset + length)]
            offset += length
        } while offset < data.count
        return output + PNG.bigEndian(adler32(data))
    }

    static func adler32(_ data: [UInt8]) -> UInt32 {
        var a: UInt32 = 1
        var b: UInt32 = 0
        for byte in data {
            a = (a + UInt32(byte)) % 65_521
            b = (b + a) % 65_521
        }
        return b << 16 | a
    }
}

/// CRC-32 (ISO 3309), as PNG chunks use it.
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { index in
        var value = UInt32(index)
        for _ in 0..<8 { value = value & 1 == 1 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1 }
        return value
    }

    static func checksum(_ data: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
