import Foundation
import Testing
import TwofoldCore

@Suite("Second-factor lockout policy (NIST SP 800-63B §5.2.2)")
struct SecondFactorLockoutTests {
    let policy = SecondFactorLockoutPolicy.standard
    let t0 = Date(timeIntervalSince1970: 1_000_000)

    @Test func firstFiveFailuresAreFree() {
        for failures in 0..<5 {
            #expect(policy.decision(consecutiveFailures: failures, lastFailureAt: t0, now: t0) == .allowed)
        }
    }

    @Test func delaysDoubleFromOneSecondUpToAMinute() {
        #expect(policy.delay(afterFailures: 5) == 1)
        #expect(policy.delay(afterFailures: 6) == 2)
        #expect(policy.delay(afterFailures: 9) == 16)
        #expect(policy.delay(afterFailures: 12) == 60)
        #expect(policy.delay(afterFailures: 99) == 60)
        #expect(
            policy.decision(consecutiveFailures: 6, lastFailureAt: t0, now: t0.addingTimeInterval(1))
                == .wait(until: t0.addingTimeInterval(2)))
        #expect(policy.decision(consecutiveFailures: 6, lastFailureAt: t0, now: t0.addingTimeInterval(2)) == .allowed)
    }

    @Test func everyTwentiethFailureLocksFifteenMinutes() {
        #expect(
            policy.decision(consecutiveFailures: 20, lastFailureAt: t0, now: t0.addingTimeInterval(899))
                == .locked(until: t0.addingTimeInterval(900)))
        #expect(policy.decision(consecutiveFailures: 20, lastFailureAt: t0, now: t0.addingTimeInterval(900)) == .allowed)
        #expect(policy.decision(consecutiveFailures: 40, lastFailureAt: t0, now: t0) == .locked(until: t0.addingTimeInterval(900)))
        #expect(policy.startsLock(atFailures: 20))
        #expect(policy.startsLock(atFailures: 80))
        #expect(!policy.startsLock(atFailures: 21))
    }

    @Test func aHundredFailuresLockUntilReset() {
        #expect(policy.decision(consecutiveFailures: 100, lastFailureAt: t0, now: t0.addingTimeInterval(86_400 * 365)) == .lockedUntilReset)
        #expect(policy.startsLock(atFailures: 100))
    }

    @Test func fixedWindowBlocksAtTheLimitUntilTheWindowEnds() {
        let limit = FixedWindowLimit(limit: 3, window: 60)
        #expect(limit.blockedUntil(count: 2, windowStart: t0, now: t0.addingTimeInterval(10)) == nil)
        #expect(limit.blockedUntil(count: 3, windowStart: t0, now: t0.addingTimeInterval(10)) == t0.addingTimeInterval(60))
        #expect(limit.blockedUntil(count: 3, windowStart: t0, now: t0.addingTimeInterval(60)) == nil)
    }
}
