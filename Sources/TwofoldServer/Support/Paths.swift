import Foundation
import Vapor

/// One piece of an address: fixed text, or a named route parameter together with the value a link puts there.
struct PathSegment: Sendable, ExpressibleByStringLiteral {
    var component: PathComponent
    var value: String

    init(stringLiteral text: String) {
        component = .constant(text)
        value = text
    }

    private init(parameter name: String, value: String) {
        component = .parameter(name)
        self.value = value
    }

    static func parameter(_ name: String, _ value: String) -> Self { Self(parameter: name, value: value) }
    static func parameter(_ name: String, _ id: UUID) -> Self { Self(parameter: name, value: id.uuidString) }
}

/// An address Twofold answers at. One definition gives both the pattern a route is registered under and the concrete
/// path a link, form action or redirect uses, so a path literal is written once.
protocol RoutePath: Sendable {
    /// The address from the root, parameters filled in.
    var segments: [PathSegment] { get }
    /// The methods the route is registered for; `RouteRegistrationTests` checks every one is.
    var methods: [HTTPMethod] { get }
}

extension RoutePath {
    /// What the route is registered under, `[.constant("account"), .parameter("id")]`.
    var pattern: [PathComponent] { segments.map(\.component) }

    /// The concrete path, `/account/security/factors/3F2…/remove`.
    var string: String { "/" + segments.map(\.value).joined(separator: "/") }

    /// The concrete path with a confirmation to show and further query values, percent-encoded.
    func string(notice: Notice?, query: KeyValuePairs<String, String> = [:]) -> String {
        var items = notice.map { [URLQueryItem(name: "notice", value: $0.rawValue)] } ?? []
        items += query.map { URLQueryItem(name: $0.key, value: $0.value) }
        return Self.appending(items, to: string)
    }

    /// The concrete path with query values, percent-encoded.
    func string(query: KeyValuePairs<String, String>) -> String {
        Self.appending(query.map { URLQueryItem(name: $0.key, value: $0.value) }, to: string)
    }

    /// The concrete path with the query items that have a value, in order, percent-encoded: an item whose value is nil
    /// or empty (a search or filter not used) is left out, so a list page's links carry only what narrows it.
    func string(query items: [URLQueryItem]) -> String {
        Self.appending(items.filter { !($0.value ?? "").isEmpty }, to: string)
    }

    private static func appending(_ items: [URLQueryItem], to path: String) -> String {
        guard !items.isEmpty else { return path }
        let query = items.map { item in
            [item.name, item.value ?? ""].map { $0.addingPercentEncoding(withAllowedCharacters: queryAllowed) ?? "" }.joined(separator: "=")
        }
        return path + "?" + query.joined(separator: "&")
    }
}

/// Unreserved characters (RFC 3986): everything else in a query name or value is percent-encoded, `&`, `=` and `+` too.
private let queryAllowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

extension RoutesBuilder {
    @discardableResult
    func on<Response: AsyncResponseEncodable>(
        _ method: HTTPMethod, _ path: some RoutePath, body: HTTPBodyStreamStrategy = .collect,
        use closure: @Sendable @escaping (Request) async throws -> Response
    ) -> Route {
        on(method, path.pattern, body: body, use: closure)
    }

    @discardableResult
    func get<Response: AsyncResponseEncodable>(_ path: some RoutePath, use closure: @Sendable @escaping (Request) async throws -> Response)
        -> Route
    {
        on(.GET, path.pattern, use: closure)
    }

    @discardableResult
    func post<Response: AsyncResponseEncodable>(_ path: some RoutePath, use closure: @Sendable @escaping (Request) async throws -> Response)
        -> Route
    {
        on(.POST, path.pattern, use: closure)
    }

    @discardableResult
    func patch<Response: AsyncResponseEncodable>(
        _ path: some RoutePath, use closure: @Sendable @escaping (Request) async throws -> Response
    ) -> Route {
        on(.PATCH, path.pattern, use: closure)
    }

    @discardableResult
    func delete<Response: AsyncResponseEncodable>(
        _ path: some RoutePath, use closure: @Sendable @escaping (Request) async throws -> Response
    ) -> Route {
        on(.DELETE, path.pattern, use: closure)
    }
}

