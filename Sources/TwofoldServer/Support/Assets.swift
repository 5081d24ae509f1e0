import Foundation
import Vapor

/// Locates the files shipped with the server (Leaf views, CSS, JS, the OpenAPI document).
enum ServerResources {
    static var directory: URL {
        Bundle.module.bundleURL.appendingPathComponent("Resources", isDirectory: true)
    }

    static func data(_ relativePath: String) throws -> Data {
        try Data(contentsOf: directory.appendingPathComponent(relativePath))
    }
}

/// Serves the stylesheet and script from memory, read once at start-up.
struct AssetsController: RouteCollection {
    let stylesheet: Data
    let script: Data

    init() throws {
        stylesheet = try ServerResources.data("Public/twofold.css")
        script = try ServerResources.data("Public/twofold.js")
    }

    func boot(routes: any RoutesBuilder) throws {
        let css = stylesheet
        let js = script
        routes.get(WebPath.styles) { _ in
            Self.asset(css, type: HTTPMediaType(type: "text", subType: "css", parameters: ["charset": "utf-8"]))
        }
        routes.get(WebPath.script) { _ in
            Self.asset(js, type: HTTPMediaType(type: "text", subType: "javascript", parameters: ["charset": "utf-8"]))
        }
    }

    private static func asset(_ data: Data, type: HTTPMediaType) -> Response {
        let response = Response(status: .ok, body: .init(data: data))
        response.headers.contentType = type
        response.headers.replaceOrAdd(name: .cacheControl, value: "public, max-age=3600")
        return response
    }
}
