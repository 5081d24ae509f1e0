import Fluent
import Foundation
import SQLKit
import TwofoldAPI
import Vapor
import Yams

/// The API's OpenAPI document as Twofold reads it: converted once per process from `Sources/TwofoldAPI/openapi.yaml`
/// (the file the API types are generated from), both for `/openapi.json` and for naming the allowed values of a refused
/// enumerated field.
struct OpenAPIDocument: Sendable {
    /// The document as `/openapi.json` serves it: JSON with sorted keys.
    let json: Data
    /// The values each enumerated property name allows (see ``DocumentedValues``).
    let enumValues: [String: [String]]

    /// The one conversion of `openapi.yaml`, or why it failed.
    static let shared = Result { try OpenAPIDocument(yaml: APIDocument.yaml()) }

    init(yaml data: Data) throws {
        guard let yaml = String(data: data, encoding: .utf8), let loaded = try Yams.load(yaml: yaml) else {
            throw Abort(.internalServerError, reason: "openapi.yaml is empty or not UTF-8")
        }
        let document = try Self.jsonValue(loaded)
        json = try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes])
        enumValues = DocumentedValues.values(in: document as? [String: Any] ?? [:])
    }

    /// A YAML value as one JSON can carry: string keys only, and no YAML-only scalars (a timestamp must be quoted).
    private static func jsonValue(_ value: Any) throws -> Any {
        switch value {
        case let mapping as [AnyHashable: Any]:
            var object: [String: Any] = [:]
            for (key, child) in mapping {
                guard let key = key.base as? String else {
                    throw Abort(.internalServerError, reason: "openapi.yaml has a key that is not a string: \(key)")
                }
                object[key] = try jsonValue(child)
            }
            return object
        case let sequence as [Any]:
            return try sequence.map(jsonValue)
        case is String, is Bool, is Int, is Double, is NSNull:
            return value
        default:
            throw Abort(.internalServerError, reason: "openapi.yaml has a value JSON cannot carry: \(value)")
        }
    }
}

/// `/health` (the process answers), `/ready` (the database answers and is migrated) and `/openapi.json`.
struct OperationsController: RouteCollection {
    let openAPIDocument: Data

    init() throws {
        openAPIDocument = try Self.openAPIJSON()
    }

    /// The API's document as JSON, as `/openapi.json` serves it (converted once, see ``OpenAPIDocument``).
    static func openAPIJSON() throws -> Data {
        try OpenAPIDocument.shared.get().json
    }

    func boot(routes: any RoutesBuilder) throws {
        routes.get(OperationsPath.health, use: health)
        routes.get(OperationsPath.ready, use: ready)
        let document = openAPIDocument
        routes.get(OperationsPath.openAPI) { _ in
            let response = Response(status: .ok, body: .init(data: document))
            response.headers.contentType = .json
            return response
        }
    }

    struct Status: Content {
        var status: String
        var reason: String?
    }

    @Sendable func health(req: Request) async throws -> Status {
        Status(status: "ok")
    }

    @Sendable func ready(req: Request) async throws -> Response {
        do {
            let applied =
                try await req.db.sql.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n")
                .from("_fluent_migrations").first(decoding: CountRow.self)?.n ?? 0
            let expected = DatabaseSetup.migrations.count
            guard applied >= expected else {
                return try await Status(status: "unavailable", reason: "database migrations are pending; run `twofold migrate`")
                    .encodeResponse(status: .serviceUnavailable, for: req)
            }
            return try await Status(status: "ready").encodeResponse(for: req)
        } catch {
            return try await Status(status: "unavailable", reason: "the database is not reachable").encodeResponse(
                status: .serviceUnavailable, for: req)
        }
    }

    private struct CountRow: Decodable { var n: Int }
}