extension Request {
    /// A redirect to one of Twofold's pages, with a one-line confirmation to show there.
    func redirect(to path: some RoutePath, notice: Notice? = nil, query: KeyValuePairs<String, String> = [:]) -> Response {
        redirect(to: path.string(notice: notice, query: query))
    }
}

/// Sample values for listing parameterized addresses in tests.
enum PathSample {
    static let id = UUID(uuidString: "00000000-0000-4000-8000-000000000001")!
    static let otherID = UUID(uuidString: "00000000-0000-4000-8000-000000000002")!
    static let token = "sample-token"
    static let clientID = "sample-client"
    static let day = "2030-03-18"
}

/// Every page address of the web interface that is not under `/admin`.
enum WebPath: RoutePath {
    case home
    case login
    case logout
    case twoFactor
    case twoFactorSMS
    case recovery
    case forgotPassword
    case passwordReset(String)
    case passwordResetSMS(String)
    case emailConfirm(String)
    case invitation(String)
    case setup
    case setupApp
    case setupAppFactor(UUID)
    case setupSMS
    case setupSMSFactor(UUID)
    case setupSMSResend(UUID)
    case setupPushStart
    case setupPush(UUID)
    case setupPushStatus(UUID)
    case setupPasskey
    case recoveryCodesSaved
    case twoFactorPasskey
    case loginPasskey
    case twoFactorPushStart
    case twoFactorPush(UUID)
    case stepUp(UUID)
    case stepUpPush(UUID)
    case stepUpStatus(UUID)
    case stepUpPushFinish(UUID)
    case stepUpPasskey(UUID)
    case stepUpPasskeyOptions(UUID)
    case security
    case securityRecoveryCodes
    case securityDisable
    case securityBrowserRevoke(UUID)
    case securityFactorRemove(UUID)
    case securityFactorPrimary(UUID)
    case securityFactorRename(UUID)
    case securityFactorReportLost(UUID)
    case profile
    case password
    case epcsLog
    case epcsLogCSV
    case styles
    case script

    var segments: [PathSegment] {
        switch self {
        case .home: []
        case .login: ["login"]
        case .logout: ["logout"]
        case .twoFactor: ["login", "two-factor"]
        case .twoFactorSMS: ["login", "two-factor", "sms"]
        case .recovery: ["login", "recovery"]
        case .forgotPassword: ["login", "forgot"]
        case .passwordReset(let token): ["login", "reset", .parameter("token", token)]
        case .passwordResetSMS(let token): ["login", "reset", .parameter("token", token), "sms"]
        case .emailConfirm(let token): ["account", "email", "confirm", .parameter("token", token)]
        case .invitation(let token): ["invite", .parameter("token", token)]
        case .setup: ["account", "security", "setup"]
        case .setupApp: ["account", "security", "setup", "app"]
        case .setupAppFactor(let id): ["account", "security", "setup", "app", .parameter("factorID", id)]
        case .setupSMS: ["account", "security", "setup", "sms"]
        case .setupSMSFactor(let id): ["account", "security", "setup", "sms", .parameter("factorID", id)]
        case .setupSMSResend(let id): ["account", "security", "setup", "sms", .parameter("factorID", id), "resend"]
        case .setupPushStart: ["account", "security", "setup", "push"]
        case .setupPush(let id): ["account", "security", "setup", "push", .parameter("factorID", id)]
        case .setupPushStatus(let id): ["account", "security", "setup", "push", .parameter("factorID", id), "status"]
        case .setupPasskey: ["account", "security", "setup", "passkey"]
        case .recoveryCodesSaved: ["account", "security", "recovery-codes", "saved"]
        case .twoFactorPasskey: ["login", "two-factor", "passkey"]
        case .loginPasskey: ["login", "passkey"]
        case .twoFactorPushStart: ["login", "two-factor", "push"]
        case .twoFactorPush(let id): ["login", "two-factor", "push", .parameter("challengeID", id)]
        case .stepUp(let id): ["step-up", .parameter("id", id)]
        case .stepUpPush(let id): ["step-up", .parameter("id", id), "push"]
        case .stepUpStatus(let id): ["step-up", .parameter("id", id), "status"]
        case .stepUpPushFinish(let id): ["step-up", .parameter("id", id), "push", "finish"]
        case .stepUpPasskey(let id): ["step-up", .parameter("id", id), "passkey"]
        case .stepUpPasskeyOptions(let id): ["step-up", .parameter("id", id), "passkey", "options"]
        case .security: ["account", "security"]
        case .securityRecoveryCodes: ["account", "security", "recovery-codes"]
        case .securityDisable: ["account", "security", "disable"]
        case .securityBrowserRevoke(let id): ["account", "security", "browsers", .parameter("id", id), "revoke"]
        case .securityFactorRemove(let id): ["account", "security", "factors", .parameter("id", id), "remove"]
        case .securityFactorPrimary(let id): ["account", "security", "factors", .parameter("id", id), "primary"]
        case .securityFactorRename(let id): ["account", "security", "factors", .parameter("id", id), "rename"]
        case .securityFactorReportLost(let id): ["account", "security", "factors", .parameter("id", id), "report-lost"]
        case .profile: ["account", "profile"]
        case .password: ["account", "password"]
        case .epcsLog: ["account", "epcs"]
        case .epcsLogCSV: ["account", "epcs.csv"]
        case .styles: ["assets", "twofold.css"]
        case .script: ["assets", "twofold.js"]
        }
    }

