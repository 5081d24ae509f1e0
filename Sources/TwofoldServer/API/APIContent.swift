import Foundation
import TwofoldAPI
import Vapor

/// The API's request and response bodies, generated from `Sources/TwofoldAPI/openapi.yaml`.
typealias API = Components.Schemas

extension Request {
    /// Decodes a JSON body as one of the document's request types. A body with a field the document does not list,
    /// a missing field or a mistyped one is refused with 400 (see `DecodingError.clientReason`).
    func apiBody<Body: Decodable>(_ type: Body.Type) throws -> Body {
        try content.decode(type)
    }

    /// A body the operation may go without: no body at all is nil, a body that does not fit the document is still a 400.
    func optionalAPIBody<Body: Decodable>(_ type: Body.Type) throws -> Body? {
        guard let body = self.body.data, body.readableBytes > 0 else { return nil }
        return try content.decode(type)
    }
}

/// Ids travel as strings in the generated types (`format: uuid`).
enum APIField {
    /// An id a client sent: a malformed one is a 400 that names the field.
    static func uuid(_ value: String?, _ field: String) throws -> UUID? {
        guard let value else { return nil }
        guard let id = UUID(uuidString: value) else { throw Abort(.badRequest, reason: "\(field) is not a valid id.") }
        return id
    }

    static func uuid(_ value: String, _ field: String) throws -> UUID {
        guard let id = UUID(uuidString: value) else { throw Abort(.badRequest, reason: "\(field) is not a valid id.") }
        return id
    }
}

extension RawRepresentable where RawValue == String {
    /// A model value as one of the document's enum cases; a value the document does not list is a server fault.
    static func documented(_ value: String) throws -> Self {
        guard let documented = Self(rawValue: value) else {
            throw Abort(.internalServerError, reason: "The value \(value) is not in the API document.")
        }
        return documented
    }
}

extension DecodingError {
    /// What was wrong with a request body, naming the field, for the person who wrote the client.
    var clientReason: String {
        func path(_ context: Context, _ key: (any CodingKey)? = nil) -> String {
            let keys = context.codingPath + (key.map { [$0] } ?? [])
            guard !keys.isEmpty else { return "the body" }
            // Array positions read as `field[0]`, object keys as `field.key`.
            return keys.enumerated().map { offset, key in
                if let index = key.intValue { return "[\(index)]" }
                return offset == 0 ? key.stringValue : "." + key.stringValue
            }.joined()
        }
        switch self {
        case .keyNotFound(let key, let context):
            return "The request body is missing \(path(context, key))."
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            return "In the request body, \(path(context)) has the wrong type (expected \(Self.describe(type)))."
        case .dataCorrupted(let context):
            if context.debugDescription.hasPrefix("Additional properties are disabled") {
                return "The request body has a field this operation does not take: \(path(context))."
            }
            if let field = context.codingPath.last(where: { $0.intValue == nil })?.stringValue, let allowed = DocumentedValues.shared[field]
            {
                return "In the request body, \(path(context)) must be one of \(allowed.joined(separator: ", "))."
            }
            return context.codingPath.isEmpty
                ? "The request body is not valid JSON." : "In the request body, \(path(context)) is not valid."
        @unknown default:
            return "The request body does not fit this operation."
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is Int.Type, is Double.Type: "a number"
        case is [Any].Type: "an array"
        default: "an object"
        }
    }
}

/// The values the OpenAPI document allows for each enumerated property name (only names whose every schema agrees),
/// so that a refused value is answered with the list of allowed ones.
enum DocumentedValues {
    /// Read from the document converted once for `/openapi.json`; empty if `openapi.yaml` could not be read.
    static var shared: [String: [String]] {
        (try? OpenAPIDocument.shared.get().enumValues) ?? [:]
    }

    /// The enumerated properties of the schemas under `components/schemas` of a document (as JSON objects).
    static func values(in document: [String: Any]) -> [String: [String]] {
        guard let schemas = (document["components"] as? [String: Any])?["schemas"] as? [String: Any] else { return [:] }
        var found: [String: [String]] = [:]
        var conflicting: Set<String> = []
        for case let schema as [String: Any] in schemas.values {
            for case let (name, property as [String: Any]) in (schema["properties"] as? [String: Any]) ?? [:] {
                let values = (property["enum"] ?? (property["items"] as? [String: Any])?["enum"]) as? [Any]
                guard let strings = values?.compactMap({ $0 as? String }), !strings.isEmpty else { continue }
                if let earlier = found[name], earlier != strings { conflicting.insert(name) }
                found[name] = strings
            }
        }
        return found.filter { !conflicting.contains($0.key) }
    }
}
