import Foundation

/// A key URI that could not be read.
public struct OTPAuthURIError: Error, Hashable, CustomStringConvertible, Sendable {
    /// What kind of problem it is.
    public enum Code: Hashable, Sendable {
        case notOTPAuth
        case unsupportedType
        case missingLabel
        case badEncoding
        case missingSecret
        case invalidSecret
        case invalidAlgorithm
        case invalidDigits
        case invalidPeriod
        case issuerMismatch
    }

    /// The kind of problem.
    public let code: Code
    /// What is wrong, for a person.
    public let reason: String
    public var description: String { "OTPAuthURIError.\(code): \(reason)" }
}

/// An `otpauth://totp/Issuer:account?secret=…` key URI, as authenticator apps scan it from a QR code.
public struct OTPAuthURI: Sendable {
    /// The service name shown in the app (the practice); may be absent in URIs from elsewhere.
    public var issuer: String?
    /// The account name shown in the app (the username).
    public var account: String
    public var secret: OTPSecret
    public var parameters: OTPParameters

    /// Describes a key for an app.
    public init(issuer: String?, account: String, secret: OTPSecret, parameters: OTPParameters = .default) {
        self.issuer = issuer
        self.account = account
        self.secret = secret
        self.parameters = parameters
    }

    /// Characters left as they are in a label or query value; everything else is percent-encoded
    /// (spaces as `%20`, `:` as `%3A`, `@` as `%40`, non-ASCII as UTF-8 bytes).
    static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }

    /// The URI text, with every parameter spelled out.
    public var uri: String {
        let label = (issuer.map { Self.encode($0) + ":" } ?? "") + Self.encode(account)
        var query = ["secret=\(secret.base32)"]
        if let issuer { query.append("issuer=\(Self.encode(issuer))") }
        query.append("algorithm=\(parameters.algorithm.rawValue)")
        query.append("digits=\(parameters.digits)")
        query.append("period=\(parameters.period)")
        return "otpauth://totp/\(label)?" + query.joined(separator: "&")
    }

    /// Reads a key URI.
    /// - Throws: ``OTPAuthURIError`` naming what is wrong.
    public init(parsing string: String) throws {
        let prefix = "otpauth://"
        guard string.lowercased().hasPrefix(prefix) else {
            throw OTPAuthURIError(code: .notOTPAuth, reason: "A key URI starts with otpauth://.")
        }
        let rest = string.dropFirst(prefix.count)
        guard let slash = rest.firstIndex(of: "/") else {
            throw OTPAuthURIError(code: .missingLabel, reason: "The URI has no account name.")
        }
        let type = rest[..<slash].lowercased()
        guard type == "totp" else {
            throw OTPAuthURIError(code: .unsupportedType, reason: "Only time-based keys (otpauth://totp/…) are supported, not \(type).")
        }
        let afterType = rest[rest.index(after: slash)...]
        let parts = afterType.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        guard let rawLabel = parts.first, !rawLabel.isEmpty else {
            throw OTPAuthURIError(code: .missingLabel, reason: "The URI has no account name.")
        }
        // The issuer/account separator is a literal colon; colons inside either part are percent-encoded.
        let labelParts = rawLabel.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        let decodedParts = labelParts.map { String($0).removingPercentEncoding }
        guard decodedParts.allSatisfy({ $0 != nil }) else {
            throw OTPAuthURIError(code: .badEncoding, reason: "The account name is badly percent-encoded.")
        }
        let labelIssuer: String? = decodedParts.count == 2 ? decodedParts[0] : nil
        let account = ((decodedParts.last ?? nil) ?? "").trimmingCharacters(in: .whitespaces)
        guard !account.isEmpty else { throw OTPAuthURIError(code: .missingLabel, reason: "The URI has no account name.") }

        var values: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard kv.count == 2, let value = String(kv[1]).removingPercentEncoding else {
                    throw OTPAuthURIError(
                        code: .badEncoding, reason: "The parameter “\(pair)” is not name=value or is badly percent-encoded.")
                }
                values[kv[0].lowercased()] = value
            }
        }
        guard let secretText = values["secret"], !secretText.isEmpty else {
            throw OTPAuthURIError(code: .missingSecret, reason: "The URI has no secret= parameter.")
        }
        let secret: OTPSecret
        do { secret = try OTPSecret(base32: secretText) } catch {
            throw OTPAuthURIError(code: .invalidSecret, reason: "The secret is not a valid base32 key of at least 80 bits.")
        }
        var algorithm = OTPAlgorithm.sha1
        if let text = values["algorithm"] {
            guard let parsed = OTPAlgorithm(rawValue: text.uppercased()) else {
                throw OTPAuthURIError(code: .invalidAlgorithm, reason: "algorithm must be SHA1, SHA256 or SHA512 (got \(text)).")
            }
            algorithm = parsed
        }
        var digits = 6
        if let text = values["digits"] {
            guard let parsed = Int(text), (6...8).contains(parsed) else {
                throw OTPAuthURIError(code: .invalidDigits, reason: "digits must be 6, 7 or 8 (got \(text)).")
            }
            digits = parsed
        }
        var period = 30
        if let text = values["period"] {
            guard let parsed = Int(text), (15...300).contains(parsed) else {
                throw OTPAuthURIError(code: .invalidPeriod, reason: "period must be 15 to 300 seconds (got \(text)).")
            }
            period = parsed
        }
        let issuer = values["issuer"] ?? labelIssuer
        if let labelIssuer, let queryIssuer = values["issuer"], labelIssuer != queryIssuer {
            throw OTPAuthURIError(code: .issuerMismatch, reason: "The label says “\(labelIssuer)” but issuer= says “\(queryIssuer)”.")
        }
        self.init(
            issuer: issuer, account: account, secret: secret,
            parameters: try OTPParameters(algorithm: algorithm, digits: digits, period: period))
    }
}