    var methods: [HTTPMethod] {
        switch self {
        case .home, .setup, .security, .setupPushStatus, .stepUpStatus, .epcsLog, .epcsLogCSV, .styles, .script: [.GET]
        case .login, .twoFactor, .recovery, .forgotPassword, .passwordReset, .emailConfirm, .invitation, .setupAppFactor,
            .setupSMSFactor, .twoFactorPush, .stepUp, .securityFactorReportLost, .profile, .password:
            [.GET, .POST]
        case .logout, .twoFactorSMS, .passwordResetSMS, .setupApp, .setupSMS, .setupSMSResend, .setupPushStart, .setupPush,
            .setupPasskey, .recoveryCodesSaved, .twoFactorPasskey, .loginPasskey, .twoFactorPushStart, .stepUpPush,
            .stepUpPushFinish, .stepUpPasskey, .stepUpPasskeyOptions, .securityRecoveryCodes, .securityDisable,
            .securityBrowserRevoke, .securityFactorRemove, .securityFactorPrimary, .securityFactorRename:
            [.POST]
        }
    }

    static var allCases: [WebPath] {
        let (id, token) = (PathSample.id, PathSample.token)
        return [
            .home, .login, .logout, .twoFactor, .twoFactorSMS, .recovery, .forgotPassword, .passwordReset(token),
            .passwordResetSMS(token), .emailConfirm(token), .invitation(token), .setup, .setupApp, .setupAppFactor(id),
            .setupSMS, .setupSMSFactor(id), .setupSMSResend(id), .setupPushStart, .setupPush(id), .setupPushStatus(id),
            .setupPasskey, .recoveryCodesSaved, .twoFactorPasskey, .loginPasskey, .twoFactorPushStart, .twoFactorPush(id),
            .stepUp(id), .stepUpPush(id), .stepUpStatus(id), .stepUpPushFinish(id), .stepUpPasskey(id),
            .stepUpPasskeyOptions(id), .security, .securityRecoveryCodes, .securityDisable, .securityBrowserRevoke(id),
            .securityFactorRemove(id), .securityFactorPrimary(id), .securityFactorRename(id), .securityFactorReportLost(id),
            .profile, .password, .epcsLog, .epcsLogCSV, .styles, .script,
        ]
    }
}

/// Every page address under `/admin`.
enum AdminPath: RoutePath {
    case staff
    case newStaff
    case user(UUID)
    case edit(UUID)
    case delete(UUID)
    case setUp(UUID)
    case disable(UUID)
    case resendInvitation(UUID)
    case revokeInvitation(UUID)
    case passwordReset(UUID)
    case practice
    case audit
    case auditCSV
    case auditExport
    case apiKeys
    case revokeAPIKey(UUID)
    case radius
    case revokeRADIUSClient(UUID)
    case applications
    case newApplication
    case editApplication(String)
    case applicationSecret(String)
    case disableApplication(String)
    case enableApplication(String)
    case deleteApplication(String)
    case epcs
    case epcsSettings
    case epcsReports
    case epcsReport(String)
    case epcsReportReview(String)
    case epcsAcknowledge(UUID)
    case epcsApprove(UUID)
    case epcsRefuse(UUID)
    case epcsConfirmRevocation(UUID)
    case epcsGrant(UUID)
    case epcsRevoke(UUID)
    case epcsApprover(UUID)
    case reportLost(user: UUID, factor: UUID)

