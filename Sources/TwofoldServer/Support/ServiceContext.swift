import Fluent
import Logging
import TwofoldCore
import Vapor

/// Everything a service reads from the world, handed to it explicitly: the database, the time, randomness, the
/// sealing keys, the policy's numbers, who is calling (address, throttling key, browser), the audit log, password
/// checks, metrics, the logger, the configuration and the outbound HTTP client and text-message sender. Built from a request by controllers
/// (``Vapor/Request/serviceContext``), from the application by channels no HTTP request carries (RADIUS, the CLI),
/// and by tests with whatever clock, randomness or policy a rule needs — no HTTP involved.
struct ServiceContext: Sendable {
    /// Who a request comes from, as the audit log, throttling and session lists record it.
    struct Caller: Sendable {
        /// The client's address (a trusted proxy's forwarded address when configured; the device's for RADIUS).
        var ip: String
        /// What throttling buckets count the caller under: the IPv4 address, or the /64 of an IPv6 address.
        var throttleKey: String
        /// The User-Agent, cut to the 256 characters Twofold stores (a RADIUS client's name for RADIUS).
        var userAgent: String
        /// "Chrome on Windows", for lists of sessions and remembered browsers.
        var userAgentSummary: String { UserAgentSummary.describe(userAgent) }

        init(ip: String, userAgent: String) {
            self.ip = ip
            self.throttleKey = ClientAddress.throttleKey(ip)
            self.userAgent = String(userAgent.prefix(256))
        }
    }

    var database: any Database
    var now: Date
    var random: RandomSource
    var sealer: SecretSealer
    var policy: TwofoldPolicy
    var metrics: TwofoldMetrics
    var caller: Caller
    var audit: AuditRecorder
    var passwords: PasswordChecker
    var configuration: TwofoldConfiguration
    var logger: Logger
    var client: any Client
    var smsSender: any SMSSender

    /// The same context on another handle of the database (a transaction): reads, writes and audit events go through it.
    func on(_ database: any Database) -> ServiceContext {
        var context = self
        context.database = database
        context.audit.database = database
        return context
    }

    /// The same context at another moment (tests, and long operations that take the time again).
    func at(_ now: Date) -> ServiceContext {
        var context = self
        context.now = now
        context.audit.now = now
        return context
    }
}

extension Application {
    /// A context for work that arrives without an HTTP request (a RADIUS packet, a CLI command): `ip` and `userAgent`
    /// are what the audit log records as the caller (a device's address and name).
    func serviceContext(ip: String, userAgent: String, database: (any Database)? = nil) -> ServiceContext {
        serviceContext(caller: .init(ip: ip, userAgent: userAgent), database: database ?? db, logger: logger, client: client, hopTo: nil)
    }

    func serviceContext(
        caller: ServiceContext.Caller, database: any Database, logger: Logger, client: any Client, hopTo eventLoop: (any EventLoop)?
    )
        -> ServiceContext
    {
        let now = twofold.clock.now()
        let pool = storage[PasswordHashingPool.Key.self] ?? threadPool
        let passwords = PasswordChecker(
            hasher: password.sync.async(on: pool, hopTo: eventLoop ?? eventLoopGroup.next()), pool: pool,
            decoyHash: twofold.decoyPasswordHash, cost: twofold.configuration.bcryptCost, counter: passwordChecks)
        return ServiceContext(
            database: database, now: now, random: twofold.random, sealer: twofold.sealer, policy: policy, metrics: metrics,
            caller: caller, audit: AuditRecorder(database: database, now: now, ip: caller.ip, userAgent: caller.userAgent),
            passwords: passwords, configuration: twofold.configuration, logger: logger, client: client, smsSender: smsSender)
    }
}

extension Request {
    /// This request's context: its database handle, the time now, its client address and browser for the audit log.
    var serviceContext: ServiceContext {
        application.serviceContext(
            caller: .init(ip: clientIP, userAgent: headers.first(name: .userAgent) ?? ""), database: db, logger: logger, client: client,
            hopTo: eventLoop)
    }
}
