import Foundation
import TwofoldCore

/// Everything Twofold reads from the environment, decoded once at start-up.
///
/// `serve`, the admin commands and the tests all build the application from one of these,
/// so no other file reads environment variables.
public struct TwofoldConfiguration: Sendable {
    public enum Storage: Sendable, Equatable {
        case sqliteFile(path: String)
        case sqliteMemory
        case postgres(url: String, searchPath: String?)
    }

    public enum SMSSenderChoice: Sendable, Equatable {
        case outbox
        case twilio(TwilioSettings)
        case webhook(WebhookSettings)
    }

    public struct TwilioSettings: Sendable, Equatable {
        public var accountSID: String
        public var authToken: String
        public var fromNumber: String
        public var apiBaseURL: String
    }

    public struct WebhookSettings: Sendable, Equatable {
        public var url: String
        public var signingSecret: String
    }

    /// Where outgoing email goes: kept in the database (`twofold mail list`), or an SMTP server.
    public enum EmailSenderChoice: Sendable, Equatable {
        case outbox
        case smtp(SMTPSettings)
    }

    /// An SMTP server from `TWOFOLD_SMTP_URL` (`smtp://user:pass@host:587`, STARTTLS required; `smtps://…:465`,
    /// implicit TLS) and `TWOFOLD_SMTP_CA_FILE`.
    public struct SMTPSettings: Sendable, Equatable {
        public enum Security: String, Sendable, Equatable {
            /// Plain connection upgraded with STARTTLS; a server that does not offer it is refused.
            case startTLS = "starttls"
            /// TLS from the first byte (port 465).
            case implicitTLS = "tls"
        }

        public var host: String
        public var port: Int
        public var security: Security
        public var username: String?
        public var password: String?
        /// PEM file of private certificate authorities to trust besides the system's.
        public var caFile: String?
    }

    public var storage: Storage
    /// PostgreSQL connections each event loop may open (the pool is this times the number of cores).
    public var postgresConnectionsPerEventLoop = 8
    /// How long a query waits for a free database connection before the request fails.
    public var databaseConnectionWaitSeconds = 30
    public var dataDirectory: String
    public var sealingKey: SealingKey?
    public var previousSealingKeys: [SealingKey]
    public var smsSender: SMSSenderChoice
    public var emailSender: EmailSenderChoice = .outbox
    /// The `From` of every message (`TWOFOLD_EMAIL_FROM`), e.g. `Riverside 2FA <2fa@example-clinic.org>`.
    public var emailFrom: String = "Twofold <twofold@localhost>"
    /// Marks cookies `Secure`; on when Twofold sits behind a TLS-terminating proxy.
    public var secureCookies: Bool
    /// Bcrypt cost for new password hashes; tests lower it to keep the suite quick.
    public var bcryptCost: Int
    public var issuerFallback: String
    /// Reverse proxies whose `X-Forwarded-For` is believed for the client address (throttling and audit depend on it).
    public var trustedProxies: TrustedProxies = TrustedProxies([])
    /// Where `serve` listens for RADIUS (`TWOFOLD_RADIUS_LISTEN`); empty: no RADIUS listener.
    public var radiusListen: [RADIUSListenAddress] = []
    /// Where audit checkpoints are shipped besides the checkpoint file: `TWOFOLD_AUDIT_CHECKPOINT_WEBHOOK`, `TWOFOLD_AUDIT_SYSLOG`.
    var auditShipping = AuditShipping.Targets()
    /// When set, `/metrics` answers only requests bearing this token.
    public var metricsToken: String?
    /// The address users and devices reach Twofold at (e.g. `https://2fa.example-clinic.org`): put in push
    /// enrollment codes and as the issuer of step-up assertions. Without it, the address of each request is used.
    public var publicURL: String?
    /// Passkeys: the relying-party id (a domain), the page origins browsers may use, optional attestation roots.
    public var relyingParty = RelyingParty(id: "localhost", name: "Twofold", origins: ["http://localhost:8080"])

    public init(
        storage: Storage = .sqliteMemory,
        dataDirectory: String = FileManager.default.currentDirectoryPath,
        sealingKey: SealingKey? = nil,
        previousSealingKeys: [SealingKey] = [],
        smsSender: SMSSenderChoice = .outbox,
        secureCookies: Bool = false,
        bcryptCost: Int = 12,
        issuerFallback: String = "Twofold"
    ) {
        self.storage = storage
        self.dataDirectory = dataDirectory
        self.sealingKey = sealingKey
        self.previousSealingKeys = previousSealingKeys
        self.smsSender = smsSender
        self.secureCookies = secureCookies
        self.bcryptCost = bcryptCost
        self.issuerFallback = issuerFallback
    }
}

