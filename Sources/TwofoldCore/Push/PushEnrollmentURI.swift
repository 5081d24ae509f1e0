import Foundation

/// The one-time URI a push device scans to enroll: `twofold-push://enroll?server=<base URL>&token=<token>`.
public struct PushEnrollmentURI: Equatable, Sendable {
    public var server: String
    public var token: String

    public init(server: String, token: String) {
        self.server = server
        self.token = token
    }

    /// What a device signs with its new key when it enrolls, to show it holds the private key.
    public static func proofMessage(token: String) -> [UInt8] {
        Array("twofold-enroll-v1\n\(token)".utf8)
    }

    public var uri: String {
        var components = URLComponents()
        components.scheme = "twofold-push"
        components.host = "enroll"
        components.queryItems = [URLQueryItem(name: "server", value: server), URLQueryItem(name: "token", value: token)]
        // URLComponents leaves ':' and '/' unescaped in query values; escape them so the URI reads unambiguously.
        components.percentEncodedQuery = components.percentEncodedQuery?
            .replacingOccurrences(of: ":", with: "%3A").replacingOccurrences(of: "/", with: "%2F")
        return components.string ?? ""
    }

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case notAnEnrollmentURI
        case missing(String)

        public var description: String {
            switch self {
            case .notAnEnrollmentURI: "This is not a Twofold push enrollment URI (twofold-push://enroll?…)."
            case .missing(let name): "The enrollment URI has no \(name)."
            }
        }
    }

    public init(parsing text: String) throws {
        guard let components = URLComponents(string: text.trimmingCharacters(in: .whitespacesAndNewlines)),
            components.scheme == "twofold-push", components.host == "enroll"
        else { throw ParseError.notAnEnrollmentURI }
        let items = components.queryItems ?? []
        guard let server = items.first(where: { $0.name == "server" })?.value, server.hasPrefix("http") else {
            throw ParseError.missing("server")
        }
        guard let token = items.first(where: { $0.name == "token" })?.value, !token.isEmpty else { throw ParseError.missing("token") }
        self.server = server
        self.token = token
    }
}
