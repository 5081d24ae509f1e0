import Foundation
import Testing

@testable import QRCode

/// Module-by-module comparison with matrices made by an independent encoder (segno; see Fixtures/make_fixtures.py).
@Suite("Known-answer matrices")
struct ReferenceMatrixTests {
    struct Case: Decodable, CustomStringConvertible, Sendable {
        var text: String
        var error: String
        var version: Int
        var mask: Int
        var rows: [String]
        var description: String { "v\(version)-\(error) mask \(mask): \(text.prefix(20))" }

        var level: QRErrorCorrection {
            switch error {
            case "L": .low
            case "Q": .quartile
            case "H": .high
            default: .medium
            }
        }
    }

    static let cases: [Case] = {
        guard let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil),
            let data = try? Data(contentsOf: folder.appendingPathComponent("segno-matrices.json")),
            let cases = try? JSONDecoder().decode([Case].self, from: data)
        else { return [] }
        return cases
    }()

    @Test func fixturesAreThere() {
        #expect(Self.cases.count == 8)
    }

    @Test(arguments: cases)
    func matchesTheReferenceEncoder(reference: Case) throws {
        let code = try QRCode(
            bytes: Array(reference.text.utf8), errorCorrection: reference.level, minimumVersion: reference.version, mask: reference.mask)
        #expect(code.version == reference.version)
        #expect(code.size == reference.rows.count)
        var mismatches = 0
        for (y, row) in reference.rows.enumerated() {
            for (x, cell) in row.enumerated() where code[x, y] != (cell == "1") { mismatches += 1 }
        }
        #expect(mismatches == 0, "\(mismatches) modules differ")
    }
}

@Suite("QR building blocks")
struct QRBuildingBlockTests {
    /// The classic worked example: "HELLO WORLD" in alphanumeric mode at 1-M has these 10 error-correction codewords.
    @Test func reedSolomonKnownExample() {
        let data: [UInt8] = [32, 91, 11, 120, 209, 114, 220, 77, 67, 64, 236, 17, 236, 17, 236, 17]
        #expect(ReedSolomon.remainder(data, divisor: ReedSolomon.divisor(degree: 10)) == [196, 35, 39, 119, 235, 215, 231, 226, 93, 23])
    }

    @Test func versionsGrowWithTheData() throws {
        #expect(try QRCode(bytes: Array(repeating: 0x41, count: 14)).version == 1)
        #expect(try QRCode(bytes: Array(repeating: 0x41, count: 15)).version == 2)
        #expect(try QRCode(bytes: Array(repeating: 0x41, count: 17), errorCorrection: .low).version == 1)
        #expect(try QRCode(bytes: Array(repeating: 0x41, count: 2331)).version == 40)
        #expect(try QRCode(bytes: Array(repeating: 0x41, count: 2953), errorCorrection: .low).version == 40)
    }

    @Test func tooMuchDataIsAClearError() {
        do {
            _ = try QRCode(bytes: Array(repeating: 0x41, count: 2954), errorCorrection: .low)
            Issue.record("expected an error")
        } catch let error as QRCodeError {
            #expect(error.code == .dataTooLong)
            #expect(error.reason.contains("2954 bytes"))
        } catch { Issue.record("unexpected \(error)") }
        #expect(throws: QRCodeError.self) { try QRCode(bytes: [1], mask: 8) }
        #expect(throws: QRCodeError.self) { try QRCode(bytes: [1], minimumVersion: 41) }
    }

    @Test func pngIsWellFormed() throws {
        let png = try QRCode(text: "otpauth://totp/x?secret=JBSWY3DPEHPK3PXP").png(scale: 3, quietZone: 4)
        #expect(Array(png.prefix(8)) == PNG.signature)
        var offset = 8
        var types: [String] = []
        while offset < png.count {
            let length = Int(png[offset]) << 24 | Int(png[offset + 1]) << 16 | Int(png[offset + 2]) << 8 | Int(png[offset + 3])
            let typeAndData = Array(png[(offset + 4)..<(offset + 8 + length)])
            let crc =
                UInt32(png[offset + 8 + length]) << 24 | UInt32(png[offset + 9 + length]) << 16 | UInt32(png[offset + 10 + length]) << 8
                | UInt32(png[offset + 11 + length])
            #expect(CRC32.checksum(typeAndData) == crc)
            types.append(String(decoding: typeAndData.prefix(4), as: UTF8.self))
            if types.last == "IHDR" {
                let width = Int(typeAndData[4]) << 24 | Int(typeAndData[5]) << 16 | Int(typeAndData[6]) << 8 | Int(typeAndData[7])
                #expect(width == (29 + 8) * 3)
            }
            offset += 12 + length
        }
        #expect(types == ["IHDR", "IDAT", "IEND"])
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(Zlib.adler32(Array("Wikipedia".utf8)) == 0x11E6_0398)
    }

    @Test func svgIsCrispAndSized() throws {
        let code = try QRCode(text: "hello")
        let svg = code.svg(moduleSize: 5, quietZone: 4, title: "Scan <me>")
        #expect(svg.hasPrefix("<svg"))
        #expect(svg.contains("shape-rendering=\"crispEdges\""))
        #expect(svg.contains("viewBox=\"0 0 29 29\""))
        #expect(svg.contains("width=\"145\""))
        #expect(svg.contains("<title>Scan &lt;me&gt;</title>"))
        #expect(!svg.contains("<?xml"))
    }
}
