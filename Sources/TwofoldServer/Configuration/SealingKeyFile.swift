import Foundation
import TwofoldCore

/// Finds the key that seals secrets at rest: `TWOFOLD_SECRET_KEY` when set, otherwise `twofold.key`
/// in the data directory, created once with mode 0600.
enum SealingKeyFile {
    static let fileName = "twofold.key"

    static func loadOrCreate(in directory: String) throws -> SealingKey {
        let path = (directory as NSString).appendingPathComponent(fileName)
        let manager = FileManager.default
        if manager.fileExists(atPath: path) {
            let text = try String(contentsOfFile: path, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            do { return try SealingKey(base64: text) } catch {
                throw ConfigurationError(problems: ["\(path) does not hold a valid key (base64 of 32 bytes); restore it from backup"])
            }
        }
        try manager.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let key = SealingKey.generate()
        let created = manager.createFile(atPath: path, contents: Data((key.base64 + "\n").utf8), attributes: [.posixPermissions: 0o600])
        guard created else {
            throw ConfigurationError(problems: ["cannot write \(path); make the data directory (TWOFOLD_DATA_DIR) writable or set TWOFOLD_SECRET_KEY"])
        }
        return key
    }
}
