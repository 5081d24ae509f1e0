#!/usr/bin/env python3
"""Writes Twofold's OpenAPI 3.1 document to docs/openapi.json and the copy the server serves
(Sources/TwofoldServer/Resources/openapi.json). Edit this file when the API changes, then run it:

    python3 scripts/make-openapi.py

A server test checks that every registered API route is documented and that both copies are identical."""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def ref(name):
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties, required=()):
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


STR = {"type": "string"}
UUID = {"type": "string", "format": "uuid"}
DATE = {"type": "string", "format": "date-time"}
BOOL = {"type": "boolean"}
INT = {"type": "integer"}
NULLABLE_STR = {"type": ["string", "null"]}
B64U = {"type": "string", "pattern": "^[A-Za-z0-9_-]*$", "description": "base64url without padding"}

ERRORS = {
    400: "The request is malformed: a field is missing, has the wrong type, or is out of range. `reason` says which.",
    401: "Not signed in, at the wrong sign-in stage, a wrong code, or the current password is needed.",
    403: "Forbidden: wrong current password, missing permission, `enrollment_required: …` or `password_change_required: …`.",
    404: "No such resource for this user or practice.",
    409: "The request conflicts with the current state (for example an already active factor).",
    410: "The request has expired; start a new one.",
    422: "The code does not match the factor being set up, or a push approval carried the wrong number.",
    429: "Too many attempts; wait for the number of seconds in `Retry-After`.",
    503: "A text message could not be sent (try again later or use another method), or step-up is unavailable because the server has no TWOFOLD_PUBLIC_URL.",
}


def error(status):
    response = {"description": ERRORS[status], "content": {"application/json": {"schema": ref("Error")}}}
    if status == 429:
        response["headers"] = {"Retry-After": {"description": "Seconds to wait.", "schema": INT}}
    return response


def op(operation_id, summary, description, *, body=None, ok=None, ok_status=200, errors=(), auth=True, tags=(), parameters=None):
    operation = {"operationId": operation_id, "summary": summary, "description": description, "tags": list(tags)}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    responses = {}
    if ok_status == 204:
        responses["204"] = {"description": "Done."}
    else:
        responses[str(ok_status)] = {"description": "Success.", "content": {"application/json": {"schema": ok}}}
    for status in errors:
        responses[str(status)] = error(status)
    operation["responses"] = responses
    operation["security"] = [{"bearerAuth": []}, {"cookieAuth": []}] if auth else []
    return operation


ID_PARAM = [{"name": "id", "in": "path", "required": True, "schema": UUID}]
PAGE_PARAMS = [{"name": "q", "in": "query", "required": False, "schema": STR, "description": "Search login, name or email (case-insensitive)."},
               {"name": "page", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}}]
AUDIT_PARAMS = [
    {"name": "from", "in": "query", "required": False, "schema": STR, "description": "A day (2026-11-25) or ISO 8601 time."},
    {"name": "to", "in": "query", "required": False, "schema": STR, "description": "A day (inclusive) or ISO 8601 time."},
    {"name": "user", "in": "query", "required": False, "schema": STR, "description": "A login; matches events where the user is actor or subject."},
    {"name": "type", "in": "query", "required": False, "schema": STR, "description": "An event type such as sign_in.failed."},
    {"name": "page", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}},
]

SIGNED_IN = "Needs a signed-in session."
PASSWORD = "Needs the current `password`, unless it was confirmed in the last 5 minutes (`401` asks for it, `403` means it was wrong)."
ADMIN = "For users with the Manage Accounts permission, within their own practice; another practice's ids answer 404."
ADMIN_PASSWORD = "Confirmed with the administrator's own `adminPassword` every time."
LOCKOUT = ("Guessing limits: after 5 wrong codes each attempt waits 1, 2, 4 … 60 s (429); after 10 in one pending sign-in the "
           "sign-in is cancelled (401, enter the password again); every 20 consecutive failures lock the account's second factor "
           "for 15 minutes; at 100 it stays locked (403) until an administrator resets it.")

EPCS_STEP_UP = ("For `action.type` `epcs` (signing controlled-substance prescriptions, 21 CFR 1311): the user needs an active EPCS "
                "permission (403 otherwise, audited as `epcs.unauthorized_attempt`); `summary` may have up to 20 lines (one per "
                "prescription, 2000 characters); only the practice's EPCS-eligible hard tokens count (409 when the user has none); and the "
                "answer carries `attestation` (the exact text to show), `attestationHash` (its SHA-256, also in the assertion's "
                "`epcs.attestation_sha256`) and `factorsRequired` `[\"password\", \"hard_token\"]`.")

