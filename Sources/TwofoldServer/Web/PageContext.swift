import TwofoldCore
import Vapor

/// What every page's layout needs.
struct Layout: Encodable {
    var title: String
    var practiceName: String?
    var csrf: String
    var signedInName: String?
    var isAdmin = false
    var notice: String?
    var error: String?
    var styles = WebPath.styles.string
    var script = WebPath.script.string
    var links = Links()
    /// Lifetimes the page's texts state, from the configured policy.
    var limits = PageLimits(.standard)

    /// The fixed addresses pages link to and post to (`#(layout.links.login)`), so no view spells out a path.
    struct Links: Encodable {
        var home = WebPath.home.string
        var login = WebPath.login.string
        var logout = WebPath.logout.string
        var forgotPassword = WebPath.forgotPassword.string
        var twoFactor = WebPath.twoFactor.string
        var twoFactorSMS = WebPath.twoFactorSMS.string
        var twoFactorPush = WebPath.twoFactorPushStart.string
        var recovery = WebPath.recovery.string
        var security = WebPath.security.string
        var profile = WebPath.profile.string
        var password = WebPath.password.string
        var staff = AdminPath.staff.string
        var practice = AdminPath.practice.string
        var apiKeys = AdminPath.apiKeys.string
        var radius = AdminPath.radius.string
        var applications = AdminPath.applications.string
        var epcs = AdminPath.epcs.string
        var epcsReports = AdminPath.epcsReports.string
        var audit = AdminPath.audit.string
    }
}

/// One-line confirmations shown after a redirect; a fixed list, so a link cannot put arbitrary words on a page.
enum Notice: String {
    case signedOut = "signed-out"
    case expired
    case enabled
    case factorAdded = "factor-added"
    case factorRemoved = "factor-removed"
    case factorRenamed = "factor-renamed"
    case primaryChanged = "primary-changed"
    case browserRevoked = "browser-revoked"
    case codesRegenerated = "codes-regenerated"
    case disabled
    case profileUpdated = "profile-updated"
    case passwordChanged = "password-changed"
    case smsSent = "sms-sent"
    case staffCreated = "staff-created"
    case staffUpdated = "staff-updated"
    case staffDeleted = "staff-deleted"
    case twoFactorSetUp = "two-factor-set-up"
    case twoFactorDisabledByAdmin = "two-factor-disabled"
    case settingsSaved = "settings-saved"
    case epcsGrantEntered = "epcs-grant-entered"
    case epcsGrantApproved = "epcs-grant-approved"
    case epcsGrantRefused = "epcs-grant-refused"
    case epcsGrantRevoked = "epcs-grant-revoked"
    case epcsRevocationConfirmed = "epcs-revocation-confirmed"
    case epcsSettingsSaved = "epcs-settings-saved"
    case epcsAlertAcknowledged = "epcs-alert-acknowledged"
    case epcsApproverSaved = "epcs-approver-saved"
    case deviceReportedLost = "device-reported-lost"
    case invitationSent = "invitation-sent"
    case invitationResent = "invitation-resent"
    case invitationRevoked = "invitation-revoked"
    case invitationAccepted = "invitation-accepted"
    case invitationAcceptedEnroll = "invitation-accepted-enroll"
    case passwordResetDone = "password-reset"
    case passwordResetSent = "password-reset-sent"
    case emailConfirmationSent = "email-confirmation-sent"
    case emailConfirmed = "email-confirmed"

