"""Twofold as an OpenID Connect provider, with independent relying parties: Authlib (discovery, code flow with PKCE,
id-token validation against the JWKS, userinfo, refresh, revocation, introspection), PyJWT as a second JOSE
library, and Apache httpd with mod_auth_openidc protecting a page that headless Chromium opens. oathtool computes
every code. The Apache relying party is configured only from Twofold's discovery document (Tests/e2e/oidc/apache.py)."""
import base64
import hashlib
import secrets
import time
import urllib.parse
import warnings

import jwt
import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import PASSWORD, free_port
from oidc import apache
from oidc.forms import Page, Redirected, UserAgent
from oidc.provider import (Account, discovery, oidc_twofold, pyjwt_verify, register_client, sign_in, sign_out_of_twofold, submit_code,
                           submit_password)
from test_browser_signin import click_through, shot, text

EHR_CALLBACK = "https://ehr.riverside-clinic.example/oidc/callback"
ALL_SCOPES = "openid profile email phone offline_access"
ACR_PASSWORD = "urn:twofold:acr:password"
ACR_2FA = "urn:twofold:acr:2fa"
ACR_PHISHING_RESISTANT = "urn:twofold:acr:phishing-resistant"
LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


@pytest.fixture
def provider(tmp_path):
    server = oidc_twofold(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def clinic(provider):
    """A running provider with a practice and dr.smith (password + authenticator app)."""
    provider.practice_name = "Riverside Family Medicine"
    provider.practice = provider.create_practice(provider.practice_name)
    provider.create_user(provider.practice)
    provider.start()
    provider.account = Account.enroll(provider)
    provider.metadata = discovery(provider)
    return provider


def authlib_id_token_claims(id_token, server, client_id, nonce, access_token=None):
    """Authlib's own OpenID Connect id-token validation (signature against the JWKS, iss, aud, azp, exp, iat,
    nonce, at_hash)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # authlib.jose is deprecated in favour of joserfc, still Authlib's OIDC client code
        from authlib.jose import JsonWebKey, jwt as authlib_jwt
        from authlib.oidc.core import CodeIDToken
        jwks = requests.get(server.metadata["jwks_uri"], timeout=10).json()
        claims = authlib_jwt.decode(
            id_token, JsonWebKey.import_key_set(jwks), claims_cls=CodeIDToken,
            claims_options={"iss": {"essential": True, "value": server.issuer}, "aud": {"essential": True, "value": client_id},
                            "sub": {"essential": True}, "nonce": {"essential": True}},
            claims_params={"nonce": nonce, "client_id": client_id, **({"access_token": access_token} if access_token else {})})
        claims.validate(leeway=5)
    return dict(claims)


def authorization_request(client, server, nonce, verifier, **extra):
    url, state = client.create_authorization_url(server.metadata["authorization_endpoint"], nonce=nonce, code_verifier=verifier, **extra)
    return url, state


def assert_authorization_response(result, redirect_uri, state, issuer):
    assert isinstance(result, Redirected), f"expected a redirect to {redirect_uri}, got {result}: {getattr(result, 'html', '')[:2000]}"
    assert result.base == redirect_uri
    assert "error" not in result.params, result.params
    assert result.params.get("state") == state
    assert result.params.get("iss") == issuer, "RFC 9207: the authorization response names the issuer"
    assert result.params.get("code")
    return result.params["code"]


def token_error(response):
    try:
        return response.json().get("error")
    except ValueError:
        return None


def post_token(server, data, auth=None):
    return requests.post(server.metadata["token_endpoint"], data=data, auth=auth, timeout=30)


def assert_user_claims(claims, server, sub=None):
    assert claims["name"] == "Sam Smith"
    assert claims["given_name"] == "Sam" and claims["family_name"] == "Smith"
    assert claims["preferred_username"] == "dr.smith"
    assert claims["email"] == "dr.smith@example.org"
    assert claims["phone_number"] == "+15551234567"
    assert claims["practice"]["id"].lower() == server.practice.lower() and claims["practice"]["name"] == server.practice_name
    assert isinstance(claims["roles"], list) and "provider" in claims["roles"]
    if sub is not None:
        assert claims["sub"] == sub


# MARK: discovery

def test_discovery_document_and_jwks(clinic):
    meta = clinic.metadata
    issuer = clinic.issuer
    assert meta["issuer"] == issuer
    # The issuer is TWOFOLD_PUBLIC_URL, whatever address the request came in on.
    assert requests.get(f"http://127.0.0.1:{clinic.port}/.well-known/openid-configuration", timeout=10).json()["issuer"] == issuer
    for key, path in [("authorization_endpoint", "/oidc/authorize"), ("token_endpoint", "/oidc/token"),
                      ("userinfo_endpoint", "/oidc/userinfo"), ("revocation_endpoint", "/oidc/revoke"),
                      ("introspection_endpoint", "/oidc/introspect"), ("end_session_endpoint", "/oidc/logout"),
                      ("jwks_uri", "/.well-known/jwks.json")]:
        assert meta[key] == issuer + path, key
    assert meta["response_types_supported"] == ["code"]
    assert set(meta.get("response_modes_supported", ["query"])) <= {"query"}
    assert "authorization_code" in meta["grant_types_supported"] and "refresh_token" in meta["grant_types_supported"]
    assert not {"implicit", "password"} & set(meta["grant_types_supported"])
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "public" in meta["subject_types_supported"]
    assert {"RS256", "ES256"} <= set(meta["id_token_signing_alg_values_supported"])
    assert "none" not in meta["id_token_signing_alg_values_supported"]
    assert {"client_secret_basic", "client_secret_post", "none"} <= set(meta["token_endpoint_auth_methods_supported"])
    assert set(ALL_SCOPES.split()) <= set(meta["scopes_supported"])
    assert {"sub", "iss", "auth_time", "acr", "amr", "sid", "name", "given_name", "family_name", "preferred_username", "email",
            "phone_number", "practice", "roles"} <= set(meta["claims_supported"])
    assert {ACR_PASSWORD, ACR_2FA, ACR_PHISHING_RESISTANT} <= set(meta["acr_values_supported"])
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["backchannel_logout_supported"] is True and meta["backchannel_logout_session_supported"] is True
    if "prompt_values_supported" in meta:
        assert {"none", "login"} <= set(meta["prompt_values_supported"])

    jwks = requests.get(meta["jwks_uri"], timeout=10)
    assert jwks.status_code == 200 and "json" in jwks.headers.get("Content-Type", "")
    keys = jwks.json()["keys"]
    kinds = {(key["kty"], key.get("alg")) for key in keys}
    assert ("RSA", "RS256") in kinds and ("EC", "ES256") in kinds, kinds
    for key in keys:
        assert key.get("kid") and key.get("use", "sig") == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key), "the JWKS publishes public keys only"
        if key["kty"] == "RSA":
            modulus = base64.urlsafe_b64decode(key["n"] + "=" * (-len(key["n"]) % 4))
            assert len(modulus) * 8 >= 2048
        else:
            assert key["crv"] == "P-256"
    assert len({key["kid"] for key in keys}) == len(keys)


# MARK: Authlib, confidential client

def test_authlib_confidential_client_code_flow_refresh_revocation_and_introspection(clinic):
    server, account = clinic, clinic.account
    meta = server.metadata
    client_id, client_secret = register_client(server, server.practice, "Riverside EHR", [EHR_CALLBACK], allow_refresh=True,
                                               start_url="https://ehr.riverside-clinic.example/")
    listed = server.cli("oidc-client", "list", "--practice", server.practice).stdout
    assert client_id in listed and "Riverside EHR" in listed and client_secret not in listed

    client = OAuth2Session(client_id, client_secret, scope=ALL_SCOPES, redirect_uri=EHR_CALLBACK, code_challenge_method="S256",
                           token_endpoint_auth_method="client_secret_basic")
    nonce, verifier = generate_token(24), generate_token(48)
    url, state = authorization_request(client, server, nonce, verifier, login_hint="dr.smith")
    assert "code_challenge=" in url and "code_challenge_method=S256" in url

    # The browser part: Twofold's own sign-in pages, username prefilled from login_hint, then password and code.
    agent = UserAgent(stop_at=[EHR_CALLBACK])
    page = agent.open(url)
    assert isinstance(page, Page) and urllib.parse.urlsplit(page.url).path == "/login", page
    started = time.time()
    after_password = submit_password(agent, page, account, expect_username="dr.smith")
    assert isinstance(after_password, Page) and "/login/two-factor" in after_password.url, after_password
    callback = submit_code(agent, after_password, account)
    code = assert_authorization_response(callback, EHR_CALLBACK, state, server.issuer)

    token = client.fetch_token(meta["token_endpoint"], authorization_response=callback.url, state=state, code_verifier=verifier)
    assert token["token_type"].lower() == "bearer"
    assert 300 <= token["expires_in"] <= 900, "access tokens live 5–15 minutes"
    assert set(token["scope"].split()) == set(ALL_SCOPES.split())
    assert token.get("refresh_token"), "offline_access with a client that allows refresh tokens"
    access, refresh, id_token = token["access_token"], token["refresh_token"], token["id_token"]

    # The id token, validated by Authlib and by PyJWT.
    claims = authlib_id_token_claims(id_token, server, client_id, nonce, access_token=access)
    header, pyjwt_claims = pyjwt_verify(id_token, server, client_id, ["RS256"])
    assert pyjwt_claims == claims
    assert header["alg"] == "RS256" and header.get("kid")
    sub = claims["sub"]
    assert sub and "dr.smith" not in sub, "sub is stable and not the username"
    assert claims["nonce"] == nonce
    assert claims["acr"] == ACR_2FA
    assert {"pwd", "otp", "mfa"} <= set(claims["amr"]), claims["amr"]
    assert started - 5 <= claims["auth_time"] <= time.time() + 5
    assert claims["exp"] - claims["iat"] <= 300, "id tokens live 5 minutes"
    assert claims["sid"]
    assert_user_claims(claims, server, sub)

    # The access token is a JWT in the RFC 9068 profile.
    access_header = jwt.get_unverified_header(access)
    assert access_header["typ"].lower() in ("at+jwt", "application/at+jwt")
    _, access_claims = pyjwt_verify(access, server, None, [access_header["alg"]], verify_aud=False, require=["iss", "sub", "exp", "iat", "jti"])
    assert access_claims["sub"] == sub and access_claims["client_id"] == client_id and access_claims["jti"]
    assert 300 <= access_claims["exp"] - access_claims["iat"] <= 900

    # userinfo answers the same claims for the access token, and refuses without one.
    userinfo = client.get(meta["userinfo_endpoint"])
    assert userinfo.status_code == 200, userinfo.text
    assert_user_claims(userinfo.json(), server, sub)
    anonymous = requests.get(meta["userinfo_endpoint"], timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers.get("WWW-Authenticate", "").startswith("Bearer")

    # Introspection (RFC 7662), authenticated as the client.
    introspected = client.introspect_token(meta["introspection_endpoint"], token=access, token_type_hint="access_token")
    assert introspected.status_code == 200, introspected.text
    body = introspected.json()
    assert body["active"] is True and body["sub"] == sub and body["client_id"] == client_id
    unauthenticated = requests.post(meta["introspection_endpoint"], data={"token": access}, timeout=10)
    assert unauthenticated.status_code == 401, "introspection needs client authentication"

    # A wrong client secret is invalid_client (RFC 6749 §5.2), answered with 401.
    wrong_secret = post_token(server, {"grant_type": "refresh_token", "refresh_token": refresh}, auth=(client_id, "not-the-secret"))
    assert wrong_secret.status_code == 401 and token_error(wrong_secret) == "invalid_client"

    # Refresh tokens rotate on every use.
    refreshed = client.refresh_token(meta["token_endpoint"], refresh_token=refresh)
    refresh2, access2 = refreshed["refresh_token"], refreshed["access_token"]
    assert refresh2 != refresh and access2 != access
    if "id_token" in refreshed:  # OIDC Core §12.2: same iss, sub, aud, auth_time; no nonce requirement
        again = pyjwt_verify(refreshed["id_token"], server, client_id, ["RS256"])[1]
        assert again["sub"] == sub and again["auth_time"] == claims["auth_time"]
    assert requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {access2}"}, timeout=10).status_code == 200

    # Reusing the old refresh token is refused and revokes the whole family, the new refresh token too.
    reused = post_token(server, {"grant_type": "refresh_token", "refresh_token": refresh}, auth=(client_id, client_secret))
    assert reused.status_code == 400 and token_error(reused) == "invalid_grant", reused.text
    after_reuse = post_token(server, {"grant_type": "refresh_token", "refresh_token": refresh2}, auth=(client_id, client_secret))
    assert after_reuse.status_code == 400 and token_error(after_reuse) == "invalid_grant", after_reuse.text
    assert client.introspect_token(meta["introspection_endpoint"], token=refresh2).json()["active"] is False

    # The first code cannot be exchanged again.
    replayed = post_token(server, {"grant_type": "authorization_code", "code": code, "redirect_uri": EHR_CALLBACK, "code_verifier": verifier},
                          auth=(client_id, client_secret))
    assert replayed.status_code == 400 and token_error(replayed) == "invalid_grant", replayed.text

    # Single sign-on: the same browser asks again and gets a code without a password; this time the client
    # authenticates with client_secret_post.
    post_client = OAuth2Session(client_id, client_secret, scope=ALL_SCOPES, redirect_uri=EHR_CALLBACK, code_challenge_method="S256",
                                token_endpoint_auth_method="client_secret_post", revocation_endpoint_auth_method="client_secret_post")
    nonce2, verifier2 = generate_token(24), generate_token(48)
    url2, state2 = authorization_request(post_client, server, nonce2, verifier2)
    callback2 = agent.open(url2)
    assert_authorization_response(callback2, EHR_CALLBACK, state2, server.issuer)
    token2 = post_client.fetch_token(meta["token_endpoint"], authorization_response=callback2.url, state=state2, code_verifier=verifier2)
    claims2 = authlib_id_token_claims(token2["id_token"], server, client_id, nonce2, access_token=token2["access_token"])
    assert claims2["sub"] == sub and claims2["sid"] == claims["sid"] and claims2["auth_time"] == claims["auth_time"]

    # Revocation (RFC 7009): the access token, then the refresh token; introspection says inactive.
    revoked = post_client.revoke_token(meta["revocation_endpoint"], token=token2["access_token"], token_type_hint="access_token")
    assert revoked.status_code == 200, revoked.text
    assert client.introspect_token(meta["introspection_endpoint"], token=token2["access_token"]).json() == {"active": False}
    assert requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {token2['access_token']}"}, timeout=10).status_code == 401
    assert client.introspect_token(meta["introspection_endpoint"], token=token2["refresh_token"]).json()["active"] is True
    revoked = post_client.revoke_token(meta["revocation_endpoint"], token=token2["refresh_token"], token_type_hint="refresh_token")
    assert revoked.status_code == 200, revoked.text
    assert client.introspect_token(meta["introspection_endpoint"], token=token2["refresh_token"]).json() == {"active": False}
    gone = post_token(server, {"grant_type": "refresh_token", "refresh_token": token2["refresh_token"]}, auth=(client_id, client_secret))
    assert gone.status_code == 400 and token_error(gone) == "invalid_grant"
    # Revoking an unknown token is not an error (RFC 7009 §2.2).
    assert post_client.revoke_token(meta["revocation_endpoint"], token="no-such-token").status_code == 200


# MARK: public client, ES256

def test_public_client_uses_pkce_without_a_secret(clinic):
    server, account = clinic, clinic.account
    meta = server.metadata
    callback_uri = f"http://127.0.0.1:{free_port()}/callback"
    client_id, _ = register_client(server, server.practice, "Riverside tablet app", [callback_uri], public=True)
    client = OAuth2Session(client_id, None, scope="openid profile", redirect_uri=callback_uri, code_challenge_method="S256",
                           token_endpoint_auth_method="none")
    agent = UserAgent(stop_at=[callback_uri])

    # Without PKCE the request is refused, back at the (registered) redirect URI.
    no_pkce = OAuth2Session(client_id, None, scope="openid profile", redirect_uri=callback_uri)
    url, state = no_pkce.create_authorization_url(meta["authorization_endpoint"], nonce=generate_token(24))
    refused = agent.open(url)
    assert isinstance(refused, Redirected) and refused.base == callback_uri, refused
    assert refused.params.get("error") == "invalid_request" and refused.params.get("state") == state
    assert refused.params.get("iss") == server.issuer and "code" not in refused.params
    # plain is not offered
    plain_url = url + "&code_challenge=" + "a" * 43 + "&code_challenge_method=plain"
    plain = agent.open(plain_url)
    assert isinstance(plain, Redirected) and plain.params.get("error") == "invalid_request", plain

    # A wrong code_verifier is invalid_grant.
    nonce, verifier = generate_token(24), generate_token(48)
    url, state = authorization_request(client, server, nonce, verifier)
    callback = sign_in(agent, url, account)
    code = assert_authorization_response(callback, callback_uri, state, server.issuer)
    wrong = post_token(server, {"grant_type": "authorization_code", "code": code, "redirect_uri": callback_uri, "client_id": client_id,
                                "code_verifier": generate_token(48)})
    assert wrong.status_code == 400 and token_error(wrong) == "invalid_grant", wrong.text

    # The right verifier, no secret (single sign-on: no password this time).
    nonce, verifier = generate_token(24), generate_token(48)
    url, state = authorization_request(client, server, nonce, verifier)
    callback = agent.open(url)
    assert_authorization_response(callback, callback_uri, state, server.issuer)
    token = client.fetch_token(meta["token_endpoint"], authorization_response=callback.url, state=state, code_verifier=verifier)
    assert "refresh_token" not in token, "no refresh token without offline_access and --allow-refresh"
    claims = authlib_id_token_claims(token["id_token"], server, client_id, nonce, access_token=token["access_token"])
    assert pyjwt_verify(token["id_token"], server, client_id, ["RS256"])[1]["sub"] == claims["sub"]
    assert claims["preferred_username"] == "dr.smith" and "email" not in claims, "only the scopes asked for"
    assert client.get(meta["userinfo_endpoint"]).json()["sub"] == claims["sub"]

    # A public client asking for offline_access gets no refresh token either.
    nonce, verifier = generate_token(24), generate_token(48)
    url, state = authorization_request(client, server, nonce, verifier, scope="openid offline_access")
    callback = agent.open(url)
    assert isinstance(callback, Redirected) and callback.base == callback_uri
    if "code" in callback.params:
        token = client.fetch_token(meta["token_endpoint"], authorization_response=callback.url, state=state, code_verifier=verifier)
        assert "refresh_token" not in token
    else:
        assert callback.params.get("error") in ("invalid_scope", "access_denied"), callback.params


def test_es256_client_gets_es256_id_tokens(clinic):
    server, account = clinic, clinic.account
    meta = server.metadata
    client_id, client_secret = register_client(server, server.practice, "Riverside e-prescribing", [EHR_CALLBACK], id_token_alg="ES256")
    client = OAuth2Session(client_id, client_secret, scope="openid profile email", redirect_uri=EHR_CALLBACK, code_challenge_method="S256",
                           token_endpoint_auth_method="client_secret_post")
    nonce, verifier = generate_token(24), generate_token(48)
    url, state = authorization_request(client, server, nonce, verifier)
    callback = sign_in(UserAgent(stop_at=[EHR_CALLBACK]), url, account)
    assert_authorization_response(callback, EHR_CALLBACK, state, server.issuer)
    token = client.fetch_token(meta["token_endpoint"], authorization_response=callback.url, state=state, code_verifier=verifier)
    header = jwt.get_unverified_header(token["id_token"])
    assert header["alg"] == "ES256"
    jwks = requests.get(meta["jwks_uri"], timeout=10).json()["keys"]
    key = next(k for k in jwks if k["kid"] == header["kid"])
    assert key["kty"] == "EC" and key["crv"] == "P-256"
    claims = authlib_id_token_claims(token["id_token"], server, client_id, nonce, access_token=token["access_token"])
    _, pyjwt_claims = pyjwt_verify(token["id_token"], server, client_id, ["ES256"])
    assert pyjwt_claims == claims and claims["acr"] == ACR_2FA
    with pytest.raises(jwt.InvalidAlgorithmError):
        pyjwt_verify(token["id_token"], server, client_id, ["RS256"])
    assert jwt.get_unverified_header(token["access_token"])["alg"] == "ES256"

    # A replayed code is refused, and every token issued from it stops working (RFC 6749 §4.1.2).
    assert client.introspect_token(meta["introspection_endpoint"], token=token["access_token"]).json()["active"] is True
    replayed = post_token(server, {"grant_type": "authorization_code", "code": callback.params["code"], "redirect_uri": EHR_CALLBACK,
                                   "code_verifier": verifier, "client_id": client_id, "client_secret": client_secret})
    assert replayed.status_code == 400 and token_error(replayed) == "invalid_grant", replayed.text
    assert client.introspect_token(meta["introspection_endpoint"], token=token["access_token"]).json() == {"active": False}
    assert requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10).status_code == 401


# MARK: refusals

def test_unregistered_redirect_uri_or_unknown_client_shows_an_error_page(clinic):
    server = clinic
    meta = server.metadata
    client_id, _ = register_client(server, server.practice, "Riverside EHR", [EHR_CALLBACK])
    challenge = base64.urlsafe_b64encode(hashlib.sha256(b"v" * 48).digest()).rstrip(b"=").decode()

    def authorize(**params):
        query = {"response_type": "code", "client_id": client_id, "redirect_uri": EHR_CALLBACK, "scope": "openid", "state": "s-1",
                 "nonce": "n-1", "code_challenge": challenge, "code_challenge_method": "S256", **params}
        return requests.get(meta["authorization_endpoint"], params={k: v for k, v in query.items() if v is not None},
                            allow_redirects=False, timeout=10)

    for label, params in [("other host", {"redirect_uri": "https://attacker.example/oidc/callback"}),
                          ("longer path", {"redirect_uri": EHR_CALLBACK + "/more"}),
                          ("extra query", {"redirect_uri": EHR_CALLBACK + "?next=/admin"}),
                          ("trailing slash", {"redirect_uri": EHR_CALLBACK + "/"}),
                          ("other scheme", {"redirect_uri": EHR_CALLBACK.replace("https:", "http:")}),
                          ("unknown client", {"client_id": "tf-no-such-client"}),
                          ("no client", {"client_id": None})]:
        response = authorize(**params)
        assert 400 <= response.status_code < 500, f"{label}: {response.status_code} {response.headers.get('Location')}"
        assert "Location" not in response.headers, f"{label}: never redirects"
        assert "text/html" in response.headers.get("Content-Type", ""), label
        assert "attacker.example" not in response.text
    # The registered URI itself works (and an unsupported response type goes back to it as an error).
    assert authorize().status_code in (302, 303)
    implicit = authorize(response_type="token")
    location = implicit.headers.get("Location", "")
    assert implicit.status_code in (302, 303) and location.startswith(EHR_CALLBACK + "?"), location
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["error"] == "unsupported_response_type"
    # Without redirect_uri (required by OpenID Connect): an error page, or the error at the only registered URI.
    missing = authorize(redirect_uri=None)
    if missing.is_redirect:
        assert missing.headers["Location"].startswith(EHR_CALLBACK + "?") and "error=invalid_request" in missing.headers["Location"]
    else:
        assert 400 <= missing.status_code < 500 and "text/html" in missing.headers.get("Content-Type", "")
    # nonce is required
    no_nonce = authorize(nonce=None)
    location = no_nonce.headers.get("Location", "")
    assert location.startswith(EHR_CALLBACK + "?") and "error=invalid_request" in location, location


def test_a_user_of_another_practice_is_refused(clinic):
    server = clinic
    other = server.create_practice("Lakeside Pediatrics")
    server.create_user(other, username="nurse.kim", cell=None)
    client_id, client_secret = register_client(server, server.practice, "Riverside EHR", [EHR_CALLBACK])
    client = OAuth2Session(client_id, client_secret, scope="openid", redirect_uri=EHR_CALLBACK, code_challenge_method="S256")
    url, state = authorization_request(client, server, generate_token(24), generate_token(48))
    agent = UserAgent(stop_at=[EHR_CALLBACK])
    result = submit_password(agent, agent.open(url), Account(server, "nurse.kim", None, None))
    assert isinstance(result, Redirected) and result.base == EHR_CALLBACK, result
    assert result.params.get("error") == "access_denied" and result.params.get("state") == state and "code" not in result.params
    assert result.params.get("iss") == server.issuer


def test_prompt_none_without_a_session_is_login_required(clinic):
    server, account = clinic, clinic.account
    meta = server.metadata
    client_id, client_secret = register_client(server, server.practice, "Riverside portal", [EHR_CALLBACK])
    client = OAuth2Session(client_id, client_secret, scope="openid", redirect_uri=EHR_CALLBACK, code_challenge_method="S256")
    agent = UserAgent(stop_at=[EHR_CALLBACK])

    url, state = authorization_request(client, server, generate_token(24), generate_token(48), prompt="none")
    result = agent.open(url)
    assert isinstance(result, Redirected), f"prompt=none shows no page: {result}"
    assert result.base == EHR_CALLBACK
    assert result.params.get("error") == "login_required" and result.params.get("state") == state
    assert result.params.get("iss") == server.issuer and "code" not in result.params

    # Signed in, prompt=none answers with a code and no page.
    url, state = authorization_request(client, server, generate_token(24), generate_token(48))
    assert_authorization_response(sign_in(agent, url, account), EHR_CALLBACK, state, server.issuer)
    nonce, verifier = generate_token(24), generate_token(48)
    url, state = authorization_request(client, server, nonce, verifier, prompt="none")
    result = agent.open(url)
    assert_authorization_response(result, EHR_CALLBACK, state, server.issuer)
    token = client.fetch_token(meta["token_endpoint"], authorization_response=result.url, state=state, code_verifier=verifier)
    assert authlib_id_token_claims(token["id_token"], server, client_id, nonce)["acr"] == ACR_2FA


def test_step_up_with_acr_values_in_a_remembered_browser_and_prompt_login(clinic):
    server, account = clinic, clinic.account
    meta = server.metadata
    client_id, client_secret = register_client(server, server.practice, "Riverside EHR", [EHR_CALLBACK])
    client = OAuth2Session(client_id, client_secret, scope="openid profile", redirect_uri=EHR_CALLBACK, code_challenge_method="S256")
    agent = UserAgent(stop_at=[EHR_CALLBACK])

    def exchange(result, state, nonce, verifier):
        assert_authorization_response(result, EHR_CALLBACK, state, server.issuer)
        token = client.fetch_token(meta["token_endpoint"], authorization_response=result.url, state=state, code_verifier=verifier)
        return authlib_id_token_claims(token["id_token"], server, client_id, nonce)

    # Password and code, with "don't ask again on this browser"; then sign out of Twofold.
    nonce, verifier = generate_token(24), generate_token(48)
    url, state = authorization_request(client, server, nonce, verifier)
    page = submit_password(agent, agent.open(url), account)
    first = exchange(submit_code(agent, page, account, remember=True), state, nonce, verifier)
    assert first["acr"] == ACR_2FA
    sign_out_of_twofold(agent, server)

    # The remembered browser skips the code, and the id token says so: no otp, the password level.
    nonce, verifier = generate_token(24), generate_token(48)
    url, state = authorization_request(client, server, nonce, verifier)
    remembered = exchange(submit_password(agent, agent.open(url), account), state, nonce, verifier)
    assert remembered["amr"] == ["pwd"] and remembered["acr"] == ACR_PASSWORD, (remembered["amr"], remembered["acr"])
    time.sleep(1.1)  # auth_time has a resolution of one second

    # acr_values asking for two factors: a fresh code inside the remembered browser's session, no password.
    nonce, verifier = generate_token(24), generate_token(48)
    url, state = authorization_request(client, server, nonce, verifier, acr_values=ACR_2FA)
    page = agent.open(url)
    assert isinstance(page, Page) and "/login/two-factor" in page.url, f"acr_values={ACR_2FA} asks for a fresh code: {page}"
    stepped = exchange(submit_code(agent, page, account), state, nonce, verifier)
    assert stepped["acr"] == ACR_2FA and "otp" in stepped["amr"] and "mfa" in stepped["amr"]
    assert stepped["sub"] == first["sub"] and stepped["auth_time"] >= remembered["auth_time"]

    # Now the session is at two factors: with max_age the application accepts that recent proof, and prompt=none
    # with acr_values=2fa answers at once; without max_age a step-up always asks again, so prompt=none cannot.
    nonce, verifier = generate_token(24), generate_token(48)
    url, state = authorization_request(client, server, nonce, verifier, acr_values=ACR_2FA, prompt="none", max_age="600")
    assert exchange(agent.open(url), state, nonce, verifier)["acr"] == ACR_2FA
    nonce, verifier = generate_token(24), generate_token(48)
    url, state = authorization_request(client, server, nonce, verifier, acr_values=ACR_2FA, prompt="none")
    silent = agent.open(url)
    assert isinstance(silent, Redirected) and silent.params.get("error") == "interaction_required", silent
    time.sleep(1.1)

    # prompt=login: the password again (the remembered browser still skips the code).
    nonce, verifier = generate_token(24), generate_token(48)
    url, state = authorization_request(client, server, nonce, verifier, prompt="login", login_hint="dr.smith")
    page = agent.open(url)
    assert isinstance(page, Page) and urllib.parse.urlsplit(page.url).path == "/login", f"prompt=login asks for the password: {page}"
    result = submit_password(agent, page, account, expect_username="dr.smith")
    if isinstance(result, Page) and "/login/two-factor" in result.url:
        result = submit_code(agent, result, account)
    again = exchange(result, state, nonce, verifier)
    assert again["auth_time"] > stepped["auth_time"] and "pwd" in again["amr"]

    # Phishing-resistant factors from a user without a passkey: never a weaker acr; prompt=none shows no page.
    nonce, verifier = generate_token(24), generate_token(48)
    url, state = authorization_request(client, server, nonce, verifier, acr_values=ACR_PHISHING_RESISTANT, prompt="none")
    result = agent.open(url)
    assert isinstance(result, Redirected) and result.params.get("error") == "interaction_required", result
    assert result.params.get("state") == state and "code" not in result.params


# MARK: logout

class BackchannelReceiver:
    """A relying party's back-channel logout endpoint on loopback: records every POST and answers 200."""

    def __init__(self):
        import http.server
        import threading
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                received.append((self.path, self.headers.get("Content-Type", ""), dict(urllib.parse.parse_qsl(body))))
                self.send_response(200)
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/oidc/backchannel-logout"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backchannel():
    receiver = BackchannelReceiver()
    yield receiver
    receiver.close()


def test_rp_initiated_logout_confirms_and_sends_a_backchannel_logout_token(clinic, backchannel):
    server, account = clinic, clinic.account
    meta = server.metadata
    signed_out = "https://ehr.riverside-clinic.example/signed-out"
    attacker = "https://attacker.example/phish"
    client_id, client_secret = register_client(server, server.practice, "Riverside EHR", [EHR_CALLBACK], post_logout_redirect_uris=[signed_out],
                                               backchannel_logout_uri=backchannel.uri)
    client = OAuth2Session(client_id, client_secret, scope="openid profile", redirect_uri=EHR_CALLBACK, code_challenge_method="S256")
    agent = UserAgent(stop_at=[EHR_CALLBACK, signed_out, attacker])
    nonce, verifier = generate_token(24), generate_token(48)
    url, state = authorization_request(client, server, nonce, verifier)
    callback = sign_in(agent, url, account)
    assert_authorization_response(callback, EHR_CALLBACK, state, server.issuer)
    token = client.fetch_token(meta["token_endpoint"], authorization_response=callback.url, state=state, code_verifier=verifier)
    claims = authlib_id_token_claims(token["id_token"], server, client_id, nonce)

    def logout_url(post_logout, logout_state):
        return meta["end_session_endpoint"] + "?" + urllib.parse.urlencode(
            {"id_token_hint": token["id_token"], "post_logout_redirect_uri": post_logout, "state": logout_state})

    # An unregistered post_logout_redirect_uri: an error page, no redirect, still signed in.
    refused = agent.open(logout_url(attacker, "x"))
    assert isinstance(refused, Page) and 400 <= refused.status < 500, refused
    assert not backchannel.received
    url, state = authorization_request(client, server, generate_token(24), generate_token(48), prompt="none")
    assert_authorization_response(agent.open(url), EHR_CALLBACK, state, server.issuer)

    # The registered one: a confirmation page first; nothing happens until the user confirms.
    logout_state = secrets.token_urlsafe(12)
    page = agent.open(logout_url(signed_out, logout_state))
    assert isinstance(page, Page) and page.status == 200 and "confirm-sign-out" in page.ids, page
    assert not backchannel.received, "no logout before the user confirms"
    done = agent.submit(page, page.form_with(button="confirm-sign-out"), button="confirm-sign-out")
    assert isinstance(done, Redirected) and done.base == signed_out, done
    assert done.params == {"state": logout_state}

    # The back-channel logout token (Back-Channel Logout 1.0 §2.4), checked with PyJWT.
    assert len(backchannel.received) == 1, backchannel.received
    path, content_type, form = backchannel.received[0]
    assert path == urllib.parse.urlsplit(backchannel.uri).path
    assert content_type.startswith("application/x-www-form-urlencoded") and set(form) == {"logout_token"}
    header, logout = pyjwt_verify(form["logout_token"], server, client_id, [jwt.get_unverified_header(token["id_token"])["alg"]],
                                  require=["iss", "aud", "iat", "jti", "events"])
    assert header["typ"] == "logout+jwt"
    assert logout["sub"] == claims["sub"] and logout["sid"] == claims["sid"]
    assert logout["events"] == {LOGOUT_EVENT: {}}
    assert "nonce" not in logout and logout["jti"]

    # The session is over: the access token stops working and the next authorization asks for the password.
    assert requests.get(meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=10).status_code == 401
    url, state = authorization_request(client, server, generate_token(24), generate_token(48))
    page = agent.open(url)
    assert isinstance(page, Page) and urllib.parse.urlsplit(page.url).path == "/login", page


# MARK: Apache with mod_auth_openidc, in Chromium

@pytest.fixture
def relying_party(provider, artifacts):
    reason = apache.missing()
    if reason:
        pytest.skip(reason)
    rp = apache.ApacheRelyingParty(free_port())
    yield rp
    rp.stop()
    # Shown by pytest when the test failed; kept beside the screenshots either way.
    twofold_log = provider.log_path.read_text(errors="replace").splitlines()[-150:] if provider.log_path.exists() else []
    logs = f"--- Apache access log\n{rp.access_log()}\n--- Apache error log\n{rp.logs()}\n--- Twofold log (end)\n" + "\n".join(twofold_log)
    (artifacts / "apache.log").write_text(logs)
    print(logs)
    rp.cleanup()


def claims_on_page(browser):
    rows = browser.find_elements(By.CSS_SELECTOR, "#claims tr")
    return {row.find_element(By.TAG_NAME, "th").text: row.find_element(By.TAG_NAME, "td").text for row in rows}


def wait_for_url(browser, prefix, timeout=20):
    try:
        WebDriverWait(browser, timeout, poll_frequency=0.1).until(lambda d: d.current_url.startswith(prefix) and
                                                                  d.execute_script("return document.readyState") == "complete")
    except Exception:
        raise AssertionError(f"expected {prefix}…, the browser is at {browser.current_url}:\n{text(browser)[:2000]}")


def wait_for_element(browser, element_id, timeout=15):
    try:
        WebDriverWait(browser, timeout, poll_frequency=0.1).until(lambda d: d.find_elements(By.ID, element_id))
    except Exception:
        raise AssertionError(f"no #{element_id} at {browser.current_url}:\n{text(browser)[:2000]}")


def click(browser, element_id):
    """click_through, naming where the browser got stuck when the next page does not load."""
    try:
        click_through(browser, element_id)
    except TimeoutException:
        raise AssertionError(f"after #{element_id} the browser is still loading {browser.current_url}:\n{text(browser)[:2000]}")


def chromium_sign_in(browser, server, account, artifacts, prefix):
    wait_for_url(browser, f"{server.base}/login")
    shot(browser, artifacts, f"{prefix}-sign-in")
    browser.find_element(By.ID, "username").send_keys(account.username)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    click(browser, "sign-in")
    assert "/login/two-factor" in browser.current_url, browser.current_url
    browser.find_element(By.ID, "code").send_keys(account.code())
    click(browser, "verify")


def test_apache_mod_auth_openidc_signs_in_with_chromium_and_logs_out_everywhere(clinic, relying_party, browser, artifacts):
    server, account, rp = clinic, clinic.account, relying_party
    client_id, client_secret = register_client(server, server.practice, "Riverside intranet", [rp.redirect_uri],
                                               post_logout_redirect_uris=[rp.signed_out_url],
                                               backchannel_logout_uri=rp.backchannel_logout_uri, start_url=rp.protected_url)
    rp.configure(server.issuer, client_id, client_secret).start()

    # The protected page sends the browser to Twofold; password and code; back on the page with the claims.
    browser.get(rp.protected_url)
    chromium_sign_in(browser, server, account, artifacts, "01")
    wait_for_url(browser, rp.protected_url)
    shot(browser, artifacts, "02-protected-page")
    claims = claims_on_page(browser)
    assert browser.find_element(By.ID, "remote-user").text == "dr.smith"
    assert claims["OIDC_CLAIM_iss"] == server.issuer
    assert claims["OIDC_CLAIM_preferred_username"] == "dr.smith"
    assert claims["OIDC_CLAIM_name"] == "Sam Smith" and claims["OIDC_CLAIM_email"] == "dr.smith@example.org"
    assert claims["OIDC_CLAIM_phone_number"] == "+15551234567"
    assert claims["OIDC_CLAIM_acr"] == ACR_2FA
    assert {"pwd", "otp", "mfa"} <= set(claims["OIDC_CLAIM_amr"].split(",")), claims["OIDC_CLAIM_amr"]
    assert claims["OIDC_CLAIM_sid"] and claims["OIDC_CLAIM_sub"] != "dr.smith"
    assert "provider" in claims["OIDC_CLAIM_roles"]
    _, id_claims = pyjwt_verify(claims["OIDC_id_token"], server, client_id, ["RS256"])
    assert id_claims["sub"] == claims["OIDC_CLAIM_sub"] and id_claims["nonce"] and id_claims["acr"] == ACR_2FA
    first_sid = id_claims["sid"]

    # 1. Sign-out at the provider from elsewhere (another application's logout): Twofold's back-channel logout
    #    ends the Apache session although the browser never went back to Apache.
    state = secrets.token_urlsafe(12)
    browser.get(server.metadata["end_session_endpoint"] + "?" + urllib.parse.urlencode(
        {"id_token_hint": claims["OIDC_id_token"], "post_logout_redirect_uri": rp.signed_out_url, "state": state}))
    wait_for_element(browser, "confirm-sign-out")
    shot(browser, artifacts, "03-confirm-sign-out")
    click(browser, "confirm-sign-out")
    wait_for_url(browser, rp.signed_out_url)
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(browser.current_url).query).get("state") == [state]
    deadline = time.time() + 10
    while "POST /protected/redirect_uri?logout=backchannel HTTP/1.1\" 200" not in rp.access_log() and time.time() < deadline:
        time.sleep(0.2)
    assert "POST /protected/redirect_uri?logout=backchannel HTTP/1.1\" 200" in rp.access_log(), rp.access_log() + rp.error_log()
    browser.get(rp.protected_url)
    wait_for_url(browser, f"{server.base}/login")
    shot(browser, artifacts, "04-apache-session-gone")

    # 2. Sign in again, then sign out through Apache (mod_auth_openidc's logout continues at end_session_endpoint).
    chromium_sign_in(browser, server, account, artifacts, "05")
    wait_for_url(browser, rp.protected_url)
    second = claims_on_page(browser)
    assert second["OIDC_CLAIM_sub"] == claims["OIDC_CLAIM_sub"] and second["OIDC_CLAIM_sid"] != first_sid
    browser.get(rp.logout_url(rp.signed_out_url))
    wait_for_url(browser, server.base)
    wait_for_element(browser, "confirm-sign-out")
    shot(browser, artifacts, "06-confirm-sign-out")
    click(browser, "confirm-sign-out")
    wait_for_url(browser, rp.signed_out_url)
    shot(browser, artifacts, "07-signed-out")
    assert browser.find_element(By.ID, "signed-out").text == "You are signed out"
    # Signed out of Apache and of Twofold: the protected page asks for the password again.
    browser.get(rp.protected_url)
    wait_for_url(browser, f"{server.base}/login")
    assert browser.find_elements(By.ID, "password")