paths = {
    "/api/v1/login": {"post": op(
        "login", "Password step",
        "Checks the username and password and opens a session. `status` says what comes next: `authenticated`, "
        "`second_factor_required` (send a code to /login/verify) or `enrollment_required` (set up a factor first). "
        "Wrong username and wrong password get the same answer. Wrong passwords are limited to 10 per 15 minutes per "
        "username and 100 per 15 minutes per client address. A `rememberToken` from an earlier verification skips the second factor.",
        body=obj({"username": STR, "password": STR, "rememberToken": STR}, ["username", "password"]),
        ok=ref("LoginResponse"), errors=(400, 401, 429), auth=False, tags=["Sign-in"])},
    "/api/v1/login/verify": {"post": op(
        "verifyCode", "Second factor: authenticator or SMS code",
        "For a half-signed-in session (`second_factor_required`). Accepts a current authenticator code (±1 time step, each step once) "
        "or an unexpired SMS code; `factorId` picks one method. `rememberBrowser: true` returns a `rememberToken` valid for the "
        "practice's remember-browser days. " + LOCKOUT,
        body=obj({"code": STR, "factorId": UUID, "rememberBrowser": BOOL}, ["code"]),
        ok=ref("AuthenticatedResponse"), errors=(400, 401, 403, 429), tags=["Sign-in"])},
    "/api/v1/login/sms": {"post": op(
        "sendSignInSMS", "Send a sign-in code by text message",
        "For a half-signed-in session. Sends a random code (expires in 10 minutes, single use) to the SMS factor's phone or the "
        "profile's cell phone. At most one message per 30 seconds and five per hour, per user and per number.",
        ok=ref("SMSSent"), errors=(400, 401, 429, 503), tags=["Sign-in"])},
    "/api/v1/login/recovery": {"post": op(
        "useRecoveryCode", "Sign in with a recovery code",
        "For a half-signed-in session. Each code works once; the answer says how many remain. Counts toward the guessing limits.",
        body=obj({"code": STR}, ["code"]), ok=ref("AuthenticatedResponse"), errors=(400, 401, 403, 429), tags=["Sign-in"])},
    "/api/v1/login/forgot": {"post": op(
        "forgotPassword", "Forgot password: email a reset link",
        "`login` is a username (any case) or a verified email address. If an account matches and has a verified address, it is emailed a "
        "single-use link to choose a new password, valid 30 minutes; a newer link or a sign-in voids older ones. The answer is always 202 with "
        "the same body, in the same time, whether or not an account matched or the request was rate-limited (3 links per account and 10 "
        "requests per client address per hour); 400 only when `login` is empty.",
        body=obj({"login": STR}, ["login"]), ok=ref("ForgotPasswordAccepted"), ok_status=202, errors=(400,), auth=False, tags=["Sign-in"])},
    "/api/v1/login/reset": {"post": op(
        "resetPassword", "Set a new password with a reset link",
        "`token` is the last part of the emailed link (/login/reset/{token}). The password must meet the password policy (400 with the reason). "
        "When the practice requires the second factor before a reset (the default) and the user has one, `code` must be a current code from "
        "an authenticator app or text message, or an unused recovery code (400 without it or when wrong; wrong codes count toward the "
        "sign-in guessing limits, 429); users whose only methods are push or passkeys get 409 and need an administrator. 410 when the link "
        "expired, was used or was voided. The reset ends every session and remembered browser of the user and opens none: the next sign-in "
        "needs the new password and, as before, the second factor.",
        body=obj({"token": STR, "password": STR, "code": STR}, ["token", "password"]), ok_status=204, errors=(400, 409, 410, 429),
        auth=False, tags=["Sign-in"])},
    "/api/v1/logout": {"post": op("logout", "End the session", "Ends the session the token belongs to.", ok_status=204, errors=(401,), tags=["Sign-in"])},
    "/api/v1/me": {"get": op(
        "me", "The signed-in user", "Also allowed while enrollment is required.", ok=ref("Me"), errors=(401,), tags=["Account"])},
    "/api/v1/me/factors": {"get": op(
        "listFactors", "Active second factors", SIGNED_IN + " Primary first.", ok={"type": "array", "items": ref("Factor")}, errors=(401, 403), tags=["Account"])},
    "/api/v1/me/factors/totp": {"post": op(
        "startTOTP", "Start setting up an authenticator app",
        "Creates a pending factor with a new key and returns the key URI, the key and the QR code as SVG. " + PASSWORD,
        body=obj({"password": STR, "nickname": STR}), ok=ref("TOTPEnrollment"), errors=(400, 401, 403, 429), tags=["Account"])},
    "/api/v1/me/factors/sms": {"post": op(
        "startSMS", "Start setting up text messages",
        "Creates a pending SMS factor for the profile's cell phone and texts it a code. " + PASSWORD,
        body=obj({"password": STR, "nickname": STR}), ok=ref("SMSEnrollment"), errors=(400, 401, 403, 429, 503), tags=["Account"])},
    "/api/v1/me/factors/{id}/activate": {"post": op(
        "activateFactor", "Prove a pending factor works",
        "Activates the factor with a code from it. The first factor becomes primary and returns ten recovery codes, shown only here. "
        "After 10 wrong codes the pending factor is discarded.",
        body=obj({"code": STR}, ["code"]), ok=ref("Activation"), errors=(400, 401, 403, 404, 409, 422, 429), tags=["Account"], parameters=ID_PARAM)},
    "/api/v1/me/factors/{id}": {
        "patch": op("updateFactor", "Rename a factor or make it primary", SIGNED_IN + " " + PASSWORD,
                    body=obj({"nickname": STR, "primary": {"const": True}, "password": STR}), ok=ref("Factor"),
                    errors=(400, 401, 403, 404), tags=["Account"], parameters=ID_PARAM),
        "delete": op("deleteFactor", "Remove a factor",
                     SIGNED_IN + " " + PASSWORD + " The primary passes to the most recently used other factor; removing the last one turns "
                     "2FA off, which is refused (403) while the practice or an administrator requires 2FA, and otherwise needs the same proof as "
                     "turning 2FA off: `code`, a current code or a recovery code (400 without it).",
                     body=obj({"password": STR, "code": STR}), ok_status=204, errors=(400, 401, 403, 404, 429), tags=["Account"], parameters=ID_PARAM)},
    "/api/v1/me/recovery-codes": {"post": op(
        "regenerateRecoveryCodes", "New recovery codes", SIGNED_IN + " " + PASSWORD + " The old codes stop working.",
        body=obj({"password": STR}), ok=ref("RecoveryCodes"), errors=(401, 403, 409), tags=["Account"])},
    "/api/v1/me/two-factor": {"delete": op(
        "disableTwoFactor", "Turn two-factor authentication off",
        SIGNED_IN + " Needs the password and a current code (from an app or a confirmed phone) or a recovery code; refused (403) when 2FA is required. Removes every factor, recovery code and remembered browser.",
        body=obj({"password": STR, "code": STR}, ["code"]), ok_status=204, errors=(400, 401, 403, 429), tags=["Account"])},
    "/api/v1/me/browsers": {"get": op(
        "listBrowsers", "Remembered browsers", SIGNED_IN, ok={"type": "array", "items": ref("Browser")}, errors=(401, 403), tags=["Account"])},
    "/api/v1/me/browsers/{id}": {"delete": op(
        "revokeBrowser", "Forget a remembered browser", SIGNED_IN + " " + PASSWORD,
        body=obj({"password": STR}), ok_status=204, errors=(401, 403, 404), tags=["Account"], parameters=ID_PARAM)},
    "/api/v1/practice": {
        "get": op("getPractice", "The practice's settings", ADMIN, ok=ref("Practice"), errors=(401, 403), tags=["Administration"]),
        "patch": op("updatePractice", "Change practice settings",
                    ADMIN + " " + ADMIN_PASSWORD + " Turning mandatory 2FA on sends users without a factor to enrollment at their next request; turning it off keeps everyone's factors.",
                    body=obj({"adminPassword": STR, "name": STR, "mandatoryTwoFactor": BOOL, "rememberBrowserDays": {"type": "integer", "minimum": 0, "maximum": 90},
                              "inactivityMinutes": {"type": "integer", "minimum": 5, "maximum": 720}, "otpDigits": {"enum": [6, 7, 8]},
                              "allowSMS": BOOL, "allowTOTP": BOOL, "allowPush": BOOL, "allowPasskeys": BOOL, "allowPasswordless": BOOL, "refuseClonedPasskeys": BOOL,
                              "sessionLifetimeHours": {"type": "integer", "minimum": 1, "maximum": 24},
                              "accessTokenMinutes": {"type": "integer", "minimum": 5, "maximum": 15},
                              "refreshTokenDays": {"type": "integer", "minimum": 1, "maximum": 30},
                              "resetRequiresSecondFactor": BOOL,
                              "notificationCopyAddress": {"type": "string", "description": "An email address that also receives lockouts and administrators' actions on accounts; \"\" removes it."}}, ["adminPassword"]),
                    ok=ref("Practice"), errors=(400, 401, 403, 429), tags=["Administration"])},
    "/api/v1/practice/users": {"get": op(
        "listUsers", "Staff members with their 2FA state", ADMIN + " 50 per page.", ok=ref("UsersPage"), errors=(401, 403), tags=["Administration"], parameters=PAGE_PARAMS),
        "post": op(
        "createUser", "Add a staff member (invitation by email)",
        ADMIN + " " + ADMIN_PASSWORD + " With `invite` true (the default) the account has no usable password and the staff member is emailed a "
        "single-use invitation link, valid 7 days, to choose one (and, where 2FA is required, to enroll right away); until then they cannot sign in. "
        "With `invite` false, `temporaryPassword` is set and must be changed at first sign-in (`invitation` is then null).",
        body=obj({"username": STR, "firstName": STR, "lastName": STR, "email": STR, "cell": STR, "role": {"enum": ["provider", "staff"]},
                  "manageAccounts": BOOL, "primaryProviderId": UUID, "invite": BOOL, "temporaryPassword": STR, "adminPassword": STR},
                 ["username", "firstName", "lastName", "email", "adminPassword"]),
        ok=obj({"userId": UUID, "invitation": {"oneOf": [ref("Invitation"), {"type": "null"}]}}, ["userId", "invitation"]), ok_status=201,
        errors=(400, 401, 403, 404, 429), tags=["Administration"])},
    "/api/v1/practice/users/{id}/invitation/resend": {"post": op(
        "resendInvitation", "Send a staff member a new invitation link",
        ADMIN + " " + ADMIN_PASSWORD + " For an invitation not accepted yet (open, expired or revoked): a new link valid 7 days is emailed and the "
        "earlier link stops working. 409 when there is no invitation or it was accepted.",
        body=obj({"adminPassword": STR}, ["adminPassword"]), ok=ref("Invitation"), errors=(401, 403, 404, 409, 429), tags=["Administration"], parameters=ID_PARAM)},
    "/api/v1/practice/users/{id}/invitation": {"delete": op(
        "revokeInvitation", "Withdraw a staff member's invitation",
        ADMIN + " " + ADMIN_PASSWORD + " The link stops working at once; the account stays, without a usable password. 409 when no invitation is open.",
        body=obj({"adminPassword": STR}, ["adminPassword"]), ok_status=204, errors=(401, 403, 404, 409, 429), tags=["Administration"], parameters=ID_PARAM)},
    "/api/v1/practice/users/{id}/password-reset": {"post": op(
        "sendPasswordReset", "Email a staff member a password reset link",
        ADMIN + " " + ADMIN_PASSWORD + " The link goes to the user's verified address (409 when there is none), works once for 30 minutes and "
        "voids older links; their current password works until it is used. Audited with the administrator as actor.",
        body=obj({"adminPassword": STR}, ["adminPassword"]), ok=obj({"status": {"const": "sent"}, "expiresInMinutes": INT}, ["status", "expiresInMinutes"]),
        ok_status=202, errors=(401, 403, 404, 409, 429), tags=["Administration"], parameters=ID_PARAM)},
    "/api/v1/practice/users/{id}/two-factor/setup": {"post": op(
        "requireTwoFactorForUser", "Require 2FA of a staff member",
        ADMIN + " " + ADMIN_PASSWORD + " The user must have a cell phone on file (409 otherwise). At their next sign-in they must enroll before anything else.",
        body=obj({"adminPassword": STR}, ["adminPassword"]), ok_status=204, errors=(401, 403, 404, 409, 429), tags=["Administration"], parameters=ID_PARAM)},
    "/api/v1/practice/users/{id}/two-factor/disable": {"post": op(
        "disableTwoFactorForUser", "Reset a staff member's 2FA (lost phone)",
        ADMIN + " " + ADMIN_PASSWORD + " Removes their factors, recovery codes and remembered browsers and ends their sessions. Not for one's own account (409).",
        body=obj({"adminPassword": STR}, ["adminPassword"]), ok_status=204, errors=(401, 403, 404, 409, 429), tags=["Administration"], parameters=ID_PARAM)},
    "/api/v1/practice/audit": {"get": op(
        "auditLog", "The practice's audit log", ADMIN + " Newest first, 100 per page.", ok=ref("AuditPage"), errors=(400, 401, 403), tags=["Administration"], parameters=AUDIT_PARAMS)},
    "/api/v1/validate": {"post": {**op(
        "validate", "Check a user's code (VPN, remote desktop, PAM)",
        "Authenticated with a practice API key (`Authorization: Bearer tfk_…`). Accepts a current code of any active authenticator "
        "app of that user in the key's practice, under the sign-in rules: each time step once (across instances), failures count "
        "toward the account's guessing limits, every outcome is audited. An unknown user, a user of another practice, a locked "
        "account, a replayed and a wrong code all get the same `reject`.",
        body=obj({"username": {"type": "string", "minLength": 1, "maxLength": 128}, "code": {"type": "string", "pattern": "^[0-9]{6,8}$"}}, ["username", "code"]),
        ok=obj({"result": {"enum": ["accept", "reject"]}}, ["result"]), errors=(400, 401), tags=["Integration"]),
        "security": [{"apiKeyAuth": []}]}},
    "/api/v1/login/push": {"post": op(
        "startPushSignIn", "Second factor: send a push request",
        "For a half-signed-in session. Sends a request to the user's push device (`factorId`, else the primary or most recent one) "
        "and returns the two-digit `number` to show; the user enters it on the device to approve. Expires in 2 minutes; at most 10 "
        "requests per user per 10 minutes.",
        body=obj({"factorId": UUID}), ok=ref("PushStarted"), errors=(400, 401, 403, 404, 429), tags=["Sign-in"])},
    "/api/v1/login/push/{challengeID}": {"get": op(
        "pushSignInStatus", "Second factor: poll a push request",
        "`pending`, `denied` or `expired`; once approved, the first poll signs the session in and answers `authenticated` "
        "(with `rememberToken` when `?rememberBrowser=true` and the practice allows it).",
        parameters=[{"name": "challengeID", "in": "path", "required": True, "schema": UUID},
                    {"name": "rememberBrowser", "in": "query", "required": False, "schema": BOOL}],
        ok=obj({"status": {"enum": ["pending", "denied", "expired", "authenticated"]}, "rememberToken": STR,
                "token": {"type": "string", "description": "Once authenticated: the session's new bearer token; the one from the password step stops working."}}, ["status"]),
        errors=(401, 404, 409), tags=["Sign-in"])},
    "/api/v1/me/factors/push": {"post": op(
        "startPushEnrollment", "Add a push device",
        SIGNED_IN + " " + PASSWORD + " Returns a one-time `enrollmentURI` (and its QR code) valid 10 minutes. The device enrolls "
        "with it (POST /api/v1/push/enroll); its first signed request activates the factor; then POST /api/v1/me/factors/{id}/activate "
        "(no body) finishes, returning recovery codes when this is the first method.",
        body=obj({"password": STR, "nickname": STR}), ok=ref("PushEnrollment"), errors=(400, 401, 403), tags=["Account"])},
    "/api/v1/push/enroll": {"post": op(
        "enrollPushDevice", "Device: enroll",
        "Called by the device with the token from the enrollment URI, its P-256 public key (x9.63 uncompressed, base64url) and "
        "`proof`: its signature (raw r‖s, base64url) over `twofold-enroll-v1\\n<token>`. The token works once. See docs/push-protocol.md.",
        body=obj({"token": STR, "publicKey": STR, "proof": STR, "deviceName": STR}, ["token", "publicKey", "proof"]),
        ok=obj({"deviceId": UUID, "nickname": STR, "status": {"enum": ["pending", "active"]}}, ["deviceId", "nickname", "status"]),
        errors=(400, 401, 429), auth=False, tags=["Push device"])},
    "/api/v1/push/challenges": {"get": {**op(
        "pendingPushChallenges", "Device: pending requests (long poll)",
        "Signed device request (headers X-Twofold-Device, -Timestamp, -Nonce, -Signature). Waits up to `wait` seconds (0–30) "
        "for a request to arrive. The first signed request of a new device activates it.",
        parameters=[{"name": "wait", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0, "maximum": 30}}],
        ok=ref("PushChallenges"), errors=(401,), auth=False, tags=["Push device"]), "security": [{"deviceSignature": []}]}},
    "/api/v1/push/challenges/{id}": {"post": {**op(
        "answerPushChallenge", "Device: approve or deny",
        "Signed device request. `approve` needs the `number` shown in the browser (a wrong number refuses the request, 422); "
        "`deny` with `fraud: true` records that the user did not start it. A request is answered once (409 afterwards or when expired).",
        parameters=ID_PARAM, body=obj({"decision": {"enum": ["approve", "deny"]}, "number": INT, "fraud": BOOL}, ["decision"]),
        ok=obj({"id": UUID, "status": {"enum": ["approved", "denied"]}}, ["id", "status"]), errors=(400, 401, 404, 409, 422),
        auth=False, tags=["Push device"]), "security": [{"deviceSignature": []}]}},
    "/api/v1/step-up": {"post": {**op(
        "createStepUp", "Step-up: ask for a fresh second factor",
        "Authenticated with a practice API key. Names the user (`userId` or `username`, in the key's practice) and the action "
        "(`type` such as `epcs`, a one-line `summary` the user sees, and `hash` of the action's content). Returns the methods the "
        "user can use (`totp`, `push`, `webauthn`), a browser `url` and the `audience` (this API key's id) the assertion's `aud` will carry. "
        "The step-up belongs to this key: every other key, even of the same practice, gets 404 for it. Text messages, recovery codes and "
        "remembered browsers never count. Expires in 5 minutes. 503 when the server has no TWOFOLD_PUBLIC_URL (the assertion's issuer). "
        + EPCS_STEP_UP,
        body=obj({"userId": UUID, "username": STR, "action": obj({"type": STR, "summary": STR, "hash": STR}, ["type", "summary", "hash"])}, ["action"]),
        ok=ref("StepUpCreated"), ok_status=201, errors=(400, 401, 403, 404, 409, 503), tags=["Step-up"]), "security": [{"apiKeyAuth": []}]}},
    "/api/v1/step-up/{id}": {"get": {**op(
        "stepUpStatus", "Step-up: poll",
        "`pending`, `expired`, `cancelled` or `completed`. After a push approval or the browser page, the first poll returns "
        "`completed` with the `assertion`; later polls return `completed` without it (one assertion per step-up).",
        parameters=ID_PARAM, ok=ref("StepUpAssertion"), errors=(401, 404, 503), tags=["Step-up"]), "security": [{"apiKeyAuth": []}]}},
    "/api/v1/step-up/{id}/verify": {"post": {**op(
        "verifyStepUp", "Step-up: verify an authenticator code",
        "A current code from one of the user's authenticator apps, never used before. Returns the signed `assertion` (compact JWS, "
        "ES256; keys at /.well-known/jwks.json). 5 wrong codes cancel the step-up; failures count toward the account's guessing limits. "
        "For `epcs` the user's `password` is required too (400 without it, 401 when wrong, counted like a wrong code; 403 when the "
        "EPCS permission was revoked or expired meanwhile, or the app is not EPCS-eligible); the assertion's `amr` is then `[\"pwd\", \"otp\"]`.",
        parameters=ID_PARAM, body=obj({"code": STR, "password": {"type": "string", "description": "Required for `epcs`: the knowledge factor (21 CFR 1311.115)."}}, ["code"]),
        ok=ref("StepUpAssertion"), errors=(400, 401, 403, 404, 409, 410, 429, 503),
        tags=["Step-up"]), "security": [{"apiKeyAuth": []}]}},
    "/api/v1/step-up/{id}/push": {"post": {**op(
        "pushStepUp", "Step-up: send to the push device",
        "Sends the action summary to the user's push device. Show the returned `number` to the user, then poll GET /api/v1/step-up/{id}. "
        "For `epcs` the `password` is checked first (400 without it, 401 when wrong) and the device shows the whole attestation; "
        "the assertion's `amr` is then `[\"pwd\", \"push\"]`. 403 when the practice does not count push devices for EPCS.",
        parameters=ID_PARAM, body=obj({"factorId": UUID, "password": {"type": "string", "description": "Required for `epcs`."}}),
        ok=obj({"pushChallengeId": UUID, "number": INT, "expiresAt": DATE}, ["pushChallengeId", "number", "expiresAt"]),
        errors=(400, 401, 403, 404, 409, 410, 429), tags=["Step-up"]), "security": [{"apiKeyAuth": []}]}},
    "/api/v1/step-up/{id}/webauthn/options": {"post": {**op(
        "passkeyStepUpOptions", "Step-up: passkey request options",
        "WebAuthn request options (JSON form, for `PublicKeyCredential.parseRequestOptionsFromJSON`) listing the user's passkeys, "
        "with `userVerification: required`. Run `navigator.credentials.get()` on a page whose origin is in TWOFOLD_ORIGINS and whose "
        "domain is the relying-party id or below it, then POST the credential to /api/v1/step-up/{id}/webauthn.",
        parameters=ID_PARAM, ok=ref("RequestOptions"), errors=(401, 404, 409, 410), tags=["Step-up"]), "security": [{"apiKeyAuth": []}]}},
    "/api/v1/step-up/{id}/webauthn": {"post": {**op(
        "passkeyStepUp", "Step-up: verify a passkey",
        "The `credential` from `navigator.credentials.get()` (`PublicKeyCredential.toJSON()`). The authenticator must have verified "
        "the user (PIN or biometric); the assertion then carries `amr: [\"hwk\", \"user\"]` for a device-bound passkey (backup-eligible "
        "flag clear at registration) and `[\"swk\", \"user\"]` for a synced one. Failures count toward the account's guessing limits. "
        "For `epcs` send the `password` too; only an EPCS-eligible security key counts (403 otherwise), its PIN or biometric is not "
        "counted as a factor, and `amr` starts with `pwd`.",
        parameters=ID_PARAM, body=obj({"credential": ref("AuthenticationCredential"), "password": {"type": "string", "description": "Required for `epcs`."}}, ["credential"]),
        ok=ref("StepUpAssertion"), errors=(400, 401, 403, 404, 409, 410, 429, 503), tags=["Step-up"]), "security": [{"apiKeyAuth": []}]}},
    "/api/v1/me/factors/webauthn/options": {"post": op(
        "passkeyRegistrationOptions", "Add a passkey: creation options",
        SIGNED_IN + " Also open while enrolling. " + PASSWORD + " Returns WebAuthn creation options in the Level 3 JSON form "
        "(`PublicKeyCredential.parseCreationOptionsFromJSON`): ES256, EdDSA and RS256; a discoverable credential preferred; the user's "
        "existing passkeys excluded. The challenge (32 random bytes) works once, for this session, for 5 minutes.",
        body=obj({"password": STR}), ok=ref("CreationOptions"), errors=(401, 403, 429), tags=["Account"])},
    "/api/v1/me/factors/webauthn": {"post": op(
        "addPasskey", "Add a passkey: verify the new credential",
        SIGNED_IN + " The `credential` from `navigator.credentials.create()` (`PublicKeyCredential.toJSON()`). Attestation formats "
        "`none`, `packed` and `fido-u2f` are verified (and must chain to TWOFOLD_WEBAUTHN_TRUST_ANCHORS when that is set). The passkey "
        "becomes active at once; the first method becomes primary and returns recovery codes.",
        body=obj({"credential": ref("RegistrationCredential"), "nickname": STR}, ["credential"]), ok=ref("Activation"), ok_status=201,
        errors=(400, 401, 403, 409), tags=["Account"])},
    "/api/v1/login/webauthn/options": {"post": op(
        "passkeySignInOptions", "Sign in with a passkey: request options",
        "For a half-signed-in session: request options listing the user's passkeys (second factor). With no session: a passwordless "
        "ceremony (no credentials listed, `userVerification: required`), only when some practice allows passwordless sign-in (403 "
        "otherwise; rate-limited per address). The challenge works once, for 5 minutes.",
        ok=ref("RequestOptions"), errors=(401, 403, 409, 429), auth=False, tags=["Sign-in"])},
    "/api/v1/login/webauthn": {"post": op(
        "passkeySignIn", "Sign in with a passkey",
        "The `credential` from `navigator.credentials.get()`. With a half-signed-in session it is the second factor (failures count "
        "toward the guessing limits; `rememberBrowser` as for codes). Without a session it is a passwordless sign-in: the passkey's "
        "user handle names the user, user verification is required, the user's practice must allow it, and the reply carries the new "
        "session's `token`. A signature counter that went backwards is audited and, when the practice says so, refused.",
        body=obj({"credential": ref("AuthenticationCredential"), "rememberBrowser": BOOL}, ["credential"]),
        ok=obj({"status": {"const": "authenticated"}, "token": STR, "rememberToken": STR}, ["status"]),
        errors=(400, 401, 403, 409, 429), auth=False, tags=["Sign-in"])},
    "/.well-known/jwks.json": {"get": op(
        "jwks", "Step-up signing keys",
        "The public keys (JWK Set) that verify step-up assertions and OpenID Connect tokens: an ES256 (P-256) and an RS256 (RSA) key, and keys retired in the last 24 hours.",
        ok=obj({"keys": {"type": "array", "items": {"type": "object"}}}, ["keys"]), auth=False, tags=["Step-up"])},
    "/health": {"get": op("health", "Liveness", "200 while the process answers.", ok=obj({"status": STR}, ["status"]), auth=False, tags=["Operations"])},
    "/ready": {"get": {**op("ready", "Readiness", "200 when the database answers and is migrated; 503 otherwise.", ok=ref("Readiness"), auth=False, tags=["Operations"]),
                       }},
    "/metrics": {"get": {**op("metrics", "Prometheus metrics",
        "Requests and latency per route, verification outcomes per factor kind, SMS sent/failed, lockouts, database errors, in the "
        "Prometheus text format. With TWOFOLD_METRICS_TOKEN set, send it as a bearer token.",
        ok={"type": "string"}, errors=(401,), auth=False, tags=["Operations"]),
        "security": [{}, {"metricsToken": []}]}},
    "/openapi.json": {"get": op("openapi", "This document", "The OpenAPI 3.1 description of the API.", ok={"type": "object"}, auth=False, tags=["Operations"])},
}
paths["/metrics"]["get"]["responses"]["200"] = {"description": "Prometheus text exposition format.", "content": {"text/plain": {"schema": STR}}}
paths["/ready"]["get"]["responses"]["503"] = {"description": "Not ready.", "content": {"application/json": {"schema": ref("Readiness")}}}