    var segments: [PathSegment] {
        ["admin"] + tail
    }

    private var tail: [PathSegment] {
        switch self {
        case .staff: ["staff"]
        case .newStaff: ["staff", "new"]
        case .user(let id): ["staff", .parameter("id", id)]
        case .edit(let id): ["staff", .parameter("id", id), "edit"]
        case .delete(let id): ["staff", .parameter("id", id), "delete"]
        case .setUp(let id): ["staff", .parameter("id", id), "two-factor", "setup"]
        case .disable(let id): ["staff", .parameter("id", id), "two-factor", "disable"]
        case .resendInvitation(let id): ["staff", .parameter("id", id), "invitation", "resend"]
        case .revokeInvitation(let id): ["staff", .parameter("id", id), "invitation", "revoke"]
        case .passwordReset(let id): ["staff", .parameter("id", id), "password-reset"]
        case .practice: ["practice"]
        case .audit: ["audit"]
        case .auditCSV: ["audit.csv"]
        case .auditExport: ["audit-export.json"]
        case .apiKeys: ["api-keys"]
        case .revokeAPIKey(let id): ["api-keys", .parameter("id", id), "revoke"]
        case .radius: ["radius"]
        case .revokeRADIUSClient(let id): ["radius", .parameter("id", id), "revoke"]
        case .applications: ["applications"]
        case .newApplication: ["applications", "new"]
        case .editApplication(let clientID): ["applications", .parameter("clientId", clientID), "edit"]
        case .applicationSecret(let clientID): ["applications", .parameter("clientId", clientID), "secret"]
        case .disableApplication(let clientID): ["applications", .parameter("clientId", clientID), "disable"]
        case .enableApplication(let clientID): ["applications", .parameter("clientId", clientID), "enable"]
        case .deleteApplication(let clientID): ["applications", .parameter("clientId", clientID), "delete"]
        case .epcs: ["epcs"]
        case .epcsSettings: ["epcs", "settings"]
        case .epcsReports: ["epcs", "reports"]
        // `2030-03-18`, `2030-03-18.csv` and `2030-03-18.json` are one path component.
        case .epcsReport(let day): ["epcs", "reports", .parameter("day", day)]
        case .epcsReportReview(let day): ["epcs", "reports", .parameter("day", day), "review"]
        case .epcsAcknowledge(let id): ["epcs", "alerts", .parameter("alertId", id), "acknowledge"]
        case .epcsApprove(let id): ["epcs", "grants", .parameter("grantId", id), "approve"]
        case .epcsRefuse(let id): ["epcs", "grants", .parameter("grantId", id), "refuse"]
        case .epcsConfirmRevocation(let id): ["epcs", "grants", .parameter("grantId", id), "confirm-revocation"]
        case .epcsGrant(let id): ["staff", .parameter("id", id), "epcs", "grant"]
        case .epcsRevoke(let id): ["staff", .parameter("id", id), "epcs", "revoke"]
        case .epcsApprover(let id): ["staff", .parameter("id", id), "epcs", "approver"]
        case .reportLost(let user, let factor):
            ["staff", .parameter("id", user), "factors", .parameter("factorId", factor), "report-lost"]
        }
    }

    var methods: [HTTPMethod] {
        switch self {
        case .newStaff, .user, .audit, .auditCSV, .auditExport, .newApplication, .epcs, .epcsReports, .epcsReport: [.GET]
        case .staff, .edit, .delete, .setUp, .revokeInvitation, .passwordReset, .practice, .apiKeys, .radius, .applications,
            .editApplication, .applicationSecret, .disableApplication, .enableApplication, .deleteApplication, .epcsApprove,
            .epcsRefuse, .epcsConfirmRevocation, .epcsGrant, .epcsRevoke, .reportLost:
            [.GET, .POST]
        case .disable, .resendInvitation, .revokeAPIKey, .revokeRADIUSClient, .epcsSettings, .epcsReportReview,
            .epcsAcknowledge, .epcsApprover:
            [.POST]
        }
    }

