import Foundation
import TwofoldCore

/// The canonical form of an audit event and its link: plain SHA-256 for the first, unkeyed segment (events written
/// before keyed links), HMAC-SHA256 with the audit key (``AuditKeys``) after it.
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
        /// The chain the event belongs to (``AuditChainRegistry``); the links of a per-instance chain cover it.
        var chain: String = AuditCheckpoint.mainChain
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

    /// The link of an event in the unkeyed segment; anyone can compute it, so only a signed checkpoint of the
    /// segment's end (``AuditCheckpoint/Kind/legacyEnd``) protects it.
    static func hash(previous: String, content: Content) -> String {
        TwofoldCore.Digest.sha256Hex(previous + "|" + canonical(content))
    }

    /// The link of a keyed event: HMAC-SHA256 under the audit key `keyID` over the key id, the previous link and
    /// every field the audit page shows (the shown time is `occurredMS`, checked against `occurred_at`); for a
    /// per-instance chain also over the chain id, so an event cannot be moved to another chain.
    /// `nil` when no configured key has that id.
    static func mac(previous: String, content: Content, keyID: String, keys: AuditKeys) -> String? {
        if content.chain == AuditCheckpoint.mainChain {
            return keys.mac("twofold-audit-v1|\(keyID)|\(previous)|" + canonical(content), keyID: keyID)
        }
        return keys.mac(
            "twofold-audit-v2|\(content.chain.utf8.count):\(content.chain)|\(keyID)|\(previous)|" + canonical(content), keyID: keyID)
    }

    static func detailsJSON(_ details: [String: String]) -> String {
        guard !details.isEmpty else { return "{}" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(details)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }
}
