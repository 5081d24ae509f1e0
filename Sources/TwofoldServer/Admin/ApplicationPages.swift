import Fluent
import Vapor

/// `/admin/applications`: the practice's OpenID Connect applications (EHR, portal, intranet), registered, changed,
/// disabled and deleted by an administrator with their own password. A client secret is shown once.
struct ApplicationPages: RouteCollection {
    /// Where relying parties read the provider's configuration (OpenID Connect Discovery 1.0 §4).

    func boot(routes: any RoutesBuilder) throws {
        let pages = routes.grouped(SessionGuard(requirement: .signedIn, style: .web)).grouped(AdminGuard())
        pages.get(AdminPath.applications, use: list)
        pages.get(AdminPath.newApplication, use: newForm)
        pages.post(AdminPath.applications, use: create)
        pages.get(AdminPath.editApplication(.placeholder), use: editForm)
        pages.post(AdminPath.editApplication(.placeholder), use: update)
        for action in Action.allCases {
            pages.get(action.route(.placeholder), use: { req in try await confirm(req, action) })
            pages.post(action.route(.placeholder), use: { req in try await perform(req, action) })
        }
    }

    /// The changes that are confirmed on a page of their own.
    enum Action: String, CaseIterable, Sendable {
        case secret, disable, enable, delete

        func route(_ clientID: String) -> AdminPath {
            switch self {
            case .secret: .applicationSecret(clientID)
            case .disable: .disableApplication(clientID)
            case .enable: .enableApplication(clientID)
            case .delete: .deleteApplication(clientID)
            }
        }

        func path(_ clientID: String) -> String { route(clientID).string }
    }

    // MARK: pages

    struct Row: Encodable {
        var name: String
        var clientID: String
        var type: String
        var enabled: Bool
        var created: String
        var startURL: String?
        var editLink: String
        var secretLink: String?
        var disableLink: String
        var enableLink: String
        var deleteLink: String
    }

    struct ListPage: Encodable {
        var layout: Layout
        var applications: [Row]
        var issuer: String
        var discoveryURL: String
        var newLink = AdminPath.newApplication.string
    }

    struct FormPage: Encodable {
        var layout: Layout
        var isNew: Bool
        var action: String
        var clientID: String?
        var name: String
        var redirectURIs: String
        var postLogoutRedirectURIs: String
        var backchannelLogoutURI: String
        var startURL: String
        var isPublic: Bool
        var idTokenAlgorithm: String
        var allowOfflineAccess: Bool
        var backLink = AdminPath.applications.string
    }

    struct SecretPage: Encodable {
        var layout: Layout
        var name: String
        var clientID: String
        var clientSecret: String?
        var rotated: Bool
        var discoveryURL: String
        var redirectURIs: [String]
        var backLink = AdminPath.applications.string
    }

    struct ConfirmPage: Encodable {
        var layout: Layout
        var heading: String
        var lines: [String]
        var action: String
        var button: String
        var danger: Bool
        var backLink = AdminPath.applications.string
    }

    struct Form: Content {
        var name: String?
        var redirectURIs: String?
        var postLogoutRedirectURIs: String?
        var backchannelLogoutURI: String?
        var startURL: String?
        var isPublic: String?
        var idTokenAlgorithm: String?
        var allowOfflineAccess: String?
        var adminPassword: String?

        static func lines(_ text: String?) -> [String] {
            (text ?? "").split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }

        var input: OIDCClientInput {
            OIDCClientInput(
                name: name ?? "", redirectURIs: Self.lines(redirectURIs), postLogoutRedirectURIs: Self.lines(postLogoutRedirectURIs),
                backchannelLogoutURI: backchannelLogoutURI, startURL: startURL, isPublic: isPublic != nil,
                idTokenAlgorithm: idTokenAlgorithm ?? "RS256", allowOfflineAccess: allowOfflineAccess != nil)
        }

        /// A submitted edit form states every field: empty URI fields clear them, an unticked checkbox turns it off.
        var change: OIDCClientChange {
            OIDCClientChange(
                name: name ?? "", redirectURIs: Self.lines(redirectURIs), postLogoutRedirectURIs: Self.lines(postLogoutRedirectURIs),
                backchannelLogoutURI: backchannelLogoutURI ?? "", startURL: startURL ?? "",
                idTokenAlgorithm: idTokenAlgorithm ?? "RS256", allowOfflineAccess: allowOfflineAccess != nil)
        }
    }

