import Foundation
import TwofoldCore
import Vapor

/// The clock every rule reads; tests replace it to pin or advance time.
public struct TwofoldClock: Sendable {
    public var now: @Sendable () -> Date
    public init(now: @escaping @Sendable () -> Date) { self.now = now }
    public static let system = TwofoldClock { Date() }
}

/// Application-wide services, set once in `configure` and read by every feature.
public struct TwofoldServices: Sendable {
    public var configuration: TwofoldConfiguration
    public var sealer: SecretSealer
    public var clock: TwofoldClock
    /// The randomness of every code and token the services make; tests replace it to make codes repeatable.
    public var random: RandomSource = .system
    /// A hash of a random password at the configured cost: checked when no user matched,
    /// so a wrong username takes as long as a wrong password.
    var decoyPasswordHash: String
}

extension Application {
    private struct ServicesKey: StorageKey { typealias Value = TwofoldServices }

    public var twofold: TwofoldServices {
        get {
            guard let services = storage[ServicesKey.self] else { fatalError("configure(_:_:) must run before Twofold services are used") }
            return services
        }
        set { storage[ServicesKey.self] = newValue }
    }
}

extension Request {
    var twofold: TwofoldServices { application.twofold }
    var now: Date { application.twofold.clock.now() }
}