# The practice's OpenID Connect applications (clients).
CLIENT_ID_PARAM = [{"name": "clientId", "in": "path", "required": True, "schema": STR, "description": "The application's client_id."}]
ADMIN_PASSWORD_BODY = obj({"adminPassword": STR}, ["adminPassword"])
REDIRECT_URIS = ("Redirect URIs are matched exactly; each is absolute, without a fragment, at most 2000 characters, and uses https, "
                 "http only on a loopback host (localhost, 127.0.0.0/8, [::1]), or — for public clients only — a private-use "
                 "scheme in reverse-domain form such as com.example.app:/callback (RFC 8252).")
URI_LIST = {"type": "array", "items": {"type": "string", "maxLength": 2000}, "maxItems": 10}
ID_TOKEN_ALG = {"enum": ["RS256", "ES256"]}
paths.update({
    "/api/v1/practice/applications": {
        "get": op("listApplications", "The practice's applications (OpenID Connect clients)", ADMIN + " Oldest first; never the secrets.",
                  ok={"type": "array", "items": ref("Application")}, errors=(401, 403), tags=["Administration"]),
        "post": op("createApplication", "Register an application",
                   ADMIN + " " + ADMIN_PASSWORD + " " + REDIRECT_URIS + " The answer carries `clientSecret` once (absent for a public "
                   "client, which must use PKCE); only its hash is stored.",
                   body=obj({"adminPassword": STR, "name": {"type": "string", "minLength": 1, "maxLength": 100},
                             "redirectUris": {**URI_LIST, "minItems": 1}, "postLogoutRedirectUris": URI_LIST, "backchannelLogoutUri": STR,
                             "startUrl": STR, "public": BOOL, "idTokenAlg": ID_TOKEN_ALG, "allowOfflineAccess": BOOL},
                            ["adminPassword", "name", "redirectUris"]),
                   ok=ref("Application"), ok_status=201, errors=(400, 401, 403, 429), tags=["Administration"])},
    "/api/v1/practice/applications/{clientId}": {
        "get": op("getApplication", "One application", ADMIN, ok=ref("Application"), errors=(401, 403, 404), tags=["Administration"],
                  parameters=CLIENT_ID_PARAM),
        "patch": op("updateApplication", "Change an application",
                    ADMIN + " " + ADMIN_PASSWORD + " Only the fields sent change; an empty `backchannelLogoutUri` or `startUrl` removes it. "
                    + REDIRECT_URIS,
                    body=obj({"adminPassword": STR, "name": {"type": "string", "minLength": 1, "maxLength": 100},
                              "redirectUris": {**URI_LIST, "minItems": 1}, "postLogoutRedirectUris": URI_LIST, "backchannelLogoutUri": STR,
                              "startUrl": STR, "idTokenAlg": ID_TOKEN_ALG, "allowOfflineAccess": BOOL}, ["adminPassword"]),
                    ok=ref("Application"), errors=(400, 401, 403, 404, 429), tags=["Administration"], parameters=CLIENT_ID_PARAM),
        "delete": op("deleteApplication", "Delete an application",
                     ADMIN + " " + ADMIN_PASSWORD + " Removes it with its codes and tokens; the audit log keeps its history.",
                     body=ADMIN_PASSWORD_BODY, ok_status=204, errors=(401, 403, 404, 429), tags=["Administration"], parameters=CLIENT_ID_PARAM)},
    "/api/v1/practice/applications/{clientId}/secret": {"post": op(
        "rotateApplicationSecret", "Give a confidential application a new secret",
        ADMIN + " " + ADMIN_PASSWORD + " The old secret stops working at once; the new one is in this answer only. A public client has no secret (409).",
        body=ADMIN_PASSWORD_BODY, ok=obj({"clientId": STR, "clientSecret": STR}, ["clientId", "clientSecret"]),
        errors=(401, 403, 404, 409, 429), tags=["Administration"], parameters=CLIENT_ID_PARAM)},
    "/api/v1/practice/applications/{clientId}/disable": {"post": op(
        "disableApplication", "Disable an application",
        ADMIN + " " + ADMIN_PASSWORD + " Nobody signs in to it through Twofold any more and its outstanding tokens are revoked.",
        body=ADMIN_PASSWORD_BODY, ok=ref("Application"), errors=(401, 403, 404, 429), tags=["Administration"], parameters=CLIENT_ID_PARAM)},
    "/api/v1/practice/applications/{clientId}/enable": {"post": op(
        "enableApplication", "Enable an application again", ADMIN + " " + ADMIN_PASSWORD,
        body=ADMIN_PASSWORD_BODY, ok=ref("Application"), errors=(401, 403, 404, 429), tags=["Administration"], parameters=CLIENT_ID_PARAM)},
})

