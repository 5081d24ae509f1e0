import Fluent
import Vapor

/// `/admin/api-keys`: the practice's keys for integrating software (EHR, e-prescribing, VPN), created and revoked
/// by an administrator with their own password. A new key is shown once.
struct APIKeyPages: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let keys = routes.grouped(SessionGuard(requirement: .signedIn, style: .web)).grouped(AdminGuard())
        keys.get(AdminPath.apiKeys, use: list)
        keys.post(AdminPath.apiKeys, use: create)
        keys.post(AdminPath.revokeAPIKey(.placeholder), use: revoke)
    }

    struct Row: Encodable {
        var id: String
        var name: String
        var hint: String
        var created: String
        var revoked: String?
        var revokeAction: String
    }

    struct Page: Encodable {
        var layout: Layout
        var keys: [Row]
        var newKey: String?
        var newKeyName: String?
        var action = AdminPath.apiKeys.string
    }

    struct CreateForm: Content {
        var name: String?
        var adminPassword: String?
    }

    func render(
        _ req: Request, error: String? = nil, notice: String? = nil, newKey: String? = nil, newKeyName: String? = nil,
        status: HTTPResponseStatus = .ok
    ) async throws -> Response {
        let session = try req.requireSession()
        let keys = try await APIKey.query(on: req.db).filter(\.$practice.$id == session.practiceID).sort(\.$createdAt, .descending).all()
        let format = Date.FormatStyle(date: .abbreviated, time: .shortened)
        var layout = req.layout("API keys", error: error)
        if let notice { layout.notice = notice }
        let page = Page(
            layout: layout,
            keys: try keys.map { key in
                let id = try key.requireID()
                return Row(
                    id: id.uuidString, name: key.name, hint: key.hint + "…", created: key.createdAt.map { $0.formatted(format) } ?? "",
                    revoked: key.revokedAt.map { $0.formatted(format) }, revokeAction: AdminPath.revokeAPIKey(id).string)
            }, newKey: newKey, newKeyName: newKeyName)
        return try await req.renderUncached("admin-api-keys", page, status: status)
    }

    @Sendable func list(req: Request) async throws -> Response {
        try await render(req)
    }

    @Sendable func create(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(CreateForm.self)
        do {
            try await AdminService(context: req.serviceContext, admin: session).confirmAdminPassword(form.adminPassword)
            let created = try await APIKeyService(request: req, actorID: session.userID).create(
                practiceID: session.practiceID, name: form.name ?? "")
            return try await render(req, newKey: created.key, newKeyName: created.record.name)
        } catch let error as any AbortError {
            return try await render(req, error: error.reason, status: error.status)
        }
    }

    @Sendable func revoke(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(AdminWebController.PasswordForm.self)
        guard let id = req.parameters.get("id", as: UUID.self),
            let key = try await APIKey.query(on: req.db).filter(\.$id == id).filter(\.$practice.$id == session.practiceID).first()
        else { throw Abort(.notFound, reason: "There is no such API key in your practice.") }
        do {
            try await AdminService(context: req.serviceContext, admin: session).confirmAdminPassword(form.adminPassword)
            _ = try await APIKeyService(request: req, actorID: session.userID).revoke(id: key.requireID())
            return try await render(
                req,
                notice:
                    "The key \(key.name) was revoked; requests with it are refused from now on (on other instances within a few seconds).")
        } catch let error as any AbortError {
            return try await render(req, error: error.reason, status: error.status)
        }
    }
}
