import Foundation
import Testing
import TwofoldAPI
import VaporTesting

@testable import TwofoldServer

/// `Sources/TwofoldAPI/openapi.yaml` is the one description of the API: the server's request and response types are
/// generated from it, and these tests hold the routes to it in both directions.
@Suite("OpenAPI document")
struct OpenAPIDocumentTests {
    /// The routes the document must describe: the JSON API and the operational endpoints.
    static func isDocumentable(_ path: String) -> Bool {
        path.hasPrefix("/api/") || path.hasPrefix("/.well-known/jwks") || ["/health", "/ready", "/metrics", "/openapi.json"].contains(path)
    }

    static let methods = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

    struct Operation {
        var method: String
        var path: String
        var object: [String: Any]
        var key: String { "\(method.uppercased()) \(OpenAPIDocumentTests.normalise(path))" }
        var id: String { object["operationId"] as? String ?? key }
        var statuses: Set<String> { Set((object["responses"] as? [String: Any] ?? [:]).keys) }
        /// The security schemes of the operation, or nil when it may be called without credentials.
        var schemes: Set<String>? {
            let requirements = object["security"] as? [[String: Any]] ?? []
            if requirements.isEmpty || requirements.contains(where: \.isEmpty) { return nil }
            return Set(requirements.flatMap(\.keys))
        }
    }

    static func served(_ ctx: TestContext) async throws -> [String: Any] {
        let response = try await ctx.app.testing().sendRequest(.GET, "/openapi.json")
        #expect(response.status == .ok)
        #expect(response.headers.contentType == .json)
        return try #require(try JSONSerialization.jsonObject(with: Data(buffer: response.body)) as? [String: Any])
    }

    static func operations(_ document: [String: Any]) throws -> [Operation] {
        let paths = try #require(document["paths"] as? [String: [String: Any]])
        return paths.flatMap { path, item in
            item.compactMap { method, object in
                guard methods.contains(method), let object = object as? [String: Any] else { return nil }
                return Operation(method: method, path: path, object: resolved(object, in: document))
            }
        }
    }

    /// Follows `$ref`s (responses, request bodies) so that the rules below see what a reader of the document sees.
    static func resolved(_ object: [String: Any], in document: [String: Any]) -> [String: Any] {
        object.mapValues { value in
            guard let dictionary = value as? [String: Any] else { return value }
            if let reference = dictionary["$ref"] as? String, reference.hasPrefix("#/") {
                var target: Any? = document
                for part in reference.dropFirst(2).split(separator: "/") { target = (target as? [String: Any])?[String(part)] }
                return (target as? [String: Any]).map { resolved($0, in: document) } ?? value
            }
            return resolved(dictionary, in: document)
        }
    }

    static func registered(_ app: Application) -> Set<String> {
        Set(
            app.routes.all.compactMap { route -> String? in
                let path =
                    "/"
                    + route.path.map { component -> String in
                        if case .parameter(let name) = component { return "{\(name)}" }
                        return component.description
                    }.joined(separator: "/")
                guard isDocumentable(path) else { return nil }
                return "\(route.method.rawValue) \(normalise(path))"
            })
    }

    static func references(in value: Any) -> Set<String> {
        switch value {
        case let object as [String: Any]:
            var found = Set(object.values.flatMap { references(in: $0) })
            if let reference = object["$ref"] as? String { found.insert(reference) }
            return found
        case let array as [Any]:
            return Set(array.flatMap { references(in: $0) })
        default:
            return []
        }
    }

