"""Twofold as an OpenID Connect provider for the interop tests: the server with its issuer set, client
registration through the CLI, a user with an authenticator app, and sign-in by filling Twofold's own forms."""
import re
import time

import jwt
import requests

from conftest import PASSWORD, TOTP_PERIOD, Twofold, fresh_code

from .forms import Page, Redirected


def oidc_twofold(tmp_path, extra_env=None):
    """A Twofold whose issuer (TWOFOLD_PUBLIC_URL) is the address the tests reach it at."""
    server = Twofold(tmp_path, extra_env)
    server.issuer = server.base
    server.env["TWOFOLD_PUBLIC_URL"] = server.issuer
    return server


def discovery(server):
    response = requests.get(f"{server.issuer}/.well-known/openid-configuration", timeout=10)
    assert response.status_code == 200, f"discovery: {response.status_code} {response.text[:500]}"
    return response.json()


def register_client(server, practice, name, redirect_uris, post_logout_redirect_uris=(), backchannel_logout_uri=None,
                    public=False, id_token_alg=None, allow_refresh=False, start_url=None):
    """`twofold oidc-client create …`; returns (client_id, client_secret or None)."""
    args = ["oidc-client", "create", "--practice", practice, "--name", name]
    for uri in redirect_uris:
        args += ["--redirect-uri", uri]
    for uri in post_logout_redirect_uris:
        args += ["--post-logout-redirect-uri", uri]
    if backchannel_logout_uri:
        args += ["--backchannel-logout-uri", backchannel_logout_uri]
    if public:
        args += ["--public"]
    if id_token_alg:
        args += ["--id-token-alg", id_token_alg]
    if allow_refresh:
        args += ["--allow-refresh"]
    if start_url:
        args += ["--start-url", start_url]
    out = server.cli(*args).stdout
    client_id = re.search(r"^client_id: (\S+)$", out, re.M)
    assert client_id, f"no client_id line in:\n{out}"
    secret = re.search(r"^client_secret: (\S+)$", out, re.M)
    if public:
        assert secret is None, f"a public client has no secret:\n{out}"
        return client_id.group(1), None
    assert secret, f"no client_secret line in:\n{out}"
    assert len(secret.group(1)) >= 32, "a client secret carries at least 256 bits"
    return client_id.group(1), secret.group(1)


class Account:
    """A user with an authenticator app (enrolled over the JSON API); `code()` gives the next code to submit."""

    def __init__(self, server, username, secret, last_step):
        self.server = server
        self.username = username
        self.secret = secret
        self.last_step = last_step

    @classmethod
    def enroll(cls, server, username="dr.smith"):
        api = f"http://127.0.0.1:{server.port}/api/v1"
        login = requests.post(f"{api}/login", json={"username": username, "password": PASSWORD}, timeout=30).json()
        assert login["status"] == "authenticated", login
        auth = {"Authorization": f"Bearer {login['token']}"}
        started = requests.post(f"{api}/me/factors/totp", json={"password": PASSWORD}, headers=auth, timeout=30)
        assert started.status_code == 200, started.text
        body = started.json()
        code = fresh_code(body["secret"], step_offset=-1)
        activated = requests.post(f"{api}/me/factors/{body['factorId']}/activate", json={"code": code}, headers=auth, timeout=30)
        assert activated.status_code == 200, activated.text
        return cls(server, username, body["secret"], code.step)

    def code(self):
        """A code for a time step after the last one submitted: the current step, else the next one (inside the
        server's ±1 window), else it waits for a new step. Call it right before submitting."""
        current = int(time.time() // TOTP_PERIOD)
        code = fresh_code(self.secret, after_step=self.last_step, step_offset=0 if current > self.last_step else 1)
        self.last_step = code.step
        return code


def sign_in(agent, url, account, password=PASSWORD, expect_username=None):
    """Opens an authorization URL in `agent` and signs in with the password and an authenticator code, as a user
    would on Twofold's pages; returns what the agent ended at (Redirected to the client, or a Page)."""
    result = agent.open(url)
    if isinstance(result, Redirected):
        return result
    result = submit_password(agent, result, account, password, expect_username)
    if isinstance(result, Page) and "/login/two-factor" in result.url:
        result = submit_code(agent, result, account)
    return result


def submit_password(agent, page, account, password=PASSWORD, expect_username=None):
    assert "/login" in page.url, f"expected Twofold's sign-in page, got {page} {page.html[:1500]}"
    form = page.form_with("username", "password")
    assert "csrf" in form.names(), "the sign-in form carries a CSRF field"
    if expect_username is not None:
        assert form.inputs["username"].get("value", "") == expect_username, f"username field: {form.inputs['username']}"
    return agent.submit(page, form, username=account.username, password=password)


def submit_code(agent, page, account, remember=False):
    """Fills the authenticator code (and ticks "Don't ask again on this browser" when `remember`)."""
    assert "/login/two-factor" in page.url, f"expected the two-factor page, got {page} {page.html[:1500]}"
    form = next((f for f in page.forms if "code" in f.names() and not f.action.endswith("/sms")), None)
    assert form is not None, f"no code form on {page}: {page.forms}"
    extra = {}
    if remember:
        assert "remember" in form.names(), f"no remember checkbox in {form}"
        extra["remember"] = form.inputs["remember"].get("value", "on")
    return agent.submit(page, form, code=account.code(), **extra)


def sign_out_of_twofold(agent, server):
    """Twofold's own Sign out button on its home page."""
    home = agent.open(f"{server.base}/")
    assert isinstance(home, Page), home
    return agent.submit(home, home.form_with(button="sign-out"), button="sign-out")


def pyjwt_verify(token, server, audience, algorithms, **options):
    """Verifies a JWT against the provider's JWKS with PyJWT (independent of Authlib); returns (header, claims)."""
    jwks_client = jwt.PyJWKClient(discovery(server)["jwks_uri"], cache_keys=False)
    key = jwks_client.get_signing_key_from_jwt(token)
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, key.key, algorithms=algorithms, audience=audience, issuer=server.issuer, leeway=5,
                        options={"require": ["iss", "sub", "aud", "exp", "iat"], **options})
    return header, claims
