import Foundation

/// The JSON a push device and the server exchange (docs/push-protocol.md), shared by both sides.
public enum PushMessages {
    /// A pending request as the device shows it. The number to match is deliberately not part of it.
    public struct Challenge: Codable, Sendable, Equatable {
        public var id: UUID
        public var purpose: String
        public var summary: String
        public var ip: String
        public var browser: String
        public var createdAt: Date
        public var expiresAt: Date
        /// False when the sign-in comes from a terminal that cannot show a number (RADIUS): approve without one, after
        /// checking the summary (device, client and address). Absent from older servers: a number is needed.
        public var numberRequired: Bool?

        public init(
            id: UUID, purpose: String, summary: String, ip: String, browser: String, createdAt: Date, expiresAt: Date,
            numberRequired: Bool? = nil
        ) {
            self.id = id
            self.purpose = purpose
            self.summary = summary
            self.ip = ip
            self.browser = browser
            self.createdAt = createdAt
            self.expiresAt = expiresAt
            self.numberRequired = numberRequired
        }
    }

    public struct ChallengeList: Codable, Sendable {
        public var deviceId: UUID
        public var challenges: [Challenge]

        public init(deviceId: UUID, challenges: [Challenge]) {
            self.deviceId = deviceId
            self.challenges = challenges
        }
    }

    public struct Answer: Codable, Sendable {
        /// "approve" or "deny"
        public var decision: String
        public var number: Int?
        public var fraud: Bool?

        public init(decision: String, number: Int? = nil, fraud: Bool? = nil) {
            self.decision = decision
            self.number = number
            self.fraud = fraud
        }
    }

    public struct AnswerResult: Codable, Sendable {
        public var id: UUID
        public var status: String

        public init(id: UUID, status: String) {
            self.id = id
            self.status = status
        }
    }
}