    static var allCases: [AdminPath] {
        let (id, client, day) = (PathSample.id, PathSample.clientID, PathSample.day)
        return [
            .staff, .newStaff, .user(id), .edit(id), .delete(id), .setUp(id), .disable(id), .resendInvitation(id),
            .revokeInvitation(id), .passwordReset(id), .practice, .audit, .auditCSV, .auditExport, .apiKeys, .revokeAPIKey(id), .radius,
            .revokeRADIUSClient(id), .applications, .newApplication, .editApplication(client), .applicationSecret(client),
            .disableApplication(client), .enableApplication(client), .deleteApplication(client), .epcs, .epcsSettings,
            .epcsReports, .epcsReport(day), .epcsReportReview(day), .epcsAcknowledge(id), .epcsApprove(id), .epcsRefuse(id),
            .epcsConfirmRevocation(id), .epcsGrant(id), .epcsRevoke(id), .epcsApprover(id),
            .reportLost(user: id, factor: PathSample.otherID),
        ]
    }
}

/// Every address of the JSON API under `/api/v1`.
enum APIPath: RoutePath {
    case login
    case loginVerify
    case loginSMS
    case loginRecovery
    case loginPush
    case loginPushStatus(UUID)
    case logout
    case forgotPassword
    case resetPassword
    case passkeySignInOptions
    case passkeySignIn
    case me
    case meFactors
    case meFactorTOTP
    case meFactorSMS
    case meFactorPush
    case meFactorActivate(UUID)
    case meFactor(UUID)
    case meFactorReportLost(UUID)
    case mePasskeyRegistrationOptions
    case mePasskey
    case meRecoveryCodes
    case meTwoFactor
    case meBrowsers
    case meBrowser(UUID)
    case meEPCSLog
    case practice
    case practiceUsers
    case practiceUserResendInvitation(UUID)
    case practiceUserInvitation(UUID)
    case practiceUserSetUp(UUID)
    case practiceUserDisable(UUID)
    case practiceUserPasswordReset(UUID)
    case practiceUserEPCSGrants(UUID)
    case practiceUserEPCS(UUID)
    case practiceUserEPCSApprover(UUID)
    case practiceUserReportLost(user: UUID, factor: UUID)
    case practiceAudit
    case applications
    case application(String)
    case applicationSecret(String)
    case applicationDisable(String)
    case applicationEnable(String)
    case epcsGrants
    case epcsGrantApprove(UUID)
    case epcsGrantRefuse(UUID)
    case epcsGrantConfirmRevocation(UUID)
    case epcsApprovers
    case epcsSettings
    case epcsAlerts
    case epcsAlertAcknowledge(UUID)
    case epcsReport(String)
    case epcsReportReview(String)
    case validate
    case pushEnroll
    case pushChallenges
    case pushChallenge(UUID)
    case stepUps
    case stepUp(UUID)
    case stepUpVerify(UUID)
    case stepUpPush(UUID)
    case stepUpPasskeyOptions(UUID)
    case stepUpPasskey(UUID)

    var segments: [PathSegment] {
        ["api", "v1"] + tail
    }