# EPCS: two-person permissions, approvers, settings, alerts and lost devices (21 CFR 1311).
GRANT_ID_PARAM = [{"name": "grantId", "in": "path", "required": True, "schema": UUID}]
FACTOR_ID_PARAM = {"name": "factorId", "in": "path", "required": True, "schema": UUID}
EPCS_APPROVER = (" Only the practice's EPCS access approvers (403 otherwise, audited as `epcs.unauthorized_attempt`).")
GRANT_STATUS = obj({"grantId": UUID, "status": {"enum": ["pending_approval", "active", "refused", "revoked"]},
                    "revocationConfirmed": BOOL}, ["grantId", "status"])
APPROVER_PROOF = obj({"code": STR, "push": BOOL, "pushChallengeId": UUID}, [])
APPROVER_PROOF_TEXT = (" Proof of the approver's second factor: `{\"code\"}` (a fresh code from their authenticator app; never a text "
                       "message, a recovery code or a remembered browser; 401 for a wrong or already used code, counted toward the guessing "
                       "limits), or `{\"push\": true}`, which sends the step to their push device and answers 202 with the number to enter "
                       "there, then `{\"pushChallengeId\"}` once it is approved (409 while it waits, 403 when denied or expired; one push, one step).")
PUSH_PENDING = obj({"grantId": UUID, "status": {"enum": ["pending_push"]}, "pushChallengeId": UUID, "number": INT,
                    "expiresAt": {"type": "string", "format": "date-time"}}, ["grantId", "status", "pushChallengeId", "number", "expiresAt"])


