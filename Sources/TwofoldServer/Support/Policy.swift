import TwofoldCore
import Vapor

extension Application {
    private struct PolicyKey: StorageKey { typealias Value = TwofoldPolicy }

    /// The lifetimes, limits and ranges every feature applies; ``TwofoldPolicy/standard`` unless a test sets another.
    public var policy: TwofoldPolicy {
        get { storage[PolicyKey.self] ?? .standard }
        set { storage[PolicyKey.self] = newValue }
    }
}

extension Request {
    var policy: TwofoldPolicy { application.policy }
}

/// The policy's numbers that pages state (`#(layout.limits.smsCodeMinutes)`), in the units the texts use.
struct PageLimits: Encodable {
    var smsCodeMinutes: Int
    var pushChallengeMinutes: Int
    var pushEnrollmentMinutes: Int
    var passwordResetMinutes: Int
    var emailConfirmationHours: Int
    var invitationDays: Int
    /// The `maxlength` of named fields (`#(layout.limits.fields.nickname)`).
    var fields: TwofoldPolicy.Fields

    init(_ policy: TwofoldPolicy) {
        fields = policy.fields
        smsCodeMinutes = policy.sms.codeLifetimeMinutes
        pushChallengeMinutes = policy.push.challengeLifetimeMinutes
        pushEnrollmentMinutes = policy.push.enrollmentLifetimeMinutes
        passwordResetMinutes = policy.passwordReset.linkLifetimeMinutes
        emailConfirmationHours = policy.emailConfirmation.linkLifetimeHours
        invitationDays = policy.invitation.validityDays
    }
}