    private var tail: [PathSegment] {
        switch self {
        case .login: ["login"]
        case .loginVerify: ["login", "verify"]
        case .loginSMS: ["login", "sms"]
        case .loginRecovery: ["login", "recovery"]
        case .loginPush: ["login", "push"]
        case .loginPushStatus(let id): ["login", "push", .parameter("challengeID", id)]
        case .logout: ["logout"]
        case .forgotPassword: ["login", "forgot"]
        case .resetPassword: ["login", "reset"]
        case .passkeySignInOptions: ["login", "webauthn", "options"]
        case .passkeySignIn: ["login", "webauthn"]
        case .me: ["me"]
        case .meFactors: ["me", "factors"]
        case .meFactorTOTP: ["me", "factors", "totp"]
        case .meFactorSMS: ["me", "factors", "sms"]
        case .meFactorPush: ["me", "factors", "push"]
        case .meFactorActivate(let id): ["me", "factors", .parameter("id", id), "activate"]
        case .meFactor(let id): ["me", "factors", .parameter("id", id)]
        case .meFactorReportLost(let id): ["me", "factors", .parameter("id", id), "report-lost"]
        case .mePasskeyRegistrationOptions: ["me", "factors", "webauthn", "options"]
        case .mePasskey: ["me", "factors", "webauthn"]
        case .meRecoveryCodes: ["me", "recovery-codes"]
        case .meTwoFactor: ["me", "two-factor"]
        case .meBrowsers: ["me", "browsers"]
        case .meBrowser(let id): ["me", "browsers", .parameter("id", id)]
        case .meEPCSLog: ["me", "epcs", "log"]
        case .practice: ["practice"]
        case .practiceUsers: ["practice", "users"]
        case .practiceUserResendInvitation(let id): ["practice", "users", .parameter("id", id), "invitation", "resend"]
        case .practiceUserInvitation(let id): ["practice", "users", .parameter("id", id), "invitation"]
        case .practiceUserSetUp(let id): ["practice", "users", .parameter("id", id), "two-factor", "setup"]
        case .practiceUserDisable(let id): ["practice", "users", .parameter("id", id), "two-factor", "disable"]
        case .practiceUserPasswordReset(let id): ["practice", "users", .parameter("id", id), "password-reset"]
        case .practiceUserEPCSGrants(let id): ["practice", "users", .parameter("id", id), "epcs", "grants"]
        case .practiceUserEPCS(let id): ["practice", "users", .parameter("id", id), "epcs"]
        case .practiceUserEPCSApprover(let id): ["practice", "users", .parameter("id", id), "epcs", "approver"]
        case .practiceUserReportLost(let user, let factor):
            ["practice", "users", .parameter("id", user), "factors", .parameter("factorId", factor), "report-lost"]
        case .practiceAudit: ["practice", "audit"]
        case .applications: ["practice", "applications"]
        case .application(let clientID): ["practice", "applications", .parameter("clientId", clientID)]
        case .applicationSecret(let clientID): ["practice", "applications", .parameter("clientId", clientID), "secret"]
        case .applicationDisable(let clientID): ["practice", "applications", .parameter("clientId", clientID), "disable"]
        case .applicationEnable(let clientID): ["practice", "applications", .parameter("clientId", clientID), "enable"]
        case .epcsGrants: ["practice", "epcs", "grants"]
        case .epcsGrantApprove(let id): ["practice", "epcs", "grants", .parameter("grantId", id), "approve"]
        case .epcsGrantRefuse(let id): ["practice", "epcs", "grants", .parameter("grantId", id), "refuse"]
        case .epcsGrantConfirmRevocation(let id): ["practice", "epcs", "grants", .parameter("grantId", id), "confirm-revocation"]
        case .epcsApprovers: ["practice", "epcs", "approvers"]
        case .epcsSettings: ["practice", "epcs", "settings"]
        case .epcsAlerts: ["practice", "epcs", "alerts"]
        case .epcsAlertAcknowledge(let id): ["practice", "epcs", "alerts", .parameter("id", id), "acknowledge"]
        case .epcsReport(let day): ["practice", "epcs", "reports", .parameter("day", day)]
        case .epcsReportReview(let day): ["practice", "epcs", "reports", .parameter("day", day), "review"]
        case .validate: ["validate"]
        case .pushEnroll: ["push", "enroll"]
        case .pushChallenges: ["push", "challenges"]
        case .pushChallenge(let id): ["push", "challenges", .parameter("id", id)]
        case .stepUps: ["step-up"]
        case .stepUp(let id): ["step-up", .parameter("id", id)]
        case .stepUpVerify(let id): ["step-up", .parameter("id", id), "verify"]
        case .stepUpPush(let id): ["step-up", .parameter("id", id), "push"]
        case .stepUpPasskeyOptions(let id): ["step-up", .parameter("id", id), "webauthn", "options"]
        case .stepUpPasskey(let id): ["step-up", .parameter("id", id), "webauthn"]
        }
    }

    var methods: [HTTPMethod] {
        switch self {
        case .loginPushStatus, .me, .meFactors, .meBrowsers, .meEPCSLog, .practiceAudit, .epcsGrants, .epcsApprovers,
            .epcsAlerts, .epcsReport, .pushChallenges, .stepUp:
            [.GET]
        case .practice, .epcsSettings: [.GET, .PATCH]
        case .practiceUsers, .applications: [.GET, .POST]
        case .application: [.GET, .PATCH, .DELETE]
        case .meFactor: [.PATCH, .DELETE]
        case .meTwoFactor, .meBrowser, .practiceUserInvitation, .practiceUserEPCS: [.DELETE]
        case .practiceUserEPCSApprover: [.PUT]
        case .login, .loginVerify, .loginSMS, .loginRecovery, .loginPush, .logout, .forgotPassword, .resetPassword,
            .passkeySignInOptions, .passkeySignIn, .meFactorTOTP, .meFactorSMS, .meFactorPush, .meFactorActivate,
            .meFactorReportLost, .mePasskeyRegistrationOptions, .mePasskey, .meRecoveryCodes, .practiceUserResendInvitation,
            .practiceUserSetUp, .practiceUserDisable, .practiceUserPasswordReset, .practiceUserEPCSGrants,
            .practiceUserReportLost, .applicationSecret, .applicationDisable, .applicationEnable, .epcsGrantApprove,
            .epcsGrantRefuse, .epcsGrantConfirmRevocation, .epcsAlertAcknowledge, .epcsReportReview, .validate, .pushEnroll,
            .pushChallenge, .stepUps, .stepUpVerify, .stepUpPush, .stepUpPasskeyOptions, .stepUpPasskey:
            [.POST]
        }
    }

