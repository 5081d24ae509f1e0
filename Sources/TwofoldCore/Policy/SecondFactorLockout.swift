import Foundation

/// How Twofold slows and stops guessing of second-factor codes for one account
/// (NIST SP 800-63B §5.2.2: no more than 100 consecutive failed attempts).
public struct SecondFactorLockoutPolicy: Sendable, Hashable {
    /// Failures allowed before each further attempt has to wait.
    public var freeAttempts: Int
    /// The longest wait between two attempts once the delays have grown.
    public var maximumDelay: TimeInterval
    /// Every this many consecutive failures the account is locked for ``lockDuration``.
    public var lockEvery: Int
    public var lockDuration: TimeInterval
    /// At this many consecutive failures only an administrator's reset unlocks the account.
    public var permanentLockAt: Int
    /// Wrong codes one pending sign-in may make before the user must enter the password again.
    public var pendingSignInLimit: Int

    /// The product's rules: 5 free attempts, then waits of 1, 2, 4 … 60 s; 15 minutes locked after 20
    /// consecutive failures (and every 20 after that); locked for good at 100; a pending sign-in ends after 10.
    public static let standard = SecondFactorLockoutPolicy(
        freeAttempts: 5, maximumDelay: 60, lockEvery: 20, lockDuration: 15 * 60, permanentLockAt: 100, pendingSignInLimit: 10)

    /// Creates a policy; see ``standard`` for the product's values.
    public init(
        freeAttempts: Int, maximumDelay: TimeInterval, lockEvery: Int, lockDuration: TimeInterval, permanentLockAt: Int,
        pendingSignInLimit: Int
    ) {
        self.freeAttempts = freeAttempts
        self.maximumDelay = maximumDelay
        self.lockEvery = lockEvery
        self.lockDuration = lockDuration
        self.permanentLockAt = permanentLockAt
        self.pendingSignInLimit = pendingSignInLimit
    }

    /// Whether an account may try a code now.
    public enum Decision: Sendable, Hashable {
        case allowed
        /// Too soon after the last failure; try again at the date.
        case wait(until: Date)
        /// Locked after many failures; unlocks by itself at the date.
        case locked(until: Date)
        /// Locked until an administrator resets the user's two-factor authentication.
        case lockedUntilReset
    }

    /// Decides whether another attempt is allowed.
    /// - Parameters:
    ///   - consecutiveFailures: failures since the last success or reset.
    ///   - lastFailureAt: when the most recent of them happened.
    ///   - now: the current time.
    /// - Returns: ``Decision/allowed`` or what stands in the way.
    public func decision(consecutiveFailures failures: Int, lastFailureAt: Date?, now: Date) -> Decision {
        if failures >= permanentLockAt { return .lockedUntilReset }
        guard failures >= freeAttempts, let last = lastFailureAt else { return .allowed }
        if failures % lockEvery == 0 {
            let until = last.addingTimeInterval(lockDuration)
            return now < until ? .locked(until: until) : .allowed
        }
        let until = last.addingTimeInterval(delay(afterFailures: failures))
        return now < until ? .wait(until: until) : .allowed
    }

    /// The wait after `failures` consecutive failures: 1 s after the fifth, doubling up to ``maximumDelay``.
    public func delay(afterFailures failures: Int) -> TimeInterval {
        guard failures >= freeAttempts else { return 0 }
        let exponent = min(failures - freeAttempts, 30)
        return min(pow(2, Double(exponent)), maximumDelay)
    }

    /// Whether reaching `failures` starts a lock that is worth an audit entry.
    public func startsLock(atFailures failures: Int) -> Bool {
        failures == permanentLockAt || (failures < permanentLockAt && failures % lockEvery == 0)
    }
}
