import Fluent
import Vapor

/// `/admin/radius`: the practice's RADIUS clients (VPN, remote-desktop gateway, firewall), added and revoked by an
/// administrator with their own password. A generated shared secret is shown once.
struct RADIUSPages: RouteCollection {
    func boot(routes: any RoutesBuilder) throws {
        let pages = routes.grouped(SessionGuard(requirement: .signedIn, style: .web)).grouped(AdminGuard())
        pages.get(AdminPath.radius, use: list)
        pages.post(AdminPath.radius, use: create)
        pages.post(AdminPath.revokeRADIUSClient(.placeholder), use: revoke)
    }

    struct Row: Encodable {
        var id: String
        var name: String
        var address: String
        var mode: String
        var created: String
        var revoked: String?
        var revokeAction: String
    }

    struct Page: Encodable {
        var layout: Layout
        var clients: [Row]
        var newSecret: String?
        var newClientName: String?
        var listening: [String]
        var action = AdminPath.radius.string
    }

    struct CreateForm: Content {
        var name: String?
        var address: String?
        var mode: String?
        var secret: String?
        var roleFilterID: String?
        var adminPassword: String?
    }

    func render(
        _ req: Request, error: String? = nil, notice: String? = nil, newSecret: String? = nil, newClientName: String? = nil,
        status: HTTPResponseStatus = .ok
    ) async throws -> Response {
        let session = try req.requireSession()
        let clients = try await RADIUSClient.query(on: req.db).filter(\.$practice.$id == session.practiceID).sort(\.$createdAt, .descending)
            .all()
        let format = Date.FormatStyle(date: .abbreviated, time: .shortened)
        var layout = req.layout("RADIUS", error: error)
        if let notice { layout.notice = notice }
        let rows = try clients.map { client in
            Row(
                id: try client.requireID().uuidString, name: client.name, address: client.address,
                mode: client.mode == .codeOnly ? "Code only (the device checks the password)" : "Password, then code",
                created: client.createdAt.map { $0.formatted(format) } ?? "", revoked: client.revokedAt.map { $0.formatted(format) },
                revokeAction: AdminPath.revokeRADIUSClient(try client.requireID()).string)
        }
        let page = Page(
            layout: layout, clients: rows, newSecret: newSecret, newClientName: newClientName,
            listening: req.twofold.configuration.radiusListen.map(\.description))
        return try await req.renderUncached("admin-radius", page, status: status)
    }

    @Sendable func list(req: Request) async throws -> Response {
        try await render(req)
    }

    @Sendable func create(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(CreateForm.self)
        do {
            try await AdminService(context: req.serviceContext, admin: session).confirmAdminPassword(form.adminPassword)
            guard let mode = RADIUSClient.Mode(rawValue: form.mode ?? RADIUSClient.Mode.passwordAndCode.rawValue) else {
                return try await render(req, error: "Choose how the device signs users in.", status: .badRequest)
            }
            let given = form.secret.flatMap { $0.isEmpty ? nil : $0 }
            let created = try await RADIUSClientService(database: req.db, sealer: req.twofold.sealer, now: req.now)
                .create(
                    practiceID: session.practiceID, name: form.name ?? "", address: form.address ?? "", mode: mode, secret: given,
                    roleAsFilterID: form.roleFilterID != nil, actorID: session.userID, origin: req.clientIP)
            req.application.radiusClients.invalidate()
            if given != nil {
                return try await render(req, notice: "\(created.client.name) was added with the shared secret you gave.")
            }
            return try await render(req, newSecret: created.secret, newClientName: created.client.name)
        } catch let error as RADIUSClientError {
            return try await render(req, error: error.description, status: .badRequest)
        } catch let error as any AbortError {
            return try await render(req, error: error.reason, status: error.status)
        }
    }

    @Sendable func revoke(req: Request) async throws -> Response {
        let session = try req.requireSession()
        let form = try req.content.decode(AdminWebController.PasswordForm.self)
        guard let id = req.parameters.get("id", as: UUID.self) else {
            throw Abort(.notFound, reason: "There is no such RADIUS client in your practice.")
        }
        do {
            try await AdminService(context: req.serviceContext, admin: session).confirmAdminPassword(form.adminPassword)
            let client = try await RADIUSClientService(database: req.db, sealer: req.twofold.sealer, now: req.now)
                .revoke(id: id, practiceID: session.practiceID, actorID: session.userID, origin: req.clientIP)
            req.application.radiusClients.invalidate()
            return try await render(
                req, notice: "\(client.name) was revoked: its requests are dropped from now on (on other instances within a few seconds).")
        } catch RADIUSClientError.notFound {
            throw Abort(.notFound, reason: "There is no such RADIUS client in your practice.")
        } catch let error as any AbortError {
            return try await render(req, error: error.reason, status: error.status)
        }
    }
}

extension Request {
    /// Renders a page that may show a secret once (an API key, a RADIUS secret): it must not be cached anywhere.
    func renderUncached(_ view: String, _ context: some Encodable, status: HTTPResponseStatus) async throws -> Response {
        let response = try await render(view, context, status: status)
        response.headers.replaceOrAdd(name: .cacheControl, value: "no-store")
        return response
    }
}