    static var allCases: [APIPath] {
        let (id, client, day) = (PathSample.id, PathSample.clientID, PathSample.day)
        return [
            .login, .loginVerify, .loginSMS, .loginRecovery, .loginPush, .loginPushStatus(id), .logout, .forgotPassword,
            .resetPassword, .passkeySignInOptions, .passkeySignIn, .me, .meFactors, .meFactorTOTP, .meFactorSMS, .meFactorPush,
            .meFactorActivate(id), .meFactor(id), .meFactorReportLost(id), .mePasskeyRegistrationOptions, .mePasskey,
            .meRecoveryCodes, .meTwoFactor, .meBrowsers, .meBrowser(id), .meEPCSLog, .practice, .practiceUsers,
            .practiceUserResendInvitation(id), .practiceUserInvitation(id), .practiceUserSetUp(id), .practiceUserDisable(id),
            .practiceUserPasswordReset(id), .practiceUserEPCSGrants(id), .practiceUserEPCS(id), .practiceUserEPCSApprover(id),
            .practiceUserReportLost(user: id, factor: PathSample.otherID), .practiceAudit, .applications, .application(client),
            .applicationSecret(client), .applicationDisable(client), .applicationEnable(client), .epcsGrants,
            .epcsGrantApprove(id), .epcsGrantRefuse(id), .epcsGrantConfirmRevocation(id), .epcsApprovers, .epcsSettings,
            .epcsAlerts, .epcsAlertAcknowledge(id), .epcsReport(day), .epcsReportReview(day), .validate, .pushEnroll,
            .pushChallenges, .pushChallenge(id), .stepUps, .stepUp(id), .stepUpVerify(id), .stepUpPush(id),
            .stepUpPasskeyOptions(id), .stepUpPasskey(id),
        ]
    }
}

/// The OpenID provider's addresses (also published in the discovery document) and the signing keys.
enum OIDCPath: RoutePath, CaseIterable {
    case discovery
    case jwks
    case authorize
    case authorizeContinue
    case token
    case userInfo
    case revoke
    case introspect
    case logout

    var segments: [PathSegment] {
        switch self {
        case .discovery: [".well-known", "openid-configuration"]
        case .jwks: [".well-known", "jwks.json"]
        case .authorize: ["oidc", "authorize"]
        case .authorizeContinue: ["oidc", "authorize", "continue"]
        case .token: ["oidc", "token"]
        case .userInfo: ["oidc", "userinfo"]
        case .revoke: ["oidc", "revoke"]
        case .introspect: ["oidc", "introspect"]
        case .logout: ["oidc", "logout"]
        }
    }

    var methods: [HTTPMethod] {
        switch self {
        case .discovery, .jwks, .authorizeContinue: [.GET]
        case .authorize, .userInfo, .logout: [.GET, .POST]
        case .token, .revoke, .introspect: [.POST]
        }
    }
}

/// Addresses for operators and monitoring.
enum OperationsPath: RoutePath, CaseIterable {
    case health
    case ready
    case metrics
    case openAPI

    var segments: [PathSegment] {
        switch self {
        case .health: ["health"]
        case .ready: ["ready"]
        case .metrics: ["metrics"]
        case .openAPI: ["openapi.json"]
        }
    }

    var methods: [HTTPMethod] { [.GET] }
}

extension UUID {
    /// Stands for the parameter where a route is registered; only the pattern of the address counts there.
    static let placeholder = UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
}

extension String {
    /// Stands for the parameter where a route is registered; only the pattern of the address counts there.
    static let placeholder = ""
}
