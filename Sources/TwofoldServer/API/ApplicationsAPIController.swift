import Fluent
import Vapor

/// `/api/v1/practice/applications…`: the practice's OpenID Connect clients over the API. Registered inside
/// ``PracticeAPIController``, behind the same signed-in and Manage Accounts guards; every change needs `adminPassword`.
struct ApplicationsAPIController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let applications = routes.grouped("applications")
        applications.get(use: list)
        applications.post(use: create)
        applications.get(":clientId", use: show)
        applications.patch(":clientId", use: update)
        applications.delete(":clientId", use: delete)
        applications.post(":clientId", "secret", use: rotateSecret)
        applications.post(":clientId", "disable", use: disable)
        applications.post(":clientId", "enable", use: enable)
    }

    struct ApplicationDTO: Content {
        var clientId: String
        var name: String
        var type: String
        var enabled: Bool
        var redirectUris: [String]
        var postLogoutRedirectUris: [String]
        var backchannelLogoutUri: String?
        var startUrl: String?
        var idTokenAlg: String
        var allowOfflineAccess: Bool
        var createdAt: Date
        var updatedAt: Date
        /// Only in the answer to a create: shown this once (absent for a public client).
        var clientSecret: String?

        init(_ client: OIDCClient, secret: String? = nil) {
            clientId = client.clientID
            name = client.name
            type = client.isPublic ? "public" : "confidential"
            enabled = client.enabled
            redirectUris = client.redirectURIs
            postLogoutRedirectUris = client.postLogoutRedirectURIs
            backchannelLogoutUri = client.backchannelLogoutURI
            startUrl = client.startURL
            idTokenAlg = client.idTokenAlgorithm
            allowOfflineAccess = client.allowOfflineAccess
            createdAt = client.createdAt
            updatedAt = client.updatedAt
            clientSecret = secret
        }
    }

    struct CreateRequest: Content {
        var adminPassword: String?
        var name: String
        var redirectUris: [String]
        var postLogoutRedirectUris: [String]?
        var backchannelLogoutUri: String?
        var startUrl: String?
        var isPublic: Bool?
        var idTokenAlg: String?
        var allowOfflineAccess: Bool?

        enum CodingKeys: String, CodingKey {
            case adminPassword, name, redirectUris, postLogoutRedirectUris, backchannelLogoutUri, startUrl, idTokenAlg, allowOfflineAccess
            case isPublic = "public"
        }

        var input: OIDCClientInput {
            OIDCClientInput(name: name, redirectURIs: redirectUris, postLogoutRedirectURIs: postLogoutRedirectUris ?? [],
                            backchannelLogoutURI: backchannelLogoutUri, startURL: startUrl, isPublic: isPublic ?? false,
                            idTokenAlgorithm: idTokenAlg ?? "RS256", allowOfflineAccess: allowOfflineAccess ?? false)
        }
    }

    struct PatchRequest: Content {
        var adminPassword: String?
        var name: String?
        var redirectUris: [String]?
        var postLogoutRedirectUris: [String]?
        var backchannelLogoutUri: String?
        var startUrl: String?
        var idTokenAlg: String?
        var allowOfflineAccess: Bool?

        var change: OIDCClientChange {
            OIDCClientChange(name: name, redirectURIs: redirectUris, postLogoutRedirectURIs: postLogoutRedirectUris,
                             backchannelLogoutURI: backchannelLogoutUri, startURL: startUrl, idTokenAlgorithm: idTokenAlg,
                             allowOfflineAccess: allowOfflineAccess)
        }
    }

    struct SecretDTO: Content {
        var clientId: String
        var clientSecret: String
    }

    /// The registry acting for the signed-in administrator.
    static func registry(_ req: Request) throws -> (OIDCClientRegistry, UUID) {
        let session = try req.requireSession()
        return (OIDCClientRegistry(request: req, actorID: session.userID), session.practiceID)
    }

    /// The registry, once the administrator's own password is confirmed (every change asks for it).
    static func confirmedRegistry(_ req: Request, adminPassword: String?) async throws -> (OIDCClientRegistry, UUID) {
        try await AdminService(request: req, admin: try req.requireSession()).confirmAdminPassword(adminPassword)
        return try registry(req)
    }

    static func clientID(_ req: Request) throws -> String {
        guard let id = req.parameters.get("clientId"), !id.isEmpty else { throw OIDCClientError.notFound }
        return id
    }

    /// `adminPassword` from the body; a missing body is answered as a missing password.
    static func password(_ req: Request) -> String? {
        (try? req.content.decode(PracticeAPIController.AdminPasswordRequest.self))?.adminPassword
    }

    @Sendable func list(req: Request) async throws -> [ApplicationDTO] {
        let (registry, practiceID) = try Self.registry(req)
        return try await registry.list(practiceID: practiceID).map { ApplicationDTO($0) }
    }

    @Sendable func create(req: Request) async throws -> Response {
        let body = try req.content.decode(CreateRequest.self)
        let (registry, practiceID) = try await Self.confirmedRegistry(req, adminPassword: body.adminPassword)
        let created = try await registry.create(practiceID: practiceID, body.input)
        let response = try await ApplicationDTO(created.client, secret: created.secret).encodeResponse(status: .created, for: req)
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }

    @Sendable func show(req: Request) async throws -> ApplicationDTO {
        let (registry, practiceID) = try Self.registry(req)
        return ApplicationDTO(try await registry.require(clientID: try Self.clientID(req), practiceID: practiceID))
    }

    @Sendable func update(req: Request) async throws -> ApplicationDTO {
        let id = try Self.clientID(req)
        let body = try req.content.decode(PatchRequest.self)
        let (registry, practiceID) = try await Self.confirmedRegistry(req, adminPassword: body.adminPassword)
        return ApplicationDTO(try await registry.update(clientID: id, practiceID: practiceID, body.change))
    }

    @Sendable func delete(req: Request) async throws -> HTTPStatus {
        let id = try Self.clientID(req)
        let (registry, practiceID) = try await Self.confirmedRegistry(req, adminPassword: Self.password(req))
        try await registry.delete(clientID: id, practiceID: practiceID)
        return .noContent
    }

    @Sendable func rotateSecret(req: Request) async throws -> Response {
        let id = try Self.clientID(req)
        let (registry, practiceID) = try await Self.confirmedRegistry(req, adminPassword: Self.password(req))
        let rotated = try await registry.rotateSecret(clientID: id, practiceID: practiceID)
        let response = try await SecretDTO(clientId: rotated.client.clientID, clientSecret: rotated.secret).encodeResponse(for: req)
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }

    @Sendable func disable(req: Request) async throws -> ApplicationDTO {
        let id = try Self.clientID(req)
        let (registry, practiceID) = try await Self.confirmedRegistry(req, adminPassword: Self.password(req))
        return ApplicationDTO(try await registry.disable(clientID: id, practiceID: practiceID))
    }

    @Sendable func enable(req: Request) async throws -> ApplicationDTO {
        let id = try Self.clientID(req)
        let (registry, practiceID) = try await Self.confirmedRegistry(req, adminPassword: Self.password(req))
        return ApplicationDTO(try await registry.enable(clientID: id, practiceID: practiceID))
    }
}