def with_push_pending(operation):
    operation["responses"]["202"] = {"description": "A push request was sent to the approver's device.",
                                     "content": {"application/json": {"schema": PUSH_PENDING}}}
    return operation


paths.update({
    "/api/v1/practice/users/{id}/epcs/grants": {"post": op(
        "enterEPCSGrant", "EPCS: enter a prescriber's permission (first approver)",
        ADMIN + EPCS_APPROVER + " " + ADMIN_PASSWORD + " The first of two people (21 CFR 1311.125): records the provider's DEA "
        "registration number (two letters, seven digits, the last a check digit; 400 when it is wrong), its last valid day, the "
        "states, and the credential service provider's identity-proofing record. Not for oneself (403), only for providers (409), "
        "needs two approvers of whom one is a DEA registrant (409), and one open grant per prescriber (409). The grant waits for a "
        "second approver.",
        body=obj({"deaNumber": STR, "deaExpiresOn": {"type": "string", "format": "date"}, "states": {"type": "array", "items": STR, "minItems": 1},
                  "proofing": obj({"provider": STR, "date": {"type": "string", "format": "date"}, "level": STR, "reference": STR},
                                  ["provider", "date", "level", "reference"]),
                  "adminPassword": STR}, ["deaNumber", "deaExpiresOn", "states", "proofing", "adminPassword"]),
        ok=GRANT_STATUS, ok_status=201, errors=(400, 401, 403, 404, 409, 429), tags=["EPCS"], parameters=ID_PARAM)},
    "/api/v1/practice/epcs/grants/{grantId}/approve": {"post": with_push_pending(op(
        "approveEPCSGrant", "EPCS: approve a permission (second approver)",
        ADMIN + EPCS_APPROVER + " The second person: a different approver from the one who entered it (403), a DEA registrant (403), "
        "not the prescriber (403)." + APPROVER_PROOF_TEXT + " Only one decision counts (409 afterwards).",
        body=APPROVER_PROOF, ok=GRANT_STATUS, errors=(400, 401, 403, 404, 409, 429), tags=["EPCS"], parameters=GRANT_ID_PARAM))},
    "/api/v1/practice/epcs/grants/{grantId}/refuse": {"post": op(
        "refuseEPCSGrant", "EPCS: refuse a waiting permission",
        ADMIN + EPCS_APPROVER + " " + ADMIN_PASSWORD + " A new grant then needs two approvers again.",
        body=obj({"reason": STR, "adminPassword": STR}, ["adminPassword"]), ok=GRANT_STATUS, errors=(400, 401, 403, 404, 409, 429),
        tags=["EPCS"], parameters=GRANT_ID_PARAM)},
    "/api/v1/practice/users/{id}/epcs": {"delete": op(
        "revokeEPCSGrant", "EPCS: revoke a prescriber's permission",
        ADMIN + EPCS_APPROVER + " " + ADMIN_PASSWORD + " Takes effect at once (21 CFR 1311.125(d)): new signings and those under way "
        "are refused. A second approver confirms it afterwards (confirm-revocation). 409 when there is nothing to revoke.",
        body=obj({"reason": STR, "adminPassword": STR}, ["adminPassword"]), ok=GRANT_STATUS, errors=(400, 401, 403, 404, 409, 429),
        tags=["EPCS"], parameters=ID_PARAM)},
    "/api/v1/practice/epcs/grants/{grantId}/confirm-revocation": {"post": with_push_pending(op(
        "confirmEPCSRevocation", "EPCS: confirm a revocation (second approver)",
        ADMIN + EPCS_APPROVER + " Another approver than the one who revoked, a DEA registrant." + APPROVER_PROOF_TEXT,
        body=APPROVER_PROOF, ok=GRANT_STATUS, errors=(400, 401, 403, 404, 409, 429), tags=["EPCS"], parameters=GRANT_ID_PARAM))},
    "/api/v1/practice/epcs/grants": {"get": op(
        "listEPCSGrants", "EPCS: the practice's permissions", ADMIN + " Newest first, with who entered, decided, revoked and confirmed each.",
        ok=obj({"grants": {"type": "array", "items": ref("EPCSGrant")}}, ["grants"]), errors=(401, 403), tags=["EPCS"])},
    "/api/v1/practice/users/{id}/epcs/approver": {"put": op(
        "designateEPCSApprover", "EPCS: designate an access approver",
        ADMIN + " " + ADMIN_PASSWORD + " Marks a user with Manage Accounts (409 otherwise) as an EPCS access approver or not, and "
        "records whether they are a DEA registrant (21 CFR 1311.125(a)).",
        body=obj({"approver": BOOL, "deaRegistrant": BOOL, "adminPassword": STR}, ["approver", "deaRegistrant", "adminPassword"]),
        ok=ref("EPCSApprover"), errors=(400, 401, 403, 404, 409, 429), tags=["EPCS"], parameters=ID_PARAM)},
    "/api/v1/practice/epcs/approvers": {"get": op(
        "listEPCSApprovers", "EPCS: the practice's access approvers", ADMIN,
        ok=obj({"approvers": {"type": "array", "items": ref("EPCSApprover")}}, ["approvers"]), errors=(401, 403), tags=["EPCS"])},
    "/api/v1/practice/epcs/settings": {
        "get": op("getEPCSSettings", "EPCS: the practice's settings", ADMIN, ok=ref("EPCSSettings"), errors=(401, 403), tags=["EPCS"]),
        "patch": op("updateEPCSSettings", "EPCS: change the practice's settings",
                    ADMIN + " " + ADMIN_PASSWORD + " Only the fields sent change. `eligibleTokens` lists the hard tokens that count "
                    "for signing (21 CFR 1311.115, 1311.116): `push`, `totp`, `security_key` (text messages and recovery codes never do); "
                    "`securityKeyAAGUIDs` optionally limits security keys to listed models; working hours (UTC) flag approvals outside them in the daily report.",
                    body=obj({"eligibleTokens": {"type": "array", "items": {"enum": ["push", "totp", "security_key"]}},
                              "securityKeyAAGUIDs": {"type": "array", "items": UUID}, "workingHoursStart": {"type": "integer", "minimum": 0, "maximum": 23},
                              "workingHoursEnd": {"type": "integer", "minimum": 1, "maximum": 24}, "adminPassword": STR}, ["adminPassword"]),
                    ok=ref("EPCSSettings"), errors=(400, 401, 403, 429), tags=["EPCS"])},
    "/api/v1/practice/epcs/alerts": {"get": op(
        "listEPCSAlerts", "EPCS: open alerts", ADMIN + " Devices reported lost and other events the approvers must see, newest first, until acknowledged.",
        ok=obj({"alerts": {"type": "array", "items": ref("EPCSAlert")}}, ["alerts"]), errors=(401, 403), tags=["EPCS"])},
    "/api/v1/practice/epcs/alerts/{id}/acknowledge": {"post": op(
        "acknowledgeEPCSAlert", "EPCS: acknowledge an alert", ADMIN + EPCS_APPROVER + " Audited.",
        ok_status=204, errors=(401, 403, 404), tags=["EPCS"], parameters=ID_PARAM)},
    "/api/v1/me/factors/{id}/report-lost": {"post": op(
        "reportLostFactor", "Report a lost or stolen device",
        SIGNED_IN + " " + PASSWORD + " The device stops working at once (it is removed), browsers remembered with it are forgotten, "
        "an EPCS permission is revoked (signing needs two approvers again, 21 CFR 1311.102(b)) and the practice's approvers are alerted.",
        body=obj({"password": STR}), ok=ref("LostDevice"), errors=(400, 401, 403, 404, 429), tags=["Account", "EPCS"], parameters=ID_PARAM)},
    "/api/v1/practice/users/{id}/factors/{factorId}/report-lost": {"post": op(
        "reportLostFactorForUser", "Report a staff member's device lost or stolen",
        ADMIN + " " + ADMIN_PASSWORD + " As when the owner reports it: the device is removed, an EPCS permission revoked, the approvers alerted.",
        body=ADMIN_PASSWORD_BODY, ok=ref("LostDevice"), errors=(400, 401, 403, 404, 429), tags=["Administration", "EPCS"],
        parameters=ID_PARAM + [FACTOR_ID_PARAM])},
})

