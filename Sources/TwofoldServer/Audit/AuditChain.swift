import Foundation
import TwofoldCore

/// The canonical form of an audit event and its link hash.
enum AuditChain {
    struct Content {
        var seq: Int64
        var occurredMS: Int64
        var practiceID: UUID?
        var actorID: UUID?
        var subjectID: UUID?
        var event: String
        var ip: String
        var userAgent: String
        var details: String
    }

    /// Length-prefixed fields, so no choice of values can make two different events read the same.
    static func canonical(_ content: Content) -> String {
        let fields = [
            String(content.seq), String(content.occurredMS),
            content.practiceID?.uuidString ?? "", content.actorID?.uuidString ?? "", content.subjectID?.uuidString ?? "",
            content.event, content.ip, content.userAgent, content.details,
        ]
        return fields.map { "\($0.utf8.count):\($0)" }.joined(separator: "|")
    }

    static func hash(previous: String, content: Content) -> String {
        TwofoldCore.Digest.sha256Hex(previous + "|" + canonical(content))
    }

    static func detailsJSON(_ details: [String: String]) -> String {
        guard !details.isEmpty else { return "{}" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(details)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }
}
