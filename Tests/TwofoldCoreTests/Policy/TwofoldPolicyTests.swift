import Foundation
import Testing
import TwofoldCore

@Suite("Twofold's policy: lifetimes, limits and the practice settings' bounds")
struct TwofoldPolicyTests {
    let policy = TwofoldPolicy.standard

    @Test func everyPracticeSettingDefaultsInsideItsRange() {
        for (name, setting) in policy.allPracticeSettings {
            #expect(setting.range.contains(setting.default), "\(name): \(setting.default) is outside \(setting.range)")
        }
        #expect(!policy.allPracticeSettings.isEmpty)
    }

    @Test func lifetimesArePositive() {
        for (name, lifetime) in policy.allLifetimes {
            #expect(lifetime > 0, "\(name) is \(lifetime)")
        }
    }

    @Test func limitsAllowSomethingInAPositiveWindow() {
        for (name, limit) in policy.allLimits {
            #expect(limit.limit >= 1, "\(name) allows \(limit.limit)")
            #expect(limit.window > 0, "\(name) has window \(limit.window)")
        }
    }

    @Test func codeGuessesAreBoundedAndPositive() {
        #expect(policy.sms.guessesPerCode >= 1)
        #expect(policy.stepUp.guessesPerChallenge >= 1)
        #expect(policy.lockout.freeAttempts >= 1)
        #expect(policy.lockout.freeAttempts < policy.lockout.lockEvery)
        // NIST SP 800-63B §5.2.2: no more than 100 consecutive failed attempts.
        #expect(policy.lockout.permanentLockAt <= 100)
        #expect(policy.lockout.pendingSignInLimit >= policy.lockout.freeAttempts)
    }

    @Test func practiceRangesAreSane() {
        let practice = policy.practice
        #expect(practice.nameLength.lowerBound >= 1)
        // 0 turns remembering off, so it must stay allowed.
        #expect(practice.rememberBrowserDays.contains(0))
        #expect(practice.inactivityMinutes.lowerBound >= 1)
        #expect(practice.sessionLifetimeHours.lowerBound >= 1)
        // An idle timeout longer than the session lifetime would never apply.
        #expect(practice.inactivityMinutes.default <= practice.sessionLifetimeHours.default * 60)
        #expect(practice.otpDigits.range.lowerBound >= 6 && practice.otpDigits.range.upperBound <= 8)
        #expect(practice.epcsWorkingHoursStart.default < practice.epcsWorkingHoursEnd.default)
        #expect(practice.epcsWorkingHoursStart.range.lowerBound >= 0 && practice.epcsWorkingHoursEnd.range.upperBound <= 24)
    }

    @Test func shortLivedProofsOutliveNothingTheyGuard() {
        // A push request cannot outlive the SMS fallback offered next to it by much, and a step-up assertion is
        // issued only for a live challenge.
        #expect(policy.push.challengeLifetime <= policy.sms.codeLifetime)
        #expect(policy.stepUp.assertionLifetime <= policy.stepUp.challengeLifetime)
        #expect(policy.oidc.codeLifetime <= policy.oidc.pendingRequestLifetime)
        #expect(policy.passwordReset.perAccount.limit <= policy.passwordReset.perLogin.limit)
    }

    @Test func wholeUnitsForWhatMessagesSay() {
        #expect(TimeInterval(policy.sms.codeLifetimeMinutes * 60) == policy.sms.codeLifetime)
        #expect(TimeInterval(policy.push.challengeLifetimeMinutes * 60) == policy.push.challengeLifetime)
        #expect(TimeInterval(policy.push.enrollmentLifetimeMinutes * 60) == policy.push.enrollmentLifetime)
        #expect(TimeInterval(policy.passwordReset.linkLifetimeMinutes * 60) == policy.passwordReset.linkLifetime)
        #expect(TimeInterval(policy.emailConfirmation.linkLifetimeHours * 3600) == policy.emailConfirmation.linkLifetime)
        #expect(policy.invitation.validity == TimeInterval(policy.invitation.validityDays) * 86_400)
    }

    @Test func boundedClampsIntoItsRange() {
        let setting = Bounded(10, in: 5...15)
        #expect(setting.clamped(1) == 5)
        #expect(setting.clamped(99) == 15)
        #expect(setting.clamped(7) == 7)
        #expect(setting.contains(5) && setting.contains(15) && !setting.contains(16))
    }

    @Test func aChangedCopyIsADifferentPolicy() {
        var shorter = policy
        shorter.sms.codeLifetime = 60
        #expect(shorter != policy)
        #expect(TwofoldPolicy.standard.sms.codeLifetime == 600)
    }
}
