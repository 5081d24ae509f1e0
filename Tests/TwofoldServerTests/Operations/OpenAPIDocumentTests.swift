import Foundation
import Testing
@testable import TwofoldServer
import VaporTesting

@Suite("OpenAPI document")
struct OpenAPIDocumentTests {
    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    @Test func everyAPIRouteIsDocumented() async throws {
        try await withTestApp { ctx in
            let response = try await ctx.app.testing().sendRequest(.GET, "/openapi.json")
            #expect(response.status == .ok)
            let document = try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
            #expect(document["openapi"] as? String == "3.1.0")
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            var missing: [String] = []
            for route in ctx.app.routes.all {
                let path = "/" + route.path.map { component -> String in
                    if case .parameter(let name) = component { return "{\(name)}" }
                    return component.description
                }.joined(separator: "/")
                guard path.hasPrefix("/api/") || ["/health", "/ready", "/metrics", "/openapi.json"].contains(path) else { continue }
                let documented = paths.first { Self.normalise($0.key) == Self.normalise(path) }?.value
                if documented?[route.method.rawValue.lowercased()] == nil { missing.append("\(route.method.rawValue) \(path)") }
            }
            #expect(missing.isEmpty, "undocumented: \(missing)")
        }
    }

    @Test func servedDocumentMatchesTheOneInDocs() throws {
        let served = try ServerResources.data("openapi.json")
        let docs = try Data(contentsOf: Self.repositoryRoot.appendingPathComponent("docs/openapi.json"))
        #expect(served == docs, "docs/openapi.json and Sources/TwofoldServer/Resources/openapi.json must be identical")
    }

    /// Parameter names may differ between the code and the document; their positions may not.
    static func normalise(_ path: String) -> String {
        path.replacingOccurrences(of: #"\{[^}]+\}"#, with: "{}", options: .regularExpression)
    }
}
