import Fluent
import SQLKit
import Vapor

/// `/health` (the process answers), `/ready` (the database answers and is migrated) and `/openapi.json`.
struct OperationsController: RouteCollection {
    let openAPIDocument: Data

    init() throws {
        openAPIDocument = try ServerResources.data("openapi.json")
    }

    func boot(routes: any RoutesBuilder) throws {
        routes.get("health", use: health)
        routes.get("ready", use: ready)
        let document = openAPIDocument
        routes.get("openapi.json") { _ in
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
            let applied = try await req.db.sql.select().column(SQLFunction("COUNT", args: SQLLiteral.all), as: "n")
                .from("_fluent_migrations").first(decoding: CountRow.self)?.n ?? 0
            let expected = DatabaseSetup.migrations.count
            guard applied >= expected else {
                return try await Status(status: "unavailable", reason: "database migrations are pending; run `twofold migrate`").encodeResponse(status: .serviceUnavailable, for: req)
            }
            return try await Status(status: "ready").encodeResponse(for: req)
        } catch {
            return try await Status(status: "unavailable", reason: "the database is not reachable").encodeResponse(status: .serviceUnavailable, for: req)
        }
    }

    private struct CountRow: Decodable { var n: Int }
}
