import Fluent
import TwofoldAPI
import Vapor

/// `/api/v1/practice/applications…`: the practice's OpenID Connect clients over the API. Registered inside
/// ``PracticeAPIController``, behind the same signed-in and Manage Accounts guards; every change needs `adminPassword`.
struct ApplicationsAPIController: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        routes.get(APIPath.applications, use: list)
        routes.post(APIPath.applications, use: create)
        routes.get(APIPath.application(.placeholder), use: show)
        routes.patch(APIPath.application(.placeholder), use: update)
        routes.delete(APIPath.application(.placeholder), use: delete)
        routes.post(APIPath.applicationSecret(.placeholder), use: rotateSecret)
        routes.post(APIPath.applicationDisable(.placeholder), use: disable)
        routes.post(APIPath.applicationEnable(.placeholder), use: enable)
    }

    static func input(_ body: API.CreateApplicationRequest) -> OIDCClientInput {
        OIDCClientInput(
            name: body.name, redirectURIs: body.redirectUris, postLogoutRedirectURIs: body.postLogoutRedirectUris ?? [],
            backchannelLogoutURI: body.backchannelLogoutUri, startURL: body.startUrl, isPublic: body._public ?? false,
            idTokenAlgorithm: body.idTokenAlg?.rawValue ?? "RS256", allowOfflineAccess: body.allowOfflineAccess ?? false)
    }

    static func change(_ body: API.UpdateApplicationRequest) -> OIDCClientChange {
        OIDCClientChange(
            name: body.name, redirectURIs: body.redirectUris, postLogoutRedirectURIs: body.postLogoutRedirectUris,
            backchannelLogoutURI: body.backchannelLogoutUri, startURL: body.startUrl, idTokenAlgorithm: body.idTokenAlg?.rawValue,
            allowOfflineAccess: body.allowOfflineAccess)
    }

    /// The registry acting for the signed-in administrator.
    static func registry(_ req: Request) throws -> (OIDCClientRegistry, UUID) {
        let session = try req.requireSession()
        return (OIDCClientRegistry(request: req, actorID: session.userID), session.practiceID)
    }

    /// The registry, once the administrator's own password is confirmed (every change asks for it).
    static func confirmedRegistry(_ req: Request, adminPassword: String?) async throws -> (OIDCClientRegistry, UUID) {
        try await AdminService(context: req.serviceContext, admin: try req.requireSession()).confirmAdminPassword(adminPassword)
        return try registry(req)
    }

    static func clientID(_ req: Request) throws -> String {
        guard let id = req.parameters.get("clientId"), !id.isEmpty else { throw OIDCClientError.notFound }
        return id
    }

    /// `adminPassword` from the body; a missing body is answered as a missing password.
    static func password(_ req: Request) throws -> String? {
        try req.optionalAPIBody(API.AdminPasswordConfirmation.self)?.adminPassword
    }

    @Sendable func list(req: Request) async throws -> [API.Application] {
        let (registry, practiceID) = try Self.registry(req)
        return try await registry.list(practiceID: practiceID).map { try API.Application($0) }
    }

    @Sendable func create(req: Request) async throws -> Response {
        let body = try req.apiBody(API.CreateApplicationRequest.self)
        let (registry, practiceID) = try await Self.confirmedRegistry(req, adminPassword: body.adminPassword)
        let created = try await registry.create(practiceID: practiceID, Self.input(body))
        let response = try await API.Application(created.client, secret: created.secret).encodeResponse(status: .created, for: req)
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }

    @Sendable func show(req: Request) async throws -> API.Application {
        let (registry, practiceID) = try Self.registry(req)
        return try API.Application(try await registry.require(clientID: try Self.clientID(req), practiceID: practiceID))
    }

    @Sendable func update(req: Request) async throws -> API.Application {
        let id = try Self.clientID(req)
        let body = try req.apiBody(API.UpdateApplicationRequest.self)
        let (registry, practiceID) = try await Self.confirmedRegistry(req, adminPassword: body.adminPassword)
        return try API.Application(try await registry.update(clientID: id, practiceID: practiceID, Self.change(body)))
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
        let response = try await API.ApplicationSecret(clientId: rotated.client.clientID, clientSecret: rotated.secret).encodeResponse(
            for: req)
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }

    @Sendable func disable(req: Request) async throws -> API.Application {
        let id = try Self.clientID(req)
        let (registry, practiceID) = try await Self.confirmedRegistry(req, adminPassword: Self.password(req))
        return try API.Application(try await registry.disable(clientID: id, practiceID: practiceID))
    }

    @Sendable func enable(req: Request) async throws -> API.Application {
        let id = try Self.clientID(req)
        let (registry, practiceID) = try await Self.confirmedRegistry(req, adminPassword: Self.password(req))
        return try API.Application(try await registry.enable(clientID: id, practiceID: practiceID))
    }
}