/// A configuration problem, listing every bad variable at once so an operator can fix them in one go.
public struct ConfigurationError: Error, CustomStringConvertible {
    public var problems: [String]
    public var description: String {
        "Twofold cannot start; fix these settings:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
    }
}

extension TwofoldConfiguration {
    /// The lowest bcrypt cost `TWOFOLD_BCRYPT_COST` accepts unless `TWOFOLD_ALLOW_WEAK_BCRYPT=1` (tests and development only).
    public static let minimumBcryptCost = 10

    /// Reads the configuration from environment variables (see README, "Configuration").
    /// - Throws: ``ConfigurationError`` naming every variable that is set but unusable.
    public static func fromEnvironment(_ env: [String: String] = ProcessInfo.processInfo.environment) throws -> TwofoldConfiguration {
        var problems: [String] = []
        var config = TwofoldConfiguration()
        let dataDirectory = env["TWOFOLD_DATA_DIR"].flatMap { $0.isEmpty ? nil : $0 } ?? FileManager.default.currentDirectoryPath
        config.dataDirectory = dataDirectory

        if let url = env["DATABASE_URL"], !url.isEmpty {
            if url.hasPrefix("postgres://") || url.hasPrefix("postgresql://") {
                config.storage = .postgres(url: url, searchPath: nil)
            } else if url.hasPrefix("sqlite://") {
                config.storage = .sqliteFile(path: String(url.dropFirst("sqlite://".count)))
            } else {
                problems.append(
                    "DATABASE_URL must start with postgres:// (or sqlite:// for a file path); leave it unset for the built-in SQLite database"
                )
            }
        } else {
            config.storage = .sqliteFile(path: (dataDirectory as NSString).appendingPathComponent("twofold.sqlite"))
        }

        if let key = env["TWOFOLD_SECRET_KEY"], !key.isEmpty {
            do { config.sealingKey = try SealingKey(base64: key) } catch {
                problems.append("TWOFOLD_SECRET_KEY must be the base64 encoding of exactly 32 random bytes (try: openssl rand -base64 32)")
            }
        }
        if let previous = env["TWOFOLD_PREVIOUS_SECRET_KEYS"], !previous.isEmpty {
            for (index, part) in previous.split(separator: ",").enumerated() {
                do { config.previousSealingKeys.append(try SealingKey(base64: part.trimmingCharacters(in: .whitespaces))) } catch {
                    problems.append("TWOFOLD_PREVIOUS_SECRET_KEYS entry \(index + 1) is not base64 of 32 bytes")
                }
            }
        }

        switch env["TWOFOLD_SMS_SENDER"]?.lowercased() ?? "outbox" {
        case "", "outbox":
            config.smsSender = .outbox
        case "twilio":
            let sid = env["TWILIO_ACCOUNT_SID"] ?? ""
            let token = env["TWILIO_AUTH_TOKEN"] ?? ""
            let from = env["TWILIO_FROM_NUMBER"] ?? ""
            if sid.isEmpty { problems.append("TWILIO_ACCOUNT_SID is required when TWOFOLD_SMS_SENDER=twilio") }
            if token.isEmpty { problems.append("TWILIO_AUTH_TOKEN is required when TWOFOLD_SMS_SENDER=twilio") }
            if from.isEmpty { problems.append("TWILIO_FROM_NUMBER is required when TWOFOLD_SMS_SENDER=twilio") }
            let base = env["TWILIO_API_BASE_URL"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://api.twilio.com"
            if !isAcceptableOutboundURL(base) {
                problems.append("TWILIO_API_BASE_URL must be an https:// URL (http:// only for 127.0.0.1 or localhost)")
            }
            config.smsSender = .twilio(.init(accountSID: sid, authToken: token, fromNumber: from, apiBaseURL: base))
        case "webhook":
            let url = env["TWOFOLD_SMS_WEBHOOK_URL"] ?? ""
            let secret = env["TWOFOLD_SMS_WEBHOOK_SECRET"] ?? ""
            if !isAcceptableOutboundURL(url) {
                problems.append("TWOFOLD_SMS_WEBHOOK_URL must be an https:// URL (http:// only for 127.0.0.1 or localhost)")
            }
            if secret.utf8.count < 16 {
                problems.append("TWOFOLD_SMS_WEBHOOK_SECRET must be at least 16 characters; it signs every webhook request")
            }
            config.smsSender = .webhook(.init(url: url, signingSecret: secret))
        case let other:
            problems.append("TWOFOLD_SMS_SENDER must be outbox, twilio or webhook (got \(other))")
        }

        switch env["TWOFOLD_EMAIL_SENDER"]?.lowercased() ?? "outbox" {
        case "", "outbox":
            config.emailSender = .outbox
        case "smtp":
            do {
                var settings = try smtpSettings(url: env["TWOFOLD_SMTP_URL"] ?? "")
                if let caFile = env["TWOFOLD_SMTP_CA_FILE"], !caFile.isEmpty {
                    if FileManager.default.isReadableFile(atPath: caFile) {
                        settings.caFile = caFile
                    } else {
                        problems.append(
                            "TWOFOLD_SMTP_CA_FILE \(caFile) cannot be read; it must be a PEM file of the certificate authorities to trust")
                    }
                }
                config.emailSender = .smtp(settings)
            } catch let problem as SMTPURLProblem {
                problems.append(problem.description)
            }
            if (env["TWOFOLD_PUBLIC_URL"] ?? "").isEmpty {
                problems.append(
                    "TWOFOLD_PUBLIC_URL is required when TWOFOLD_EMAIL_SENDER=smtp: links in messages must point at the address users reach Twofold at"
                )
            }
        case let other:
            problems.append("TWOFOLD_EMAIL_SENDER must be outbox or smtp (got \(other))")
        }
        if let from = env["TWOFOLD_EMAIL_FROM"], !from.isEmpty {
            if let problem = emailFromProblem(from) { problems.append(problem) } else { config.emailFrom = from }
        }

        if let secure = env["TWOFOLD_SECURE_COOKIES"], !secure.isEmpty {
            switch secure.lowercased() {
            case "1", "true", "yes", "on": config.secureCookies = true
            case "0", "false", "no", "off": config.secureCookies = false
            default: problems.append("TWOFOLD_SECURE_COOKIES must be true or false")
            }
        }
        if let cost = env["TWOFOLD_BCRYPT_COST"], !cost.isEmpty {
            let allowWeak = ["1", "true", "yes", "on"].contains(env["TWOFOLD_ALLOW_WEAK_BCRYPT"]?.lowercased() ?? "")
            if let value = Int(cost), (4...31).contains(value), value >= minimumBcryptCost || allowWeak {
                config.bcryptCost = value
            } else if let value = Int(cost), (4..<minimumBcryptCost).contains(value) {
                problems.append(
                    "TWOFOLD_BCRYPT_COST \(value) is too weak for stored passwords; use \(minimumBcryptCost) to 31 (default 12). Only test and development set-ups may go lower, with TWOFOLD_ALLOW_WEAK_BCRYPT=1"
                )
            } else {
                problems.append("TWOFOLD_BCRYPT_COST must be a whole number from \(minimumBcryptCost) to 31 (default 12)")
            }
        }
        if let token = env["TWOFOLD_METRICS_TOKEN"], !token.isEmpty {
            if token.count < 16 {
                problems.append("TWOFOLD_METRICS_TOKEN must be at least 16 characters")
            } else {
                config.metricsToken = token
            }
        }
        if let url = env["TWOFOLD_PUBLIC_URL"], !url.isEmpty {
            if let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""), parsed.host != nil {
                config.publicURL = url.hasSuffix("/") ? String(url.dropLast()) : url
            } else {
                problems.append("TWOFOLD_PUBLIC_URL must be an http(s) address such as https://2fa.example-clinic.org")
            }
        }
        do { config.relyingParty = try relyingParty(from: env, publicURL: config.publicURL) } catch let problem
            as RelyingParty.ConfigurationProblem
        {
            problems.append(problem.description)
        }
        if let proxies = env["TWOFOLD_TRUSTED_PROXIES"], !proxies.isEmpty {
            if let parsed = TrustedProxies(list: proxies) {
                config.trustedProxies = parsed
            } else {
                problems.append("TWOFOLD_TRUSTED_PROXIES must be comma-separated addresses or CIDR blocks, e.g. 127.0.0.1/32,10.0.0.0/8")
            }
        }
        if let listen = env["TWOFOLD_RADIUS_LISTEN"], !listen.isEmpty {
            for part in listen.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                if let address = RADIUSListenAddress(part) {
                    config.radiusListen.append(address)
                } else {
                    problems.append("TWOFOLD_RADIUS_LISTEN entry \(part) must be address:port, e.g. 127.0.0.1:1812 or [::1]:1812")
                }
            }
        }
        config.auditShipping = AuditShipping.Targets.from(env, problems: &problems)
        guard problems.isEmpty else { throw ConfigurationError(problems: problems) }
        return config
    }

    /// TWOFOLD_RP_ID and TWOFOLD_ORIGINS, else the host and origin of TWOFOLD_PUBLIC_URL, else localhost and
    /// http://localhost:8080 (the run command's address).
    static func relyingParty(from env: [String: String], publicURL: String?) throws -> RelyingParty {
        let publicAddress = publicURL.flatMap { URL(string: $0) }
        let publicHost = publicAddress?.host
        let publicOrigin = publicAddress.flatMap { url in url.scheme.map { "\($0)://\(url.host ?? "")" + (url.port.map { ":\($0)" } ?? "") }
        }
        let id = env["TWOFOLD_RP_ID"].flatMap { $0.isEmpty ? nil : $0 } ?? publicHost ?? "localhost"
        let origins =
            env["TWOFOLD_ORIGINS"].flatMap { $0.isEmpty ? nil : $0 }?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            ?? [publicOrigin ?? "http://localhost:8080"]
        var party = try RelyingParty.validated(id: id, origins: origins, name: "Twofold")
        if let path = env["TWOFOLD_WEBAUTHN_TRUST_ANCHORS"], !path.isEmpty {
            guard let pem = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw RelyingParty.ConfigurationProblem.trustAnchors("cannot read \(path)")
            }
            party.trustAnchors = try RelyingParty.certificates(pem: pem)
        }
        return party
    }

    static func isAcceptableOutboundURL(_ string: String) -> Bool {
        guard let url = URL(string: string), let scheme = url.scheme?.lowercased(), let host = url.host?.lowercased() else { return false }
        if scheme == "https" { return true }
        return scheme == "http" && (host == "127.0.0.1" || host == "localhost" || host == "::1")
    }
}

