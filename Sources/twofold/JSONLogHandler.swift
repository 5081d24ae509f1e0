import Foundation
import Logging

/// One JSON object per line (`TWOFOLD_LOG_FORMAT=json`), for log shippers. Messages and metadata never carry
/// secrets: Twofold does not log request bodies, codes, passwords or tokens.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    /// Standard output for `serve`; standard error for admin commands, whose results go to standard output.
    let stream: FileHandle
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var object: [String: String] = [
            "time": Date().ISO8601Format(.iso8601.time(includingFractionalSeconds: true).year().month().day()),
            "level": event.level.rawValue,
            "label": label,
            "message": event.message.description,
        ]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) where object[key] == nil {
            object[key] = "\(value)"
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard var line = try? encoder.encode(object) else { return }
        line.append(0x0A)
        stream.write(line)
    }
}
