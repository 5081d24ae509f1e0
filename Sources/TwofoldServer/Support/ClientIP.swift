import TwofoldCore
import Vapor

extension Request {
    /// The client's address as Twofold records and throttles it: the peer, or what a trusted proxy forwarded.
    /// An IPv4 client that reaches a dual-stack socket (`::ffff:192.0.2.1`) is recorded as plain IPv4.
    var clientIP: String {
        let peer = ClientAddress.canonical(remoteAddress?.ipAddress ?? "unknown")
        let proxies = application.twofold.configuration.trustedProxies
        guard !proxies.blocks.isEmpty else { return peer }
        return proxies.clientAddress(peer: peer, forwardedFor: headers[.xForwardedFor])
    }

    /// What throttling buckets count this client under: the IPv4 address, or the /64 of an IPv6 address.
    var clientThrottleKey: String {
        ClientAddress.throttleKey(clientIP)
    }

    /// The User-Agent header, cut to the 256 characters Twofold stores with sessions and push requests.
    var userAgent: String {
        String((headers.first(name: .userAgent) ?? "").prefix(256))
    }

    var userAgentSummary: String {
        UserAgentSummary.describe(headers.first(name: .userAgent) ?? "")
    }
}

/// Turns a User-Agent header into "Chrome on Windows" for lists of remembered browsers.
enum UserAgentSummary {
    static func describe(_ agent: String) -> String {
        let browsers: [(String, String)] = [
            ("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chromium/", "Chromium"),
            ("HeadlessChrome/", "Chrome"), ("Chrome/", "Chrome"), ("Safari/", "Safari"),
        ]
        let systems: [(String, String)] = [
            ("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"),
        ]
        let browser = browsers.first { agent.contains($0.0) }?.1
        let system = systems.first { agent.contains($0.0) }?.1
        switch (browser, system) {
        case let (b?, s?): return "\(b) on \(s)"
        case let (b?, nil): return b
        case let (nil, s?): return "Browser on \(s)"
        default: return agent.isEmpty ? "Unknown browser" : String(agent.prefix(60))
        }
    }
}