/// One `address:port` of `TWOFOLD_RADIUS_LISTEN` (`127.0.0.1:1812`, `0.0.0.0:1812`, `[::1]:1812`).
public struct RADIUSListenAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init?(_ text: String) {
        let hostPart: Substring
        let portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            hostPart = text[text.index(after: text.startIndex)..<close]
            portPart = text[text.index(close, offsetBy: 2)...]
        } else {
            let pieces = text.split(separator: ":", omittingEmptySubsequences: false)
            guard pieces.count == 2 else { return nil }
            hostPart = pieces[0]
            portPart = pieces[1]
        }
        guard !hostPart.isEmpty, CIDRBlock(String(hostPart)) != nil, let port = Int(portPart), (1...65_535).contains(port) else {
            return nil
        }
        host = String(hostPart)
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Why `TWOFOLD_SMTP_URL` is unusable.
struct SMTPURLProblem: Error, CustomStringConvertible {
    var description: String
}

extension TwofoldConfiguration {
    /// Parses `smtp://[user[:password]@]host[:port]` (STARTTLS, port 587 by default) or `smtps://…` (implicit TLS,
    /// port 465); user and password are percent-decoded.
    static func smtpSettings(url text: String) throws -> SMTPSettings {
        let usage =
            "TWOFOLD_SMTP_URL must look like smtp://user:password@smtp.example.org:587 (STARTTLS) or smtps://user:password@smtp.example.org:465 (TLS)"
        guard !text.isEmpty else {
            throw SMTPURLProblem(
                description: "TWOFOLD_SMTP_URL is required when TWOFOLD_EMAIL_SENDER=smtp; " + usage.dropFirst("TWOFOLD_SMTP_URL ".count))
        }
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(), let host = components.host,
            !host.isEmpty
        else { throw SMTPURLProblem(description: usage) }
        let security: SMTPSettings.Security
        switch scheme {
        case "smtp": security = .startTLS
        case "smtps": security = .implicitTLS
        default: throw SMTPURLProblem(description: usage)
        }
        if let port = components.port, !(1...65535).contains(port) { throw SMTPURLProblem(description: usage) }
        guard components.path.isEmpty || components.path == "/", components.query == nil else { throw SMTPURLProblem(description: usage) }
        let user = components.percentEncodedUser.flatMap { $0.removingPercentEncoding }
        let password = components.percentEncodedPassword.flatMap { $0.removingPercentEncoding }
        if password != nil, user == nil { throw SMTPURLProblem(description: usage) }
        return SMTPSettings(
            host: host, port: components.port ?? (security == .implicitTLS ? 465 : 587), security: security,
            username: user.flatMap { $0.isEmpty ? nil : $0 }, password: password, caFile: nil)
    }

    /// `Name <address>` or a bare address, without line breaks.
    static func emailFromProblem(_ from: String) -> String? {
        let usage = "TWOFOLD_EMAIL_FROM must be an address such as 2fa@example-clinic.org or \"Riverside 2FA <2fa@example-clinic.org>\""
        if from.contains(where: { $0.isNewline }) { return usage }
        let address: Substring
        if let open = from.lastIndex(of: "<"), from.hasSuffix(">") {
            address = from[from.index(after: open)..<from.index(before: from.endIndex)]
        } else {
            address = Substring(from)
        }
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !address.contains(where: \.isWhitespace) else { return usage }
        return nil
    }
}