    static func registry(_ req: Request) throws -> (OIDCClientRegistry, UUID) {
        let session = try req.requireSession()
        return (OIDCClientRegistry(request: req, actorID: session.userID), session.practiceID)
    }

    static func clientID(_ req: Request) throws -> String {
        guard let id = req.parameters.get("clientId"), !id.isEmpty else { throw OIDCClientError.notFound }
        return id
    }

    static func confirmPassword(_ req: Request, _ password: String?) async throws {
        try await AdminService(context: req.serviceContext, admin: try req.requireSession()).confirmAdminPassword(password)
    }

    static func discoveryURL(_ req: Request) -> String {
        req.publicBaseURL + OIDCPath.discovery.string
    }

    func renderList(_ req: Request, notice: String? = nil, error: String? = nil, status: HTTPResponseStatus = .ok) async throws -> Response
    {
        let (registry, practiceID) = try Self.registry(req)
        let format = Date.FormatStyle(date: .abbreviated, time: .shortened)
        let rows = try await registry.list(practiceID: practiceID).map { client in
            Row(
                name: client.name, clientID: client.clientID, type: client.isPublic ? "Public" : "Confidential", enabled: client.enabled,
                created: client.createdAt.formatted(format), startURL: client.startURL,
                editLink: AdminPath.editApplication(client.clientID).string,
                secretLink: client.isPublic ? nil : Action.secret.path(client.clientID),
                disableLink: Action.disable.path(client.clientID), enableLink: Action.enable.path(client.clientID),
                deleteLink: Action.delete.path(client.clientID))
        }
        var layout = req.layout("Applications", error: error)
        if let notice { layout.notice = notice }
        let page = ListPage(layout: layout, applications: rows, issuer: req.publicBaseURL, discoveryURL: Self.discoveryURL(req))
        return try await req.render("admin-applications", page, status: status)
    }

    func renderForm(
        _ req: Request, client: OIDCClient?, form: Form?, error: String? = nil,
        status: HTTPResponseStatus = .ok
    ) async throws -> Response {
        let page = FormPage(
            layout: req.layout(client.map { "Edit \($0.name)" } ?? "New application", error: error), isNew: client == nil,
            action: client.map { AdminPath.editApplication($0.clientID).string } ?? AdminPath.applications.string,
            clientID: client?.clientID,
            name: form?.name ?? client?.name ?? "",
            redirectURIs: form?.redirectURIs ?? client?.redirectURIs.joined(separator: "\n") ?? "",
            postLogoutRedirectURIs: form?.postLogoutRedirectURIs ?? client?.postLogoutRedirectURIs.joined(separator: "\n") ?? "",
            backchannelLogoutURI: form?.backchannelLogoutURI ?? client?.backchannelLogoutURI ?? "",
            startURL: form?.startURL ?? client?.startURL ?? "",
            isPublic: form.map { $0.isPublic != nil } ?? client?.isPublic ?? false,
            idTokenAlgorithm: form?.idTokenAlgorithm ?? client?.idTokenAlgorithm ?? "RS256",
            allowOfflineAccess: form.map { $0.allowOfflineAccess != nil } ?? client?.allowOfflineAccess ?? false)
        return try await req.render("admin-application-form", page, status: status)
    }

    func renderSecret(_ req: Request, client: OIDCClient, secret: String?, rotated: Bool) async throws -> Response {
        let page = SecretPage(
            layout: req.layout(rotated ? "New client secret" : "Application registered"), name: client.name,
            clientID: client.clientID, clientSecret: secret, rotated: rotated, discoveryURL: Self.discoveryURL(req),
            redirectURIs: client.redirectURIs)
        return try await req.renderUncached("admin-application-secret", page, status: .ok)
    }

