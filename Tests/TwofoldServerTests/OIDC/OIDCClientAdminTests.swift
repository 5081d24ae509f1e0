import Fluent
import Foundation
import Testing
import VaporTesting

@testable import TwofoldServer

/// Registering a practice's OpenID Connect applications: the registry, the JSON API, the pages, the practice's
/// token lifetimes and the home page's list of applications.
@Suite("OpenID Connect: application registration")
struct OIDCClientAdminTests {
    static let callback = "https://ehr.example.org/oidc/callback"

    static func registry(_ ctx: TestContext) -> OIDCClientRegistry {
        OIDCClientRegistry(database: ctx.app.db, now: ctx.clock.now)
    }

    static func adminAPI(_ ctx: TestContext) async throws -> (APIClient, Practice) {
        let practice = try await Fixtures.practice(ctx)
        _ = try await Fixtures.user(ctx, practice: practice, username: "admin", admin: true)
        let (client, body, _) = try await APIClient.login(ctx, username: "admin")
        #expect(body["status"] as? String == "authenticated")
        return (client, practice)
    }

    static func adminWeb(_ ctx: TestContext) async throws -> (WebClient, Practice) {
        let practice = try await Fixtures.practice(ctx)
        _ = try await Fixtures.user(ctx, practice: practice, username: "admin", admin: true)
        let web = WebClient(ctx)
        _ = try await web.get("/login")
        _ = try await web.post("/login", ["username": "admin", "password": Fixtures.password])
        return (web, practice)
    }

    static func auditDetails(_ ctx: TestContext, _ event: AuditEventType) async throws -> [[String: String]] {
        try await AuditEvent.query(on: ctx.app.db).filter(\.$event == event.rawValue).sort(\.$seq).all().map { event in
            (try? JSONDecoder().decode([String: String].self, from: Data(event.details.utf8))) ?? [:]
        }
    }

    // MARK: registry

    @Test func confidentialClientGetsASecretOnceAndOnlyItsHashIsStored() async throws {
        try await withTestApp { ctx in
            // setup
            let practice = try await Fixtures.practice(ctx)
            // act
            let created = try await Self.registry(ctx).create(
                practiceID: practice.id!,
                OIDCClientInput(
                    name: "  Riverside EHR ", redirectURIs: [Self.callback, Self.callback, ""], idTokenAlgorithm: "es256",
                    allowOfflineAccess: true))
            // verify
            let secret = try #require(created.secret)
            #expect(secret.count >= 43)
            let stored = try #require(try await OIDCClient.query(on: ctx.app.db).filter(\.$clientID == created.client.clientID).first())
            #expect(stored.name == "Riverside EHR")
            #expect(stored.redirectURIs == [Self.callback])
            #expect(stored.idTokenAlgorithm == "ES256")
            #expect(stored.allowOfflineAccess)
            #expect(stored.enabled)
            #expect(!stored.isPublic)
            #expect(stored.secretHash != secret)
            #expect(stored.secretMatches(secret))
            #expect(!stored.secretMatches(secret + "x"))
            #expect(stored.clientID.hasPrefix("tf-"))
            let audit = try await Self.auditDetails(ctx, .oidcClientCreated)
            #expect(audit.count == 1)
            #expect(audit.first?["client_id"] == stored.clientID)
            #expect(audit.first?["client"] == "Riverside EHR")
            #expect(audit.first?.values.contains { $0.contains(secret) } == false)
            #expect(try await Self.registry(ctx).find(clientID: stored.clientID)?.id == stored.id)
        }
    }