    /// The notice's words; lifetimes come from `limits` (the configured policy).
    func message(_ limits: PageLimits) -> String {
        switch self {
        case .signedOut: "You have signed out."
        case .expired: "You were signed out after a period of inactivity. Sign in again."
        case .enabled: "Two-factor authentication is on."
        case .factorAdded: "The sign-in method was added."
        case .factorRemoved: "The sign-in method was removed."
        case .factorRenamed: "The sign-in method was renamed."
        case .primaryChanged: "Your primary sign-in method was changed."
        case .browserRevoked: "The browser will be asked for a code again."
        case .codesRegenerated: "New recovery codes were created; the old ones no longer work."
        case .disabled: "Two-factor authentication is off."
        case .profileUpdated: "Your profile was updated."
        case .passwordChanged: "Your password was changed. Other sessions and remembered browsers were signed out."
        case .smsSent: "A code was sent by text message."
        case .staffCreated:
            "The staff account was created. Give the temporary password to the staff member; they must change it at first sign-in."
        case .staffUpdated: "The staff account was saved."
        case .staffDeleted: "The staff account was deleted. Its audit history is kept."
        case .twoFactorSetUp:
            "Two-factor authentication is successfully set for the selected staff member. They will set it up at their next sign-in."
        case .twoFactorDisabledByAdmin:
            "Two-factor authentication was disabled: their methods, recovery codes and remembered browsers were removed and they were signed out everywhere."
        case .settingsSaved: "The practice settings were saved."
        case .epcsGrantEntered:
            "The EPCS grant was entered. It waits for a second EPCS access approver, a DEA registrant, to approve it with a code from their authenticator app; until then the prescriber cannot sign."
        case .epcsGrantApproved:
            "The EPCS grant was approved: the prescriber may now sign controlled-substance prescriptions with two-factor authentication."
        case .epcsGrantRefused: "The EPCS grant was refused. A new grant needs two approvers again."
        case .epcsGrantRevoked:
            "The EPCS permission was revoked; it took effect at once. A second approver confirms the revocation on this page."
        case .epcsRevocationConfirmed: "The revocation was confirmed."
        case .epcsSettingsSaved: "The EPCS settings were saved."
        case .epcsAlertAcknowledged: "The alert was acknowledged."
        case .epcsApproverSaved: "The EPCS approver designation was saved."
        case .deviceReportedLost:
            "The device was reported lost or stolen and no longer works. Any EPCS permission was revoked, and the practice's EPCS approvers were alerted."
        case .invitationSent:
            "The staff account was created and an invitation was emailed. The link is valid for \(limits.invitationDays) days; the staff member chooses their own password."
        case .invitationResent:
            "A new invitation was emailed. The earlier link no longer works; the new one is valid for \(limits.invitationDays) days."
        case .invitationRevoked: "The invitation was withdrawn; its link no longer works."
        case .invitationAccepted: "Welcome! Your password is set and you are signed in."
        case .invitationAcceptedEnroll:
            "Welcome! Your password is set. Your practice requires two-factor authentication: set up a method now to finish."
        case .passwordResetDone:
            "Your password was reset, and every session and remembered browser of your account was signed out. Sign in with your new password (and your second factor, if you have one)."
        case .passwordResetSent:
            "A link to choose a new password was emailed to the staff member. It works once, for \(limits.passwordResetMinutes) minutes; their current password keeps working until they use it."
        case .emailConfirmationSent:
            "Your profile was updated. We sent a confirmation link to the new email address: it is used once you open the link (within \(limits.emailConfirmationHours) hours). Until then, email goes to your current address."
        case .emailConfirmed: "Your email address was confirmed and is now in use."
        }
    }
}

extension Request {
    func layout(_ title: String, practice: String? = nil, error: String? = nil) -> Layout {
        let session = currentSession
        let notice = (try? query.get(String.self, at: "notice")).flatMap(Notice.init(rawValue:))?.message(PageLimits(policy))
        return Layout(
            title: title,
            practiceName: practice ?? session?.practice.name,
            csrf: session?.record.csrfToken ?? anonymousCSRFToken,
            signedInName: session?.record.stage == .signedIn ? session?.user.fullName : nil,
            isAdmin: session?.record.stage == .signedIn && session?.user.has(.manageAccounts) == true,
            notice: notice, error: error, limits: PageLimits(policy))
    }

    /// The double-submit token for forms shown before sign-in; ``AnonymousCSRFCookie`` sets the cookie.
    var anonymousCSRFToken: String {
        if let existing = storage[AnonymousCSRFKey.self] { return existing }
        let token = cookies[csrfCookieName]?.string ?? SecureRandom.token()
        storage[AnonymousCSRFKey.self] = token
        return token
    }

    func render(_ template: String, _ context: some Encodable, status: HTTPResponseStatus = .ok) async throws -> Response {
        let view = try await self.view.render(template, context)
        let response = try await view.encodeResponse(status: status, for: self)
        return response
    }
}

struct AnonymousCSRFKey: StorageKey { typealias Value = String }

/// Sets the double-submit CSRF cookie when a page used a fresh anonymous token.
struct AnonymousCSRFCookie: AsyncMiddleware {
    func respond(to request: Request, chainingTo next: any AsyncResponder) async throws -> Response {
        let response = try await next.respond(to: request)
        if let token = request.storage[AnonymousCSRFKey.self], request.cookies[request.csrfCookieName]?.string != token {
            response.cookies[request.csrfCookieName] = SessionCookie.value(token, secure: request.twofold.configuration.secureCookies)
        }
        return response
    }
}

/// What a waiting page's script polls for (`data-poll-url` in twofold.js): one status word.
struct PollStatus: Content {
    var status: String
}