factor = obj({"id": UUID, "shortId": STR, "kind": {"enum": ["totp", "sms", "push", "webauthn"]}, "nickname": STR, "primary": BOOL, "status": {"enum": ["pending", "active"]},
              "createdAt": DATE, "lastUsedAt": DATE, "phone": {"type": "string", "description": "Masked, e.g. •••4567."},
              "synced": {"type": "boolean", "description": "Passkeys: whether it may be synced to other devices (backup eligible)."},
              "aaguid": {"type": "string", "description": "Passkeys: the authenticator model's AAGUID."},
              "epcsEligible": {"type": "boolean", "description": "In GET /api/v1/me/factors: whether the practice counts this device as a hard token for EPCS signing."}},
             ["id", "shortId", "kind", "nickname", "primary", "status"])

schemas = {
    "Error": obj({"error": {"const": True}, "reason": STR,
                  "status": {"enum": ["enrollment_required", "second_factor_required", "password_change_required"],
                             "description": "What the client must do first, when a session may not reach this operation yet."}}, ["error", "reason"]),
    "Factor": factor,
    "LoginResponse": obj({"status": {"enum": ["authenticated", "second_factor_required", "enrollment_required"]}, "token": STR,
                          "factors": {"type": "array", "items": ref("Factor")}, "smsAvailable": BOOL, "rememberBrowserDays": INT},
                         ["status", "token", "factors", "smsAvailable", "rememberBrowserDays"]),
    "AuthenticatedResponse": obj({"status": {"const": "authenticated"},
                                  "token": {"type": "string", "description": "The session's new bearer token: the token of the password step stops working once the second factor passes."},
                                  "rememberToken": STR, "recoveryCodesLeft": INT}, ["status"]),
    "ForgotPasswordAccepted": obj({"status": {"const": "accepted"}, "message": STR}, ["status", "message"]),
    "SMSSent": obj({"sentTo": STR, "expiresInSeconds": INT}, ["sentTo", "expiresInSeconds"]),
    "Me": obj({"id": UUID, "username": STR, "firstName": STR, "lastName": STR, "email": STR, "cellPhone": STR, "role": {"enum": ["provider", "staff"]},
               "permissions": {"type": "array", "items": STR}, "practice": obj({"id": UUID, "name": STR}, ["id", "name"]),
               "stage": {"enum": ["second_factor", "enrollment", "signed_in"]}, "twoFactorEnabled": BOOL, "twoFactorRequired": BOOL, "recoveryCodesLeft": INT},
              ["id", "username", "firstName", "lastName", "email", "role", "permissions", "practice", "stage", "twoFactorEnabled", "twoFactorRequired", "recoveryCodesLeft"]),
    "TOTPEnrollment": obj({"factorId": UUID, "otpauthURI": STR, "secret": {"type": "string", "description": "Base32, for manual entry."}, "qrSVG": STR},
                          ["factorId", "otpauthURI", "secret", "qrSVG"]),
    "PushStarted": obj({"challengeId": UUID, "number": INT, "expiresAt": DATE}, ["challengeId", "number", "expiresAt"]),
    "PushEnrollment": obj({"factorId": UUID, "enrollmentURI": STR, "qrSVG": STR, "expiresAt": DATE}, ["factorId", "enrollmentURI", "qrSVG", "expiresAt"]),
    "PushChallenges": obj({"deviceId": UUID, "challenges": {"type": "array", "items": obj(
        {"id": UUID, "purpose": {"enum": ["sign_in", "step_up"]}, "summary": STR, "ip": STR, "browser": STR, "createdAt": DATE, "expiresAt": DATE},
        ["id", "purpose", "summary", "ip", "browser", "createdAt", "expiresAt"])}}, ["deviceId", "challenges"]),
    "StepUpCreated": obj({"challengeId": UUID, "methods": {"type": "array", "items": {"enum": ["totp", "push", "webauthn"]}}, "expiresAt": DATE, "url": STR,
                          "audience": {"type": "string", "description": "The `aud` of the assertion: the id of the API key that created the step-up."},
                          "attestation": {"type": "string", "description": "`epcs` only: the text the prescriber is shown (prescriptions, name, DEA number, the statement of 21 CFR 1311.140(a)(3))."},
                          "attestationHash": {"type": "string", "description": "`epcs` only: SHA-256 (hex) of `attestation`'s UTF-8 bytes."},
                          "factorsRequired": {"type": "array", "items": {"enum": ["password", "hard_token"]}, "description": "`epcs` only: both factors, at once."}},
                         ["challengeId", "methods", "expiresAt", "url", "audience"]),
    "StepUpAssertion": obj({"status": {"enum": ["pending", "expired", "cancelled", "completed"]}, "assertion": STR}, ["status"]),
    "SMSEnrollment": obj({"factorId": UUID, "sentTo": STR}, ["factorId", "sentTo"]),
    "Activation": obj({"factor": ref("Factor"), "recoveryCodes": {"type": "array", "items": STR},
                       "token": {"type": "string", "description": "Set when this enrollment finished a sign-in (enrollment stage): the session's new bearer token."}}, ["factor"]),
    "RecoveryCodes": obj({"recoveryCodes": {"type": "array", "items": STR}}, ["recoveryCodes"]),
    "Browser": obj({"id": UUID, "browser": STR, "createdAt": DATE, "lastUsedAt": DATE, "lastIP": STR, "expiresAt": DATE}, ["id", "browser", "lastIP", "expiresAt"]),
    "Practice": obj({"id": UUID, "name": STR, "mandatoryTwoFactor": BOOL, "rememberBrowserDays": INT, "inactivityMinutes": INT, "otpDigits": INT,
                     "allowSMS": BOOL, "allowTOTP": BOOL, "allowPush": BOOL, "allowPasskeys": BOOL,
                     "allowPasswordless": {"type": "boolean", "description": "Passkeys may sign in from the sign-in page without a password."},
                     "refuseClonedPasskeys": {"type": "boolean", "description": "Refuse a passkey whose signature counter went backwards (always audited)."},
                     "sessionLifetimeHours": {"type": "integer", "description": "Hours after sign-in at which every session ends, however busy (1 to 24)."},
                     "accessTokenMinutes": {"type": "integer", "description": "Lifetime of access tokens issued to the practice's applications (5 to 15 minutes)."},
                     "refreshTokenDays": {"type": "integer", "description": "Lifetime of refresh tokens (1 to 30 days); each use replaces the token."},
                     "resetRequiresSecondFactor": {"type": "boolean", "description": "A password reset by email also needs a current code from the user's second factor (or a recovery code), when they have one. On by default."},
                     "notificationCopyAddress": {"type": "string", "description": "Also receives security notifications of lockouts and administrators' actions on accounts; absent when not set."}},
                    ["id", "name", "mandatoryTwoFactor", "rememberBrowserDays", "inactivityMinutes", "otpDigits", "allowSMS", "allowTOTP", "allowPush",
                     "allowPasskeys", "allowPasswordless", "refuseClonedPasskeys", "sessionLifetimeHours", "accessTokenMinutes", "refreshTokenDays",
                     "resetRequiresSecondFactor"]),
    "Invitation": obj({"expiresAt": DATE, "sentCount": INT}, ["expiresAt", "sentCount"]),
    "UsersPage": obj({"users": {"type": "array", "items": obj({
        "id": UUID, "username": STR, "firstName": STR, "lastName": STR, "email": STR, "cellPhone": STR, "role": STR, "manageAccounts": BOOL,
        "primaryProviderId": UUID, "twoFactor": obj({"status": {"enum": ["active", "required", "inactive"]}, "factorKind": STR, "factorShortId": STR}, ["status"])},
        ["id", "username", "firstName", "lastName", "email", "role", "manageAccounts", "twoFactor"])}, "total": INT, "page": INT, "pageCount": INT},
        ["users", "total", "page", "pageCount"]),
    "AuditPage": obj({"events": {"type": "array", "items": obj({
        "seq": INT, "time": DATE, "event": STR, "actor": STR, "subject": STR, "ip": STR, "userAgent": STR,
        "details": {"type": "object", "additionalProperties": STR}}, ["seq", "time", "event", "ip", "userAgent", "details"])},
        "total": INT, "page": INT, "pageCount": INT}, ["events", "total", "page", "pageCount"]),
    "CreationOptions": obj({
        "rp": obj({"id": STR, "name": STR}, ["id", "name"]), "user": obj({"id": B64U, "name": STR, "displayName": STR}, ["id", "name", "displayName"]),
        "challenge": B64U, "pubKeyCredParams": {"type": "array", "items": obj({"type": {"const": "public-key"}, "alg": INT}, ["type", "alg"])},
        "timeout": INT, "excludeCredentials": {"type": "array", "items": ref("CredentialDescriptor")},
        "authenticatorSelection": obj({"residentKey": STR, "requireResidentKey": BOOL, "userVerification": STR}, ["residentKey", "requireResidentKey", "userVerification"]),
        "attestation": {"enum": ["none", "direct"]}, "extensions": {"type": "object"}},
        ["rp", "user", "challenge", "pubKeyCredParams", "timeout", "excludeCredentials", "authenticatorSelection", "attestation"]),
    "RequestOptions": obj({"challenge": B64U, "timeout": INT, "rpId": STR, "allowCredentials": {"type": "array", "items": ref("CredentialDescriptor")},
                           "userVerification": {"enum": ["required", "preferred"]}}, ["challenge", "timeout", "rpId", "allowCredentials", "userVerification"]),
    "CredentialDescriptor": obj({"type": {"const": "public-key"}, "id": B64U, "transports": {"type": "array", "items": STR}}, ["type", "id"]),
    "RegistrationCredential": {**obj({"id": B64U, "rawId": B64U, "type": {"const": "public-key"}, "authenticatorAttachment": NULLABLE_STR,
        "clientExtensionResults": {"type": "object"},
        "response": {**obj({"clientDataJSON": B64U, "attestationObject": B64U, "transports": {"type": "array", "items": STR}},
                           ["clientDataJSON", "attestationObject"]), "additionalProperties": True}},
        ["id", "rawId", "type", "response"]), "additionalProperties": True,
        "description": "RegistrationResponseJSON, as PublicKeyCredential.toJSON() produces it."},
    "AuthenticationCredential": {**obj({"id": B64U, "rawId": B64U, "type": {"const": "public-key"}, "authenticatorAttachment": NULLABLE_STR,
        "clientExtensionResults": {"type": "object"},
        "response": obj({"clientDataJSON": B64U, "authenticatorData": B64U, "signature": B64U, "userHandle": NULLABLE_STR},
                        ["clientDataJSON", "authenticatorData", "signature"])},
        ["id", "rawId", "type", "response"]), "additionalProperties": True,
        "description": "AuthenticationResponseJSON, as PublicKeyCredential.toJSON() produces it."},
    "Readiness": obj({"status": {"enum": ["ready", "unavailable"]}, "reason": STR}, ["status"]),
    "Application": obj({
        "clientId": STR, "name": STR, "type": {"enum": ["confidential", "public"]}, "enabled": BOOL,
        "redirectUris": {"type": "array", "items": STR}, "postLogoutRedirectUris": {"type": "array", "items": STR},
        "backchannelLogoutUri": STR, "startUrl": {"type": "string", "description": "The link on users' home page."},
        "idTokenAlg": ID_TOKEN_ALG, "allowOfflineAccess": {"type": "boolean", "description": "May receive refresh tokens (scope offline_access)."},
        "createdAt": DATE, "updatedAt": DATE,
        "clientSecret": {"type": "string", "description": "Only in the answer to a create, for a confidential client: shown this once."}},
        ["clientId", "name", "type", "enabled", "redirectUris", "postLogoutRedirectUris", "idTokenAlg", "allowOfflineAccess", "createdAt", "updatedAt"]),
}

