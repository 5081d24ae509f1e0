import Foundation
import Testing

@testable import TwofoldCore

/// Our codes against an independent implementation: oathtool (Debian package `oathtool`).
@Suite("Interop with oathtool")
struct OathtoolInteropTests {
    static let oathtool = "/usr/bin/oathtool"

    static func run(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: oathtool)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func totpMatchesOathtoolForRandomKeysAndTimes() throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.oathtool), "install oathtool (apt-get install oathtool) or run scripts/test")
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let secret = OTPSecret(bytes: SecureRandom.bytes(Int.random(in: 10...64, using: &generator)))
            let algorithm = OTPAlgorithm.allCases.randomElement(using: &generator)!
            let digits = Int.random(in: 6...8, using: &generator)
            let period = [30, 60].randomElement(using: &generator)!
            let time = Int.random(in: 0...4_000_000_000, using: &generator)
            let ours = TOTP(secret: secret, parameters: try OTPParameters(algorithm: algorithm, digits: digits, period: period))
                .code(at: Date(timeIntervalSince1970: TimeInterval(time)))
            let theirs = try Self.run([
                "--totp=\(algorithm.rawValue.lowercased())", "-b", "-d", String(digits), "-s", "\(period)s", "-N", "@\(time)",
                secret.base32,
            ])
            #expect(ours == theirs, "\(algorithm) \(digits) digits, \(period) s, t=\(time)")
        }
    }

    @Test func hotpMatchesOathtool() throws {
        try #require(
            FileManager.default.isExecutableFile(atPath: Self.oathtool), "install oathtool (apt-get install oathtool) or run scripts/test")
        for _ in 0..<30 {
            let secret = OTPSecret(bytes: SecureRandom.bytes(20))
            let counter = UInt64.random(in: 0...1_000_000)
            let digits = Int.random(in: 6...8)
            let theirs = try Self.run(["--hotp", "-b", "-d", String(digits), "-c", String(counter), secret.base32])
            #expect(HOTP(secret: secret, digits: digits).code(counter: counter) == theirs)
        }
    }
}
