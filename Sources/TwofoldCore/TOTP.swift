import Foundation

/// Time-based one-time passwords (RFC 6238): HOTP over the number of time steps since 1970.
public struct TOTP: Sendable {
    let hotp: HOTP
    /// The settings codes are made with.
    public let parameters: OTPParameters

    /// A generator for one key.
    public init(secret: OTPSecret, parameters: OTPParameters = .default) {
        self.hotp = HOTP(secret: secret, algorithm: parameters.algorithm, digits: parameters.digits)
        self.parameters = parameters
    }

    /// The time step containing `date`: ⌊unix time / period⌋.
    public func timeStep(at date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 / Double(parameters.period)).rounded(.down))
    }

    /// The code an app shows at `date`.
    public func code(at date: Date) -> String {
        code(forStep: timeStep(at: date))
    }

    /// The code for one time step.
    public func code(forStep step: Int64) -> String {
        hotp.code(counter: UInt64(max(0, step)))
    }

    /// Seconds until the code shown at `date` changes.
    public func secondsRemaining(at date: Date) -> Int {
        let elapsed = Int(date.timeIntervalSince1970.rounded(.down)) % parameters.period
        return parameters.period - elapsed
    }

    /// Checks a code against every step from `window` before to `window` after the current one.
    ///
    /// Every step in the window is computed and compared in constant time, so the time taken
    /// does not reveal which step (if any) matched.
    /// - Parameters:
    ///   - code: what the user typed (digits only, exact length).
    ///   - date: the current time.
    ///   - window: steps of clock drift to allow either way (1 by default).
    /// - Returns: the matched time step, so the caller can refuse a step already used; `nil` when none matched.
    public func verify(_ code: String, at date: Date, window: Int = 1) -> Int64? {
        guard code.utf8.count == parameters.digits, code.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        let current = timeStep(at: date)
        var matched: Int64?
        for offset in -window...window {
            let step = current + Int64(offset)
            if step >= 0, ConstantTime.equals(code.utf8, self.code(forStep: step).utf8), matched == nil {
                matched = step
            }
        }
        return matched
    }
}