schemas.update({
    "EPCSGrant": obj({
        "id": UUID, "userId": UUID, "username": STR, "name": STR,
        "status": {"enum": ["pending_approval", "active", "registration_expired", "refused", "revoked_awaiting_confirmation", "revoked"]},
        "deaNumber": STR, "deaExpiresOn": {"type": "string", "format": "date"}, "states": {"type": "array", "items": STR},
        "proofing": obj({"provider": STR, "date": STR, "level": STR, "reference": STR}, ["provider", "date", "level", "reference"]),
        "enteredBy": UUID, "enteredAt": DATE, "decidedBy": UUID, "decidedAt": DATE, "revokedBy": UUID, "revokedAt": DATE,
        "revocationReason": STR, "revocationConfirmedBy": UUID, "revocationConfirmedAt": DATE},
        ["id", "userId", "username", "name", "status", "deaNumber", "deaExpiresOn", "states", "proofing", "enteredBy", "enteredAt"]),
    "EPCSApprover": obj({"userId": UUID, "username": STR, "name": STR, "approver": BOOL, "deaRegistrant": BOOL},
                        ["userId", "username", "name", "approver", "deaRegistrant"]),
    "EPCSSettings": obj({"eligibleTokens": {"type": "array", "items": {"enum": ["push", "totp", "security_key"]}},
                         "securityKeyAAGUIDs": {"type": "array", "items": UUID}, "workingHoursStart": INT, "workingHoursEnd": INT},
                        ["eligibleTokens", "securityKeyAAGUIDs", "workingHoursStart", "workingHoursEnd"]),
    "EPCSAlert": obj({"id": UUID, "kind": STR, "subjectId": UUID, "message": STR, "createdAt": DATE}, ["id", "kind", "message", "createdAt"]),
    "LostDevice": obj({"factorId": UUID, "revokedGrant": {"type": "boolean", "description": "Whether an EPCS permission was revoked."}},
                      ["factorId", "revokedGrant"]),
})

