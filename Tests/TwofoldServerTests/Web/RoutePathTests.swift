import Foundation
import Testing
import VaporTesting

@testable import TwofoldServer

@Suite("Route paths")
struct RoutePathTests {
    struct Registration: Hashable, CustomStringConvertible {
        var method: String
        var pattern: String
        var description: String { "\(method) \(pattern)" }
    }

    static var allPaths: [any RoutePath] {
        let groups: [[any RoutePath]] = [
            WebPath.allCases, AdminPath.allCases, APIPath.allCases, OIDCPath.allCases, OperationsPath.allCases,
        ]
        return groups.flatMap { $0 }
    }

    static func patternString(_ components: [PathComponent]) -> String {
        "/" + components.map(\.description).joined(separator: "/")
    }

    static var declared: [Registration] {
        allPaths.flatMap { path in path.methods.map { Registration(method: $0.rawValue, pattern: patternString(path.pattern)) } }
    }

    @Test func everyCaseIsRegisteredWithItsMethodsAndNothingElseIs() async throws {
        try await withTestApp { ctx in
            let registered = ctx.app.routes.all.map { Registration(method: $0.method.rawValue, pattern: Self.patternString($0.path)) }
            let declared = Self.declared
            #expect(registered.count > 150)
            #expect(Set(declared).count == declared.count, "two cases declare the same method and pattern")
            #expect(Set(registered).count == registered.count, "a route is registered twice")
            let missing = Set(declared).subtracting(registered)
            #expect(missing.isEmpty, "declared but not registered: \(missing.sorted { $0.description < $1.description })")
            let undeclared = Set(registered).subtracting(declared)
            #expect(undeclared.isEmpty, "registered without a path case: \(undeclared.sorted { $0.description < $1.description })")
        }
    }

    @Test func everyConcreteAddressLeadsToItsOwnRoute() async throws {
        try await withTestApp { ctx in
            // One router per method, as Vapor has; the root is not a trie path.
            var routers: [String: TrieRouter<String>] = [:]
            for route in ctx.app.routes.all where !route.path.isEmpty {
                let router = routers[route.method.rawValue] ?? TrieRouter(String.self)
                router.register(Self.patternString(route.path), at: route.path)
                routers[route.method.rawValue] = router
            }
            var checked = 0
            for path in Self.allPaths where !path.segments.isEmpty {
                for method in path.methods {
                    var parameters = Parameters()
                    let components = path.string.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
                    let found = routers[method.rawValue]?.route(path: components, parameters: &parameters)
                    #expect(found == Self.patternString(path.pattern), "\(method) \(path.string)")
                    checked += 1
                }
            }
            #expect(checked > 150)
        }
    }

    @Test func concreteAddressesFillInTheParameters() {
        let id = PathSample.id
        #expect(WebPath.home.string == "/")
        #expect(WebPath.securityFactorRemove(id).string == "/account/security/factors/\(id.uuidString)/remove")
        #expect(WebPath.securityFactorRemove(id).pattern == ["account", "security", "factors", ":id", "remove"])
        #expect(
            AdminPath.reportLost(user: id, factor: PathSample.otherID).string
                == "/admin/staff/\(id.uuidString)/factors/\(PathSample.otherID.uuidString)/report-lost")
        #expect(APIPath.epcsReport("2030-03-18.csv").string == "/api/v1/practice/epcs/reports/2030-03-18.csv")
        #expect(OIDCPath.discovery.string == "/.well-known/openid-configuration")
    }

    @Test func noticesAndQueryValuesAreEncoded() {
        #expect(WebPath.login.string(notice: .signedOut) == "/login?notice=signed-out")
        #expect(WebPath.login.string(notice: nil) == "/login")
        #expect(
            AdminPath.staff.string(notice: .staffCreated, query: ["user": "a&b=c+d e"])
                == "/admin/staff?notice=staff-created&user=a%26b%3Dc%2Bd%20e")
        #expect(WebPath.epcsLog.string(query: ["month": "2030-03"]) == "/account/epcs?month=2030-03")
    }

    @Test func listLinksCarryOnlyTheQueryValuesInUse() {
        let page = URLQueryItem(name: "page", value: "2")
        #expect(AdminPath.staff.string(query: [URLQueryItem(name: "q", value: ""), page]) == "/admin/staff?page=2")
        let search = URLQueryItem(name: "q", value: "o'neil & co")
        #expect(AdminPath.staff.string(query: [search, page]) == "/admin/staff?q=o%27neil%20%26%20co&page=2")
        #expect(AdminPath.staff.string(query: [URLQueryItem(name: "q", value: nil)]) == "/admin/staff")
    }

    @Test func aRedirectCarriesItsNotice() async throws {
        try await withTestApp { ctx in
            let request = Request(application: ctx.app, on: ctx.app.eventLoopGroup.next())
            let response = request.redirect(to: AdminPath.user(PathSample.id), notice: .passwordResetSent)
            #expect(response.headers.first(name: .location) == "/admin/staff/\(PathSample.id.uuidString)?notice=password-reset-sent")
            #expect(Notice(rawValue: "password-reset-sent") == .passwordResetSent)
        }
    }

    /// Views get every address of Twofold from their context; only links to other sites are written out.
    @Test func noViewSpellsOutAnAddress() throws {
        let views = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources/TwofoldServer/Resources/Views")
        let files = try FileManager.default.contentsOfDirectory(atPath: views.path).filter { $0.hasSuffix(".leaf") }
        #expect(files.count > 20)
        let attribute = try Regex(#"\b(action|href|src|formaction|data-[a-z-]*url)="([^"]*)""#)
        var offenders: [String] = []
        for file in files {
            let text = try String(contentsOf: views.appendingPathComponent(file), encoding: .utf8)
            for match in text.matches(of: attribute) {
                let value = String(text[match.range]).split(separator: "=", maxSplits: 1)[1].dropFirst().dropLast()
                let allowed =
                    value.hasPrefix("#(") || value.hasPrefix("https://") || value.hasPrefix("mailto:") || value.hasPrefix("#")
                    || value.isEmpty
                if !allowed { offenders.append("\(file): \(text[match.range])") }
            }
        }
        #expect(offenders.isEmpty, "hard-coded addresses: \(offenders)")
    }
}
