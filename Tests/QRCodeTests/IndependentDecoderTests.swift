import Foundation
import Testing

@testable import QRCode

/// Every symbol we make must read back exactly with an independent decoder (zxing-cpp, through Python).
@Suite("Decoding with zxing-cpp")
struct IndependentDecoderTests {
    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("decode_qr.py").path
    }

    static func payloads() -> [String] {
        var generator = SystemRandomNumberGenerator()
        let printable = Array(" !#$%&()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[]^_abcdefghijklmnopqrstuvwxyz{|}~")
        var payloads = [
            "a",
            "otpauth://totp/Riverside%20Family%20Medicine:dr.smith?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Riverside%20Family%20Medicine&algorithm=SHA1&digits=6&period=30",
            "otpauth://totp/Cl%C3%ADnica%20M%C3%BCller%20%26%20S%C3%B6hne%3A%20Nord%20" + String(repeating: "Zweigstelle%20", count: 8)
                + ":a%40b.de?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&digits=8",
            "Grüße aus der Praxis — 東京 診療所 — ✓",
        ]
        for length in [1, 2, 7, 14, 17, 30, 45, 61, 90, 120, 160, 200, 250, 300, 380, 450, 560, 700, 850, 1000] {
            payloads.append(String((0..<length).map { _ in printable.randomElement(using: &generator)! }))
        }
        return payloads
    }

    static func decode(_ directory: URL) throws -> [String: String?] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, directory.path]
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let problem = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw DecoderUnavailable(
                description:
                    "the zxing-cpp decoder did not run (\(problem.trimmingCharacters(in: .whitespacesAndNewlines))); pip install zxing-cpp pillow cairosvg, or run scripts/test"
            )
        }
        return try JSONDecoder().decode([String: String?].self, from: data)
    }

    struct DecoderUnavailable: Error, CustomStringConvertible { var description: String }

    @Test func everyLengthAndLevelDecodesExactly() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("twofold-qr-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var expected: [String: String] = [:]
        var versions = Set<Int>()
        for (index, payload) in Self.payloads().enumerated() {
            for level in QRErrorCorrection.allCases {
                guard let code = try? QRCode(text: payload, errorCorrection: level) else { continue }
                versions.insert(code.version)
                let name = "\(index)-\(level).png"
                try Data(code.png(scale: 2)).write(to: directory.appendingPathComponent(name))
                expected[name] = payload
                if index % 5 == 0 && level == .medium {
                    let svgName = "\(index)-svg.svg"
                    try Data(code.svg(moduleSize: 4).utf8).write(to: directory.appendingPathComponent(svgName))
                    expected[svgName] = payload
                }
            }
        }
        #expect(versions.contains { $0 >= 7 }, "version information must be exercised")
        #expect(versions.contains { $0 >= 25 })
        let decoded = try Self.decode(directory)
        #expect(decoded.count == expected.count)
        for (name, payload) in expected {
            #expect(decoded[name] == .some(payload), "\(name) did not decode to its payload")
        }
    }
}