    @Test func publicClientHasNoSecretAndMayUseAPrivateUseScheme() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let created = try await Self.registry(ctx).create(
                practiceID: practice.id!,
                OIDCClientInput(
                    name: "Tablet app", redirectURIs: ["org.example.riverside:/callback", "http://127.0.0.1:49152/cb", "http://[::1]/cb"],
                    isPublic: true))
            #expect(created.secret == nil)
            #expect(created.client.isPublic)
            #expect(!created.client.secretMatches(""))
            await #expect(throws: OIDCClientError.publicClientHasNoSecret) {
                try await Self.registry(ctx).rotateSecret(clientID: created.client.clientID)
            }
        }
    }

    static let refusedRedirects: [(uri: String, isPublic: Bool, problem: String)] = [
        ("http://ehr.example.org/cb", false, "must use https"),
        ("http://10.0.0.5/cb", true, "must use https"),
        ("https://ehr.example.org/cb#top", false, "fragment"),
        ("/oidc/callback", false, "absolute"),
        ("https:///cb", false, "host"),
        ("https://ehr.example.org/" + String(repeating: "a", count: 2000), false, "longer than 2000"),
        ("com.example.app:/callback", false, "public (native) applications only"),
        ("myapp:/callback", true, "reverse-domain"),
        ("javascript:alert(1)", true, "reverse-domain"),
        ("https://user:pass@ehr.example.org/cb", false, "user name or password"),
        ("https://ehr.example.org/c b", false, "spaces"),
    ]

    @Test(arguments: refusedRedirects.indices)
    func refusedRedirectURI(_ index: Int) {
        let case_ = Self.refusedRedirects[index]
        let problem = OIDCClientRegistry.redirectURIProblem(case_.uri, isPublic: case_.isPublic)
        #expect(problem?.contains(case_.problem) == true, "\(case_.uri): \(problem ?? "accepted")")
    }

    @Test(arguments: [
        "https://ehr.example.org/cb?x=1", "http://localhost:8080/cb", "http://127.0.0.1/cb", "http://127.8.9.10/cb", "http://[::1]:9000/cb",
    ])
    func acceptedRedirectURI(_ uri: String) {
        #expect(OIDCClientRegistry.redirectURIProblem(uri, isPublic: false) == nil)
    }

    @Test func invalidRegistrationsListEveryProblemAndCreateNothing() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let registry = Self.registry(ctx)
            let tooMany = (1...11).map { "https://ehr.example.org/cb\($0)" }
            do {
                _ = try await registry.create(
                    practiceID: practice.id!,
                    OIDCClientInput(
                        name: String(repeating: "n", count: 101), redirectURIs: tooMany,
                        backchannelLogoutURI: "http://ehr.example.org/logout",
                        startURL: "javascript:alert(1)", idTokenAlgorithm: "HS256"))
                Issue.record("an invalid registration was accepted")
            } catch let error as OIDCClientError {
                #expect(error.status == .badRequest)
                let reason = error.reason
                #expect(reason.hasPrefix("Cannot register the application: "))
                for part in [
                    "name must be 1 to 100 characters", "give 1 to 10 redirect URIs", "back-channel logout URI", "start URL",
                    "must be RS256 or ES256",
                ] {
                    #expect(reason.contains(part), "\(part) missing from: \(reason)")
                }
            }
            await #expect(throws: OIDCClientError.self) {
                try await registry.create(practiceID: practice.id!, OIDCClientInput(name: "No redirects", redirectURIs: []))
            }
            await #expect(throws: OIDCClientError.self) {
                try await registry.create(
                    practiceID: practice.id!, OIDCClientInput(name: "Bad alg", redirectURIs: [Self.callback], idTokenAlgorithm: "none"))
            }
            await #expect(throws: OIDCClientError.practiceNotFound) {
                try await registry.create(practiceID: UUID(), OIDCClientInput(name: "Nowhere", redirectURIs: [Self.callback]))
            }
            #expect(try await OIDCClient.query(on: ctx.app.db).count() == 0)
        }
    }

    @Test func rotatingTheSecretInvalidatesTheOldOne() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let registry = Self.registry(ctx)
            let created = try await registry.create(practiceID: practice.id!, OIDCClientInput(name: "EHR", redirectURIs: [Self.callback]))
            let old = try #require(created.secret)
            let rotated = try await registry.rotateSecret(clientID: created.client.clientID)
            let stored = try #require(try await registry.find(clientID: created.client.clientID))
            #expect(rotated.secret != old)
            #expect(stored.secretMatches(rotated.secret))
            #expect(!stored.secretMatches(old))
            #expect(try await Self.auditDetails(ctx, .oidcClientSecretRotated).first?["client_id"] == created.client.clientID)
        }
    }

    @Test func disablingRevokesTokensEnablingAndDeletingAreAudited() async throws {
        try await withTestApp { ctx in
            let practice = try await Fixtures.practice(ctx)
            let user = try await Fixtures.user(ctx, practice: practice)
            let registry = Self.registry(ctx)
            let created = try await registry.create(practiceID: practice.id!, OIDCClientInput(name: "EHR", redirectURIs: [Self.callback]))
            let token = OIDCToken()
            token.id = UUID()
            token.kind = .refresh
            token.lookup = "lookup-1"
            token.grantID = UUID()
            token.$client.id = try created.client.requireID()
            token.$user.id = try user.requireID()
            token.scope = "openid"
            token.authTime = ctx.clock.now
            token.amr = "pwd"
            token.acr = "1"
            token.createdAt = ctx.clock.now
            token.expiresAt = ctx.clock.now.addingTimeInterval(3600)
            try await token.create(on: ctx.app.db)

            let disabled = try await registry.disable(clientID: created.client.clientID)
            #expect(!disabled.enabled)
            #expect(try await OIDCToken.find(token.id, on: ctx.app.db)?.revokedAt != nil)
            #expect(try await Self.auditDetails(ctx, .oidcClientDisabled).first?["tokens_revoked"] == "1")
            #expect(try await registry.enable(clientID: created.client.clientID).enabled)
            #expect(try await Self.auditDetails(ctx, .oidcClientEnabled).count == 1)

            let updated = try await registry.update(
                clientID: created.client.clientID,
                OIDCClientChange(
                    name: "Riverside EHR", redirectURIs: [Self.callback, "https://ehr.example.org/cb2"],
                    startURL: "https://ehr.example.org/"))
            #expect(updated.name == "Riverside EHR")
            #expect(updated.redirectURIs.count == 2)
            #expect(try await Self.auditDetails(ctx, .oidcClientUpdated).first?["changed"] == "name, redirect_uris, start_url")
            let cleared = try await registry.update(clientID: created.client.clientID, OIDCClientChange(startURL: ""))
            #expect(cleared.startURL == nil)

            try await registry.delete(clientID: created.client.clientID)
            #expect(try await registry.find(clientID: created.client.clientID) == nil)
            #expect(try await OIDCToken.query(on: ctx.app.db).count() == 0)
            #expect(try await Self.auditDetails(ctx, .oidcClientDeleted).first?["client"] == "Riverside EHR")
            await #expect(throws: OIDCClientError.notFound) { try await registry.disable(clientID: created.client.clientID) }
        }
    }

    // MARK: JSON API

    @Test func apiCreatesListsChangesRotatesDisablesAndDeletes() async throws {
        try await withTestApp { ctx in
            let (admin, _) = try await Self.adminAPI(ctx)
            let create = try await admin.send(
                .POST, "/api/v1/practice/applications",
                json: [
                    "adminPassword": Fixtures.password, "name": "Riverside EHR", "redirectUris": [Self.callback],
                    "startUrl": "https://ehr.example.org/", "allowOfflineAccess": true,
                ])
            #expect(create.status == .created, "\(create.text)")
            #expect(create.headers.first(name: .cacheControl) == "no-store")
            let clientID = try #require(create.json["clientId"] as? String)
            let secret = try #require(create.json["clientSecret"] as? String)
            #expect(create.json["type"] as? String == "confidential")
            #expect(create.json["idTokenAlg"] as? String == "RS256")
            #expect(try await Self.registry(ctx).find(clientID: clientID)?.secretMatches(secret) == true)

            let publicApp = try await admin.send(
                .POST, "/api/v1/practice/applications",
                json: [
                    "adminPassword": Fixtures.password, "name": "Tablet", "redirectUris": ["org.example.tablet:/cb"], "public": true,
                    "idTokenAlg": "ES256",
                ])
            #expect(publicApp.status == .created, "\(publicApp.text)")
            #expect(publicApp.json["clientSecret"] == nil)
            #expect(publicApp.json["type"] as? String == "public")

            let list = try await admin.send(.GET, "/api/v1/practice/applications")
            #expect(list.jsonArray.map { $0["name"] as? String } == ["Riverside EHR", "Tablet"])
            #expect(list.jsonArray.allSatisfy { $0["clientSecret"] == nil })
            #expect(!list.text.contains(secret))

            let show = try await admin.send(.GET, "/api/v1/practice/applications/\(clientID)")
            #expect(show.json["startUrl"] as? String == "https://ehr.example.org/")

            let patch = try await admin.send(
                .PATCH, "/api/v1/practice/applications/\(clientID)",
                json: [
                    "adminPassword": Fixtures.password, "postLogoutRedirectUris": ["https://ehr.example.org/bye"], "idTokenAlg": "ES256",
                ])
            #expect(patch.status == .ok, "\(patch.text)")
            #expect(patch.json["postLogoutRedirectUris"] as? [String] == ["https://ehr.example.org/bye"])
            #expect(patch.json["idTokenAlg"] as? String == "ES256")
            #expect(patch.json["name"] as? String == "Riverside EHR")

            let rotate = try await admin.send(
                .POST, "/api/v1/practice/applications/\(clientID)/secret", json: ["adminPassword": Fixtures.password])
            #expect(rotate.status == .ok)
            let newSecret = try #require(rotate.json["clientSecret"] as? String)
            let stored = try #require(try await Self.registry(ctx).find(clientID: clientID))
            #expect(stored.secretMatches(newSecret) && !stored.secretMatches(secret))
            let publicID = try #require(publicApp.json["clientId"] as? String)
            let noSecret = try await admin.send(
                .POST, "/api/v1/practice/applications/\(publicID)/secret", json: ["adminPassword": Fixtures.password])
            #expect(noSecret.status == .conflict)

            let disable = try await admin.send(
                .POST, "/api/v1/practice/applications/\(clientID)/disable", json: ["adminPassword": Fixtures.password])
            #expect(disable.json["enabled"] as? Bool == false)
            let enable = try await admin.send(
                .POST, "/api/v1/practice/applications/\(clientID)/enable", json: ["adminPassword": Fixtures.password])
            #expect(enable.json["enabled"] as? Bool == true)

            let delete = try await admin.send(
                .DELETE, "/api/v1/practice/applications/\(clientID)", json: ["adminPassword": Fixtures.password])
            #expect(delete.status == .noContent)
            #expect(try await admin.send(.GET, "/api/v1/practice/applications/\(clientID)").status == .notFound)
        }
    }

    @Test func apiRefusesBadInputAndUnconfirmedChanges() async throws {
        try await withTestApp { ctx in
            let (admin, _) = try await Self.adminAPI(ctx)
            let insecure = try await admin.send(
                .POST, "/api/v1/practice/applications",
                json: [
                    "adminPassword": Fixtures.password, "name": "EHR", "redirectUris": ["http://ehr.example.org/cb"],
                ])
            #expect(insecure.status == .badRequest)
            #expect(insecure.reason.contains("must use https"))
            let fragment = try await admin.send(
                .POST, "/api/v1/practice/applications",
                json: [
                    "adminPassword": Fixtures.password, "name": "EHR", "redirectUris": ["https://ehr.example.org/cb#x"],
                ])
            #expect(fragment.reason.contains("fragment"))
            let eleven = try await admin.send(
                .POST, "/api/v1/practice/applications",
                json: [
                    "adminPassword": Fixtures.password, "name": "EHR", "redirectUris": (1...11).map { "https://ehr.example.org/\($0)" },
                ])
            #expect(eleven.status == .badRequest)
            #expect(eleven.reason.contains("1 to 10 redirect URIs"))
            let alg = try await admin.send(
                .POST, "/api/v1/practice/applications",
                json: [
                    "adminPassword": Fixtures.password, "name": "EHR", "redirectUris": [Self.callback], "idTokenAlg": "HS256",
                ])
            #expect(alg.status == .badRequest)
            #expect(alg.reason.contains("idTokenAlg must be one of RS256, ES256"))
            // The document makes adminPassword required: leaving it out is a malformed request; an empty one is unconfirmed.
            let noPassword = try await admin.send(
                .POST, "/api/v1/practice/applications", json: ["name": "EHR", "redirectUris": [Self.callback]])
            #expect(noPassword.status == .badRequest)
            #expect(noPassword.reason.contains("adminPassword"))
            let emptyPassword = try await admin.send(
                .POST, "/api/v1/practice/applications",
                json: [
                    "adminPassword": "", "name": "EHR", "redirectUris": [Self.callback],
                ])
            #expect(emptyPassword.status == .unauthorized)
            let wrongPassword = try await admin.send(
                .POST, "/api/v1/practice/applications",
                json: [
                    "adminPassword": "not my password", "name": "EHR", "redirectUris": [Self.callback],
                ])
            #expect(wrongPassword.status == .forbidden)
            #expect(try await OIDCClient.query(on: ctx.app.db).count() == 0)

            let created = try await admin.send(
                .POST, "/api/v1/practice/applications",
                json: [
                    "adminPassword": Fixtures.password, "name": "EHR", "redirectUris": [Self.callback],
                ])
            let clientID = try #require(created.json["clientId"] as? String)
            let badPatch = try await admin.send(
                .PATCH, "/api/v1/practice/applications/\(clientID)",
                json: [
                    "adminPassword": Fixtures.password, "redirectUris": [String](),
                ])
            #expect(badPatch.status == .badRequest)
            #expect(try await admin.send(.POST, "/api/v1/practice/applications/\(clientID)/disable").status == .unauthorized)
            #expect(try await Self.registry(ctx).find(clientID: clientID)?.enabled == true)
        }
    }

    @Test func staffGetForbiddenAndAnotherPracticesAdminGetsNotFound() async throws {
        try await withTestApp { ctx in
            let (_, riverside) = try await Self.adminAPI(ctx)
            let lakeside = try await Fixtures.practice(ctx, name: "Lakeside Pediatrics")
            _ = try await Fixtures.user(ctx, practice: riverside, username: "plain.staff", role: .staff)
            _ = try await Fixtures.user(ctx, practice: lakeside, username: "admin.b", admin: true)
            let created = try await Self.registry(ctx).create(
                practiceID: riverside.id!, OIDCClientInput(name: "EHR", redirectURIs: [Self.callback]))
            let id = created.client.clientID
            let password: [String: any Sendable] = ["adminPassword": Fixtures.password]
            let routes: [(HTTPMethod, String, [String: any Sendable]?)] = [
                (.GET, "/api/v1/practice/applications/\(id)", nil),
                (.PATCH, "/api/v1/practice/applications/\(id)", ["adminPassword": Fixtures.password, "name": "Mine now"]),
                (.DELETE, "/api/v1/practice/applications/\(id)", password),
                (.POST, "/api/v1/practice/applications/\(id)/secret", password),
                (.POST, "/api/v1/practice/applications/\(id)/disable", password),
                (.POST, "/api/v1/practice/applications/\(id)/enable", password),
            ]

            let staff = try await APIClient.login(ctx, username: "plain.staff").0
            #expect(try await staff.send(.GET, "/api/v1/practice/applications").status == .forbidden)
            #expect(
                try await staff.send(
                    .POST, "/api/v1/practice/applications",
                    json: [
                        "adminPassword": Fixtures.password, "name": "X", "redirectUris": [Self.callback],
                    ]
                ).status == .forbidden)
            for (method, path, body) in routes {
                #expect(try await staff.send(method, path, json: body).status == .forbidden, "\(method) \(path)")
            }

            let other = try await APIClient.login(ctx, username: "admin.b").0
            #expect(try await other.send(.GET, "/api/v1/practice/applications").jsonArray.isEmpty)
            for (method, path, body) in routes {
                #expect(try await other.send(method, path, json: body).status == .notFound, "\(method) \(path)")
            }
            let otherWeb = WebClient(ctx)
            _ = try await otherWeb.get("/login")
            _ = try await otherWeb.post("/login", ["username": "admin.b", "password": Fixtures.password])
            #expect(try await otherWeb.get(AdminPath.editApplication(id).string).status == .notFound)
            #expect(
                try await otherWeb.post(AdminPath.deleteApplication(id).string, ["adminPassword": Fixtures.password]).status == .notFound)
            let stored = try #require(try await Self.registry(ctx).find(clientID: id))
            #expect(stored.name == "EHR" && stored.enabled)

            let staffWeb = WebClient(ctx)
            _ = try await staffWeb.get("/login")
            _ = try await staffWeb.post("/login", ["username": "plain.staff", "password": Fixtures.password])
            #expect(try await staffWeb.get(AdminPath.applications.string).status == .forbidden)
        }
    }

    // MARK: pages

    @Test func pagesRegisterShowTheSecretOnceEditRotateDisableAndDelete() async throws {
        try await withTestApp { ctx in
            let (web, _) = try await Self.adminWeb(ctx)
            let empty = try await web.get(AdminPath.applications.string)
            #expect(empty.status == .ok)
            #expect(empty.text.contains("No applications yet."))
            #expect(empty.text.contains("/.well-known/openid-configuration"))
            #expect(try await web.get(WebPath.home.string).text.contains("href=\"/admin/applications\""))
            let form = try await web.get(AdminPath.newApplication.string)
            #expect(form.text.contains("<option value=\"RS256\" selected"))

            let refused = try await web.post(
                AdminPath.applications.string,
                [
                    "name": "EHR", "redirectURIs": "http://ehr.example.org/cb", "idTokenAlgorithm": "RS256",
                    "adminPassword": Fixtures.password,
                ])
            #expect(refused.status == .badRequest)
            #expect(refused.text.contains("must use https"))
            #expect(refused.text.contains("http://ehr.example.org/cb"))

            let created = try await web.post(
                AdminPath.applications.string,
                [
                    "name": "Riverside EHR", "redirectURIs": "\(Self.callback)\r\nhttps://ehr.example.org/cb2\r\n",
                    "startURL": "https://ehr.example.org/", "idTokenAlgorithm": "RS256", "allowOfflineAccess": "1",
                    "adminPassword": Fixtures.password,
                ])
            #expect(created.status == .ok)
            #expect(created.headers.first(name: .cacheControl) == "no-store")
            #expect(created.text.contains("shown only this once"))
            let client = try #require(try await OIDCClient.query(on: ctx.app.db).first())
            #expect(client.redirectURIs == [Self.callback, "https://ehr.example.org/cb2"])
            #expect(client.allowOfflineAccess)
            let secret = try #require(Self.element("new-client-secret", in: created.text))
            #expect(client.secretMatches(secret))
            #expect(Self.element("new-client-id", in: created.text) == client.clientID)

            let list = try await web.get(AdminPath.applications.string)
            #expect(list.text.contains(client.clientID))
            #expect(list.text.contains("Confidential"))
            #expect(!list.text.contains(secret))

            let edit = try await web.get(AdminPath.editApplication(client.clientID).string)
            #expect(edit.text.contains(Self.callback))
            let saved = try await web.post(
                AdminPath.editApplication(client.clientID).string,
                [
                    "name": "Riverside EHR 2", "redirectURIs": Self.callback, "idTokenAlgorithm": "ES256",
                    "adminPassword": Fixtures.password,
                ])
            #expect(saved.status == .ok)
            let edited = try #require(try await Self.registry(ctx).find(clientID: client.clientID))
            #expect(
                edited.name == "Riverside EHR 2" && edited.idTokenAlgorithm == "ES256" && !edited.allowOfflineAccess
                    && edited.startURL == nil)

            let confirmRotate = try await web.get(AdminPath.applicationSecret(client.clientID).string)
            #expect(confirmRotate.text.contains("Rotate the secret"))
            let wrong = try await web.post(AdminPath.applicationSecret(client.clientID).string, ["adminPassword": "nope nope nope"])
            #expect(wrong.status == .forbidden)
            let rotated = try await web.post(AdminPath.applicationSecret(client.clientID).string, ["adminPassword": Fixtures.password])
            #expect(rotated.headers.first(name: .cacheControl) == "no-store")
            let newSecret = try #require(Self.element("new-client-secret", in: rotated.text))
            let afterRotate = try #require(try await Self.registry(ctx).find(clientID: client.clientID))
            #expect(afterRotate.secretMatches(newSecret) && !afterRotate.secretMatches(secret))

            #expect(try await web.get(AdminPath.disableApplication(client.clientID).string).text.contains("Disable Riverside EHR 2?"))
            let disabled = try await web.post(AdminPath.disableApplication(client.clientID).string, ["adminPassword": Fixtures.password])
            #expect(disabled.text.contains("was disabled"))
            #expect(try await Self.registry(ctx).find(clientID: client.clientID)?.enabled == false)
            _ = try await web.get(AdminPath.enableApplication(client.clientID).string)
            _ = try await web.post(AdminPath.enableApplication(client.clientID).string, ["adminPassword": Fixtures.password])
            #expect(try await Self.registry(ctx).find(clientID: client.clientID)?.enabled == true)

            let confirmDelete = try await web.get(AdminPath.deleteApplication(client.clientID).string)
            #expect(confirmDelete.text.contains("Delete Riverside EHR 2?"))
            let withoutCSRF = try await web.post(
                AdminPath.deleteApplication(client.clientID).string, ["adminPassword": Fixtures.password], csrf: "")
            #expect(withoutCSRF.status == .forbidden)
            let deleted = try await web.post(AdminPath.deleteApplication(client.clientID).string, ["adminPassword": Fixtures.password])
            #expect(deleted.text.contains("was deleted"))
            #expect(try await OIDCClient.query(on: ctx.app.db).count() == 0)
        }
    }

    @Test func publicClientPageShowsNoSecret() async throws {
        try await withTestApp { ctx in
            let (web, _) = try await Self.adminWeb(ctx)
            _ = try await web.get(AdminPath.newApplication.string)
            let created = try await web.post(
                AdminPath.applications.string,
                [
                    "name": "Tablet", "redirectURIs": "org.example.tablet:/cb", "isPublic": "1", "idTokenAlgorithm": "RS256",
                    "adminPassword": Fixtures.password,
                ])
            #expect(created.status == .ok)
            #expect(Self.element("new-client-secret", in: created.text) == nil)
            #expect(created.text.contains("public-client"))
            let client = try #require(try await OIDCClient.query(on: ctx.app.db).first())
            #expect(client.isPublic)
            #expect(!(try await web.get(AdminPath.applications.string).text.contains(AdminPath.applicationSecret(client.clientID).string)))
        }
    }

    static func element(_ id: String, in html: String) -> String? {
        guard let start = html.range(of: "id=\"\(id)\">") else { return nil }
        let rest = html[start.upperBound...]
        guard let end = rest.range(of: "<") else { return nil }
        return String(rest[..<end.lowerBound]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: practice settings and home page

    @Test func tokenLifetimesStayWithinTheirBoundsAndChangesAreAudited() async throws {
        try await withTestApp { ctx in
            let (admin, practice) = try await Self.adminAPI(ctx)
            let shown = try await admin.send(.GET, "/api/v1/practice")
            #expect(shown.json["accessTokenMinutes"] as? Int == 10)
            #expect(shown.json["refreshTokenDays"] as? Int == 14)
            for (field, value) in [
                ("accessTokenMinutes", 4), ("accessTokenMinutes", 16), ("refreshTokenDays", 0), ("refreshTokenDays", 31),
            ] {
                let refused = try await admin.send(.PATCH, "/api/v1/practice", json: ["adminPassword": Fixtures.password, field: value])
                #expect(refused.status == .badRequest, "\(field) = \(value)")
                #expect(
                    refused.reason.contains(
                        field == "accessTokenMinutes"
                            ? "access token lifetime must be 5 to 15 minutes"
                            : "refresh token lifetime must be 1 to 30 days"))
            }
            let saved = try await admin.send(
                .PATCH, "/api/v1/practice",
                json: [
                    "adminPassword": Fixtures.password, "accessTokenMinutes": 15, "refreshTokenDays": 1,
                ])
            #expect(saved.status == .ok, "\(saved.text)")
            #expect(saved.json["accessTokenMinutes"] as? Int == 15)
            #expect(saved.json["refreshTokenDays"] as? Int == 1)
            let stored = try #require(try await Practice.find(practice.id, on: ctx.app.db))
            #expect(stored.accessTokenMinutes == 15 && stored.refreshTokenDays == 1)
            let audit = try await Self.auditDetails(ctx, .practiceSettingsChanged)
            #expect(audit.last?["oidc_access_token_minutes"] == "10 → 15")
            #expect(audit.last?["oidc_refresh_token_days"] == "14 → 1")
        }
    }

    @Test func practicePageSetsTokenLifetimes() async throws {
        try await withTestApp { ctx in
            let (web, practice) = try await Self.adminWeb(ctx)
            let page = try await web.get(AdminPath.practice.string)
            #expect(page.text.contains("Access token lifetime (minutes"))
            #expect(page.text.contains("Refresh token lifetime (days"))
            var form = [
                "name": practice.name, "allowTOTP": "1", "rememberBrowserDays": "30", "inactivityMinutes": "30",
                "sessionLifetimeHours": "12",
                "otpDigits": "6", "accessTokenMinutes": "30", "refreshTokenDays": "7", "adminPassword": Fixtures.password,
            ]
            let refused = try await web.post(AdminPath.practice.string, form)
            #expect(refused.status == .badRequest)
            #expect(refused.text.contains("access token lifetime must be 5 to 15 minutes"))
            form["accessTokenMinutes"] = "5"
            let saved = try await web.post(AdminPath.practice.string, form)
            #expect(saved.status == .seeOther || saved.status == .found, "\(saved.text)")
            let stored = try #require(try await Practice.find(practice.id, on: ctx.app.db))
            #expect(stored.accessTokenMinutes == 5 && stored.refreshTokenDays == 7)
        }
    }

    @Test func homeListsThePracticesEnabledApplicationsWithAStartURL() async throws {
        try await withTestApp { ctx in
            let (web, practice) = try await Self.adminWeb(ctx)
            let none = try await web.get(WebPath.home.string)
            #expect(!none.text.contains("Your practice's applications"))

            let registry = Self.registry(ctx)
            _ = try await registry.create(
                practiceID: practice.id!,
                OIDCClientInput(
                    name: "Riverside EHR", redirectURIs: [Self.callback], startURL: "https://ehr.example.org/start"))
            _ = try await registry.create(practiceID: practice.id!, OIDCClientInput(name: "Headless sync", redirectURIs: [Self.callback]))
            let disabled = try await registry.create(
                practiceID: practice.id!,
                OIDCClientInput(
                    name: "Old portal", redirectURIs: [Self.callback], startURL: "https://old.example.org/"))
            _ = try await registry.disable(clientID: disabled.client.clientID)
            let lakeside = try await Fixtures.practice(ctx, name: "Lakeside Pediatrics")
            _ = try await registry.create(
                practiceID: lakeside.id!,
                OIDCClientInput(
                    name: "Lakeside intranet", redirectURIs: [Self.callback], startURL: "https://lakeside.example.org/"))

            let home = try await web.get(WebPath.home.string)
            #expect(home.text.contains("Your practice's applications"))
            #expect(home.text.contains("<a href=\"https://ehr.example.org/start\">Riverside EHR</a>"))
            #expect(!home.text.contains("Headless sync"))
            #expect(!home.text.contains("Old portal"))
            #expect(!home.text.contains("Lakeside intranet"))
        }
    }
}
