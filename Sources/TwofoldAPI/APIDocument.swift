import Foundation

/// The OpenAPI document that the types of this module are generated from, as it is edited in `openapi.yaml`.
public enum APIDocument {
    public static func yaml() throws -> Data {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "yaml") else {
            throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "openapi.yaml"])
        }
        return try Data(contentsOf: url)
    }
}
