import Foundation
import TwofoldCore

/// Finds the key that seals secrets at rest: `TWOFOLD_SECRET_KEY` when set, otherwise `twofold.key`
/// in the data directory, created once with mode 0600.
enum SealingKeyFile {
    static let fileName = "twofold.key"

    /// Reads the key file, or creates it. Creation is exclusive (`O_CREAT | O_EXCL`), so when several processes start
    /// together on an empty data directory exactly one writes a key and the others read that one.
    static func loadOrCreate(in directory: String) throws -> SealingKey {
        let path = (directory as NSString).appendingPathComponent(fileName)
        if FileManager.default.fileExists(atPath: path) { return try read(path, waitingForWriter: true) }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw ConfigurationError(problems: [
                "cannot create the data directory \(directory); make it writable (TWOFOLD_DATA_DIR) or set TWOFOLD_SECRET_KEY"
            ])
        }
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            if errno == EEXIST { return try read(path, waitingForWriter: true) }
            throw ConfigurationError(problems: [
                "cannot write \(path); make the data directory (TWOFOLD_DATA_DIR) writable or set TWOFOLD_SECRET_KEY"
            ])
        }
        defer { close(descriptor) }
        let key = SealingKey.generate()
        let bytes = Array((key.base64 + "\n").utf8)
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(descriptor) == 0 else {
            unlink(path)
            throw ConfigurationError(problems: [
                "cannot write \(path); make the data directory (TWOFOLD_DATA_DIR) writable or set TWOFOLD_SECRET_KEY"
            ])
        }
        return key
    }

    /// Reads a key file; a file another process has just created may still be empty for a moment, so an empty or
    /// partly written file is read again for up to two seconds before it counts as broken.
    private static func read(_ path: String, waitingForWriter: Bool) throws -> SealingKey {
        let deadline = Date().addingTimeInterval(waitingForWriter ? 2 : 0)
        while true {
            let text = ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            if let key = try? SealingKey(base64: text) { return key }
            if Date() >= deadline {
                let problem =
                    text.isEmpty
                    ? "\(path) is empty; if Twofold never sealed anything with it, delete it and start again, otherwise restore it from backup"
                    : "\(path) does not hold a valid key (base64 of 32 bytes); restore it from backup"
                throw ConfigurationError(problems: [problem])
            }
            usleep(50_000)
        }
    }
}