    func renderConfirm(
        _ req: Request, _ action: Action, _ client: OIDCClient, error: String? = nil,
        status: HTTPResponseStatus = .ok
    ) async throws -> Response {
        let (heading, lines, button): (String, [String], String) =
            switch action {
            case .secret:
                (
                    "Rotate the secret of \(client.name)?",
                    [
                        "Twofold makes a new client secret and shows it once. The current secret stops working at once: enter the new one in the application's settings straight away."
                    ],
                    "Rotate secret"
                )
            case .disable:
                (
                    "Disable \(client.name)?",
                    [
                        "Nobody can sign in to it through Twofold until it is enabled again, and the tokens it holds stop working now."
                    ], "Disable"
                )
            case .enable: ("Enable \(client.name)?", ["Users of the practice can sign in to it through Twofold again."], "Enable")
            case .delete:
                (
                    "Delete \(client.name)?",
                    [
                        "The application is removed with its tokens; its client_id \(client.clientID) will never work again. The audit log keeps its history.",
                        "To stop it only for a while, disable it instead.",
                    ], "Delete application"
                )
            }
        let page = ConfirmPage(
            layout: req.layout(heading, error: error), heading: heading, lines: lines, action: action.path(client.clientID),
            button: button, danger: action != .enable)
        return try await req.render("admin-application-confirm", page, status: status)
    }

    // MARK: handlers

    @Sendable func list(req: Request) async throws -> Response {
        try await renderList(req)
    }

    @Sendable func newForm(req: Request) async throws -> Response {
        try await renderForm(req, client: nil, form: nil)
    }

    @Sendable func create(req: Request) async throws -> Response {
        let form = try req.content.decode(Form.self)
        let (registry, practiceID) = try Self.registry(req)
        do {
            try await Self.confirmPassword(req, form.adminPassword)
            let created = try await registry.create(practiceID: practiceID, form.input)
            return try await renderSecret(req, client: created.client, secret: created.secret, rotated: false)
        } catch let error as any AbortError {
            return try await renderForm(req, client: nil, form: form, error: error.reason, status: error.status)
        }
    }

    @Sendable func editForm(req: Request) async throws -> Response {
        let (registry, practiceID) = try Self.registry(req)
        return try await renderForm(
            req, client: try await registry.require(clientID: try Self.clientID(req), practiceID: practiceID), form: nil)
    }

    @Sendable func update(req: Request) async throws -> Response {
        let (registry, practiceID) = try Self.registry(req)
        let client = try await registry.require(clientID: try Self.clientID(req), practiceID: practiceID)
        let form = try req.content.decode(Form.self)
        do {
            try await Self.confirmPassword(req, form.adminPassword)
            let saved = try await registry.update(clientID: client.clientID, practiceID: practiceID, form.change)
            return try await renderList(req, notice: "\(saved.name) was saved.")
        } catch let error as any AbortError {
            return try await renderForm(req, client: client, form: form, error: error.reason, status: error.status)
        }
    }

    @Sendable func confirm(_ req: Request, _ action: Action) async throws -> Response {
        let (registry, practiceID) = try Self.registry(req)
        return try await renderConfirm(req, action, try await registry.require(clientID: try Self.clientID(req), practiceID: practiceID))
    }

    @Sendable func perform(_ req: Request, _ action: Action) async throws -> Response {
        let (registry, practiceID) = try Self.registry(req)
        let client = try await registry.require(clientID: try Self.clientID(req), practiceID: practiceID)
        do {
            try await Self.confirmPassword(req, try req.content.decode(AdminWebController.PasswordForm.self).adminPassword)
            let id = client.clientID
            switch action {
            case .secret:
                let rotated = try await registry.rotateSecret(clientID: id, practiceID: practiceID)
                return try await renderSecret(req, client: rotated.client, secret: rotated.secret, rotated: true)
            case .disable:
                _ = try await registry.disable(clientID: id, practiceID: practiceID)
                return try await renderList(req, notice: "\(client.name) was disabled: nobody can sign in to it through Twofold now.")
            case .enable:
                _ = try await registry.enable(clientID: id, practiceID: practiceID)
                return try await renderList(req, notice: "\(client.name) was enabled.")
            case .delete:
                try await registry.delete(clientID: id, practiceID: practiceID)
                return try await renderList(req, notice: "\(client.name) was deleted.")
            }
        } catch let error as any AbortError {
            return try await renderConfirm(req, action, client, error: error.reason, status: error.status)
        }
    }
}
