import Foundation
import Testing
import TwofoldCore

@testable import TwofoldServer

/// `openapi.yaml` is written by hand; these tests hold every bound, default and lifetime it states to
/// ``TwofoldPolicy/standard``, so that changing the policy without the document (or the reverse) fails here.
@Suite("OpenAPI document states the policy")
struct PolicyDocumentTests {
    let policy = TwofoldPolicy.standard

    static func document() throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: OperationsController.openAPIJSON()) as? [String: Any])
    }

    static func schema(_ name: String, in document: [String: Any]) throws -> [String: [String: Any]] {
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: Any])
        let schema = try #require(schemas[name] as? [String: Any], "no schema \(name)")
        return try #require(schema["properties"] as? [String: [String: Any]])
    }

    /// Every `description` and `summary` in the document, as one text with single spaces (folded YAML lines joined).
    static func prose(_ value: Any) -> String {
        switch value {
        case let dictionary as [String: Any]:
            dictionary.sorted { $0.key < $1.key }.map { key, value in
                (key == "description" || key == "summary") ? (value as? String ?? "") : prose(value)
            }.filter { !$0.isEmpty }.joined(separator: " ")
        case let array as [Any]: array.map(prose).filter { !$0.isEmpty }.joined(separator: " ")
        default: ""
        }
    }

    var bounded: [(name: String, setting: Bounded<Int>)] {
        [
            ("rememberBrowserDays", policy.practice.rememberBrowserDays), ("inactivityMinutes", policy.practice.inactivityMinutes),
            ("otpDigits", policy.practice.otpDigits), ("sessionLifetimeHours", policy.practice.sessionLifetimeHours),
            ("accessTokenMinutes", policy.practice.accessTokenMinutes), ("refreshTokenDays", policy.practice.refreshTokenDays),
        ]
    }

    @Test func theSettingsChangeRequestTakesExactlyThePolicysRanges() throws {
        let request = try Self.schema("UpdatePracticeRequest", in: try Self.document())
        for (name, setting) in bounded {
            let property = try #require(request[name], "\(name) is not in UpdatePracticeRequest")
            if let choices = property["enum"] as? [Int] {
                #expect(choices == Array(setting.range), "\(name): enum \(choices), policy \(setting.range)")
            } else {
                #expect(property["minimum"] as? Int == setting.lowerBound, "\(name) minimum")
                #expect(property["maximum"] as? Int == setting.upperBound, "\(name) maximum")
            }
        }
        #expect(request["name"]?["maxLength"] as? Int == policy.practice.nameLength.upperBound)
    }

    @Test func thePracticeStatesRangesAndDefaults() throws {
        let practice = try Self.schema("Practice", in: try Self.document())
        for (name, setting) in bounded {
            let property = try #require(practice[name], "\(name) is not in Practice")
            #expect(property["minimum"] as? Int == setting.lowerBound, "\(name) minimum")
            #expect(property["maximum"] as? Int == setting.upperBound, "\(name) maximum")
            let description = try #require(property["description"] as? String, "\(name) has no description")
            #expect(description.contains("\(setting.lowerBound) to \(setting.upperBound)"), "\(name): \(description)")
            #expect(description.contains("new practices \(setting.default)"), "\(name): \(description)")
        }
        #expect(practice["name"]?["maxLength"] as? Int == policy.practice.nameLength.upperBound)
        #expect(practice["name"]?["minLength"] as? Int == policy.practice.nameLength.lowerBound)
    }

    @Test func namedFieldsTakeThePolicysLengths() throws {
        let document = try Self.document()
        for name in ["CreateApplicationRequest", "UpdateApplicationRequest"] {
            let schema = try Self.schema(name, in: document)
            #expect(schema["name"]?["maxLength"] as? Int == policy.fields.integrationName, "\(name).name")
        }
        #expect(try Self.schema("ReviewEPCSReportRequest", in: document)["note"]?["maxLength"] as? Int == policy.fields.reviewNote)
        #expect(OIDCClientRegistry.nameLength.upperBound == policy.fields.integrationName)
        #expect(EPCSReportController.ReviewInput.noteLimit == policy.fields.reviewNote)
    }

    @Test func protocolBoundsAreTheOnesTheServerEnforces() throws {
        let document = try Self.document()
        for name in ["CreateApplicationRequest", "UpdateApplicationRequest"] {
            let schema = try Self.schema(name, in: document)
            let redirects = try #require(schema["redirectUris"], "\(name).redirectUris")
            #expect(redirects["maxItems"] as? Int == OIDCClientRegistry.redirectURICount.upperBound, "\(name).redirectUris")
            #expect((redirects["minItems"] as? Int ?? 0) == OIDCClientRegistry.redirectURICount.lowerBound, "\(name).redirectUris")
            #expect((redirects["items"] as? [String: Any])?["maxLength"] as? Int == OIDCClientRegistry.maximumURILength)
            let logouts = try #require(schema["postLogoutRedirectUris"], "\(name).postLogoutRedirectUris")
            #expect(logouts["maxItems"] as? Int == OIDCClientRegistry.postLogoutRedirectURICount.upperBound)
            #expect((logouts["items"] as? [String: Any])?["maxLength"] as? Int == OIDCClientRegistry.maximumURILength)
        }
        let validate = try Self.schema("ValidateRequest", in: document)
        #expect(validate["username"]?["minLength"] as? Int == ValidateController.usernameLength.lowerBound)
        #expect(validate["username"]?["maxLength"] as? Int == ValidateController.usernameLength.upperBound)
    }

    @Test func theEPCSWorkingHoursTakeThePolicysRanges() throws {
        let document = try Self.document()
        let schemas = try #require((document["components"] as? [String: Any])?["schemas"] as? [String: [String: Any]])
        let withHours = schemas.filter { ($0.value["properties"] as? [String: Any])?["workingHoursStart"] != nil }
        #expect(!withHours.isEmpty)
        for (name, schema) in withHours {
            let properties = try #require(schema["properties"] as? [String: [String: Any]])
            for (field, setting) in [
                ("workingHoursStart", policy.practice.epcsWorkingHoursStart), ("workingHoursEnd", policy.practice.epcsWorkingHoursEnd),
            ] {
                let property = try #require(properties[field], "\(name).\(field)")
                if let minimum = property["minimum"] as? Int { #expect(minimum == setting.lowerBound, "\(name).\(field) minimum") }
                if let maximum = property["maximum"] as? Int { #expect(maximum == setting.upperBound, "\(name).\(field) maximum") }
            }
        }
    }

    @Test func theProseStatesThePolicysLifetimesAndLimits() throws {
        let text = Self.prose(try Self.document())
        let minutes = { (interval: TimeInterval) in Int(interval / 60) }
        let phrases = [
            "Wrong passwords are limited to \(policy.signIn.passwordPerAccount.limit) per \(minutes(policy.signIn.passwordPerAccount.window)) minutes per username and \(policy.signIn.passwordPerAddress.limit) per \(minutes(policy.signIn.passwordPerAddress.window)) minutes per client address",
            "failures lock the account's second factor for \(minutes(policy.lockout.lockDuration)) minutes; at \(policy.lockout.permanentLockAt) it stays locked",
            "expires in \(policy.sms.codeLifetimeMinutes) minutes, single use",
            "At most one message per \(Int(policy.sms.burst.window)) seconds and five per hour",
            "a single-use link to choose a new password, valid \(policy.passwordReset.linkLifetimeMinutes) minutes",
            "unless it was confirmed in the last \(minutes(policy.reauthentication.validity)) minutes",
            "invitation link, valid \(policy.invitation.validityDays) days",
            "a new link valid \(policy.invitation.validityDays) days is emailed",
            "works once for \(policy.passwordReset.linkLifetimeMinutes) minutes",
            "valid \(policy.push.enrollmentLifetimeMinutes) minutes",
            "in \(policy.push.challengeLifetimeMinutes) minutes; at most \(policy.push.challengesPerUser.limit) requests per user per \(minutes(policy.push.challengesPerUser.window)) minutes",
            "Expires in \(minutes(policy.stepUp.challengeLifetime)) minutes",
        ]
        #expect(policy.sms.hourly.limit == 5, "the document says \"five per hour\"")
        for phrase in phrases {
            #expect(text.contains(phrase), "openapi.yaml does not say: \(phrase)")
        }
    }
}