# EPCS: the daily audit report and its review (21 CFR 1311.150), the prescriber's monthly log (21 CFR 1311.120(b)(27)).
DAY_PARAM = [{"name": "day", "in": "path", "required": True, "schema": {"type": "string", "format": "date"},
              "description": "A UTC day, YYYY-MM-DD, today or earlier (400 otherwise)."}]
paths.update({
    "/api/v1/practice/epcs/reports/{day}": {"get": op(
        "getEPCSReport", "EPCS: the daily audit report",
        ADMIN + " The practice's EPCS-relevant audit events of the day (every `epcs.*` event; EPCS step-ups; lockouts and factor "
        "removals of prescribers; audit integrity failures), each with `incident` set when it is a potential security incident "
        "(attempted unauthorized access, a failed audit integrity check, a grant approved outside the practice's working hours, "
        "three or more failed signings by one prescriber, a prescriber's lockout, a device reported lost); revocations still "
        "awaiting a second approver at the day's end; the result of verifying the whole audit log (as `twofold audit verify`); and "
        "the review, if an approver made one.",
        parameters=DAY_PARAM, ok=ref("EPCSReport"), errors=(400, 401, 403), tags=["EPCS"])},
    "/api/v1/practice/epcs/reports/{day}/review": {"post": op(
        "reviewEPCSReport", "EPCS: mark a daily report reviewed",
        ADMIN + EPCS_APPROVER + " " + ADMIN_PASSWORD + " Records the review with the number of potential incidents the report shows, "
        "audited as `epcs.report_reviewed`. A day is reviewed once (409 afterwards). Potential security incidents must be reported to "
        "the application provider and to DEA within one business day (21 CFR 1311.150(c)).",
        parameters=DAY_PARAM, body=obj({"note": {"type": "string", "maxLength": 2000}, "adminPassword": STR}, ["adminPassword"]),
        ok=ref("EPCSReport"), errors=(400, 401, 403, 409, 429), tags=["EPCS"])},
    "/api/v1/me/epcs/log": {"get": op(
        "myEPCSLog", "EPCS: my monthly log of signings",
        SIGNED_IN + " Every EPCS signing of the signed-in prescriber whose two factors were proven in the month (UTC): time, "
        "prescription summary, action hash, attestation hash, the factors (`amr`), the DEA number signed under, and the step-up status.",
        parameters=[{"name": "month", "in": "query", "required": False, "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                     "description": "YYYY-MM; the current month when absent (400 when malformed)."}],
        ok=ref("EPCSMonthlyLog"), errors=(400, 401), tags=["Account", "EPCS"])},
})
schemas.update({
    "EPCSReport": obj({
        "practiceId": UUID, "practiceName": STR, "day": {"type": "string", "format": "date"}, "generatedAt": DATE, "workingHours": STR,
        "events": {"type": "array", "items": obj({
            "seq": INT, "time": DATE, "type": STR, "actor": STR, "subject": STR, "details": {"type": "object", "additionalProperties": STR},
            "incident": {"type": "string", "description": "Why this event is a potential security incident."}},
            ["seq", "time", "type", "details"])},
        "incidents": {"type": "array", "items": obj({"reason": STR, "detail": STR, "seq": INT, "time": DATE, "subject": STR}, ["reason", "detail"])},
        "incidentCount": INT,
        "revocationsAwaitingConfirmation": {"type": "array", "items": obj(
            {"grant": STR, "username": STR, "revokedAt": DATE, "revokedBy": STR, "reason": STR}, ["grant", "username", "revokedAt", "revokedBy", "reason"])},
        "verification": obj({
            "intact": BOOL, "scope": {"const": "whole_log", "description": "The audit log is one chain: the whole log is verified."},
            "eventsChecked": INT, "checkpointsChecked": INT, "checkpointFile": STR, "problem": STR, "summary": STR, "verifiedAt": DATE},
            ["intact", "scope", "eventsChecked", "checkpointsChecked", "summary", "verifiedAt"]),
        "review": obj({"reviewedBy": STR, "reviewedAt": DATE, "note": STR, "incidents": INT}, ["reviewedBy", "reviewedAt", "note", "incidents"])},
        ["practiceId", "practiceName", "day", "generatedAt", "workingHours", "events", "incidents", "incidentCount", "revocationsAwaitingConfirmation"]),
    "EPCSMonthlyLog": obj({"month": STR, "signings": {"type": "array", "items": obj({
        "time": DATE, "summary": STR, "actionHash": STR, "attestationHash": STR, "factors": {"type": "array", "items": STR},
        "deaNumber": STR, "status": {"enum": ["verified", "completed"]}}, ["time", "summary", "actionHash", "factors", "status"])}},
        ["month", "signings"]),
})

document = {
    "openapi": "3.1.0",
    "info": {
        "title": "Twofold",
        "version": "0.1.0",
        "description": "Twofold is a self-hosted two-factor authentication server for medical practices. Sign-in is a state machine: "
                       "POST /api/v1/login checks the password and returns a bearer token whose session is at one of three stages — "
                       "`second_factor_required` (only /api/v1/login/verify, /sms and /recovery are open), `enrollment_required` "
                       "(only /api/v1/me and factor set-up are open) or `authenticated`. Errors are `{\"error\": true, \"reason\": \"…\"}`.",
    },
    "servers": [{"url": "/"}],
    "tags": [{"name": n} for n in ["Sign-in", "Account", "Administration", "EPCS", "Integration", "Step-up", "Push device", "Operations"]],
    "paths": paths,
    "components": {
        "schemas": schemas,
        "securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "description": "The token from POST /api/v1/login."},
            "metricsToken": {"type": "http", "scheme": "bearer", "description": "TWOFOLD_METRICS_TOKEN, when it is set."},
            "deviceSignature": {"type": "apiKey", "in": "header", "name": "X-Twofold-Signature",
                                "description": "A push device's signature of the request; see docs/push-protocol.md."},
            "apiKeyAuth": {"type": "http", "scheme": "bearer", "description": "A practice API key, tfk_…, from `twofold api-key create`."},
            "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "twofold_session",
                           "description": "The browser session; unsafe methods must also send X-CSRF-Token."},
        },
    },
}

text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
for target in [ROOT / "docs" / "openapi.json", ROOT / "Sources" / "TwofoldServer" / "Resources" / "openapi.json"]:
    target.write_text(text)
    print(f"wrote {target.relative_to(ROOT)}")