    /// Parameter names may differ between the code and the document; their positions may not.
    static func normalise(_ path: String) -> String {
        path.replacingOccurrences(of: #"\{[^}]+\}"#, with: "{}", options: .regularExpression)
    }

    @Test func servedDocumentIsTheYAMLSource() async throws {
        try await withTestApp { ctx in
            let served = try await Self.served(ctx)
            #expect(served["openapi"] as? String == "3.1.0")
            // The same document the types are generated from, not a copy that could fall behind.
            let source = try #require(String(data: try APIDocument.yaml(), encoding: .utf8))
            #expect(source.hasPrefix("openapi: 3.1.0"))
            for operation in try Self.operations(served) {
                #expect(source.contains("operationId: \(operation.id)\n"), "\(operation.id) is not in openapi.yaml")
            }
            // Every reference points at something that exists.
            let references = Self.references(in: served)
            #expect(references.count > 50)
            for reference in references {
                var target: Any? = served
                for part in reference.dropFirst(2).split(separator: "/") { target = (target as? [String: Any])?[String(part)] }
                #expect(target != nil, "dangling $ref \(reference)")
            }
        }
    }

    /// Every registered route is documented, and every documented operation is registered.
    @Test func routesAndDocumentAgreeBothWays() async throws {
        try await withTestApp { ctx in
            let documented = Set(try Self.operations(try await Self.served(ctx)).map(\.key))
            let registered = Self.registered(ctx.app)
            #expect(
                registered.subtracting(documented).isEmpty, "registered but not documented: \(registered.subtracting(documented).sorted())")
            #expect(
                documented.subtracting(registered).isEmpty, "documented but not registered: \(documented.subtracting(registered).sorted())")
        }
    }

    /// The answers an operation can give are documented:
    /// - an operation that takes a request body, or a path or query parameter, documents 400 (a malformed request);
    /// - an operation that needs credentials documents 401;
    /// - an operation whose body carries a password, `adminPassword` or a code documents 429 (every password and code
    ///   check is limited per account and per address), except `validate`, which answers a limited caller `reject`;
    /// - an operation with an id in its path (`format: uuid`) documents 404 (no such resource).
    @Test func everyOperationDocumentsTheAnswersItCanGive() async throws {
        try await withTestApp { ctx in
            let document = try await Self.served(ctx)
            var missing: [String] = []
            for operation in try Self.operations(document) where operation.path.hasPrefix("/api/") {
                let declared = (operation.object["parameters"] as? [[String: Any]] ?? []).map { Self.resolved($0, in: document) }
                let parameters = declared.compactMap { $0["in"] as? String }
                let idInPath = declared.contains {
                    $0["in"] as? String == "path" && ($0["schema"] as? [String: Any])?["format"] as? String == "uuid"
                }
                let body =
                    ((operation.object["requestBody"] as? [String: Any])?["content"] as? [String: Any])?["application/json"]
                    as? [String: Any]
                let schema = body.map { Self.resolved($0, in: document) }?["schema"] as? [String: Any] ?? [:]
                let fields = Set((schema["properties"] as? [String: Any] ?? [:]).keys)
                var needed: [String] = []
                if body != nil || !parameters.isEmpty || operation.path.contains("{") { needed.append("400") }
                if operation.schemes != nil { needed.append("401") }
                if !fields.isDisjoint(with: ["password", "adminPassword", "code"]), operation.id != "validate" { needed.append("429") }
                if idInPath { needed.append("404") }
                for status in needed where !operation.statuses.contains(status) { missing.append("\(operation.id) \(status)") }
            }
            #expect(missing.isEmpty, "undocumented answers: \(missing.sorted())")
        }
    }

    /// The `security` of each operation is the guard in front of it: without credentials a secured operation answers
    /// 401; a session token does not open an API-key operation, nor an API key a session operation; an operation
    /// documented without security does not ask for credentials.
    @Test func securityMatchesTheGuards() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let (session, _, status) = try await APIClient.login(ctx)
            #expect(status == .ok)
            let sessionToken = try #require(session.token)
            let apiKey = try await APIKeyService(database: ctx.app.db, now: ctx.clock.now).create(practiceID: practice.id!, name: "EHR").key
            var wrong: [String] = []
            for operation in try Self.operations(try await Self.served(ctx)) where operation.path.hasPrefix("/api/") {
                let path = operation.path.replacingOccurrences(of: #"\{[^}]+\}"#, with: UUID().uuidString, options: .regularExpression)
                let method = HTTPMethod(rawValue: operation.method.uppercased())
                func send(_ token: String?) async throws -> HTTPResponseStatus {
                    var headers = HTTPHeaders()
                    if let token { headers.bearerAuthorization = BearerAuthorization(token: token) }
                    return try await ctx.app.testing().sendRequest(method, path, headers: headers).status
                }
                switch operation.schemes {
                case nil:
                    if try await send(nil) == .unauthorized, !Self.unsecuredButAnswers401.contains(operation.id) {
                        wrong.append("\(operation.id): documented without security, answers 401 without credentials")
                    }
                case let schemes?:
                    if try await send(nil) != .unauthorized {
                        wrong.append("\(operation.id): \(schemes.sorted()) but no 401 without credentials")
                    }
                    if schemes.contains("apiKeyAuth"), try await send(sessionToken) != .unauthorized {
                        wrong.append("\(operation.id): API key operation opened by a session token")
                    }
                    if schemes.contains("bearerAuth"), try await send(apiKey) != .unauthorized {
                        wrong.append("\(operation.id): session operation opened by an API key")
                    }
                    if !schemes.isDisjoint(with: ["bearerAuth", "cookieAuth"]), schemes.contains("apiKeyAuth") {
                        wrong.append("\(operation.id): both a session and an API key")
                    }
                }
            }
            #expect(wrong.isEmpty, "\(wrong.sorted())")
        }
    }

    /// Open operations that still answer 401 to a request without credentials, for a reason of their own (each is
    /// documented): a passkey sign-in without a credential is a failed sign-in.
    static let unsecuredButAnswers401: Set<String> = []

    /// A body field the document does not list is refused with 400 and named, before the handler runs.
    @Test func unknownBodyFieldsAreRefused() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            _ = try await Fixtures.user(ctx, practice: practice)
            let response = try await APIClient(ctx).send(
                .POST, "/api/v1/login",
                json: ["username": "dr.smith", "password": Fixtures.password, "remember": true])
            #expect(response.status == .badRequest)
            #expect(response.json["error"] as? Bool == true)
            let reason = try #require(response.json["reason"] as? String)
            #expect(reason.contains("remember"), "\(reason)")

            let missing = try await APIClient(ctx).send(.POST, "/api/v1/login", json: ["username": "dr.smith"])
            #expect(missing.status == .badRequest)
            #expect((missing.json["reason"] as? String)?.contains("password") == true, "\(missing.text)")

            let mistyped = try await APIClient(ctx).send(.POST, "/api/v1/login", json: ["username": "dr.smith", "password": 12])
            #expect(mistyped.status == .badRequest)
            #expect((mistyped.json["reason"] as? String)?.contains("password") == true, "\(mistyped.text)")
        }
    }
}
