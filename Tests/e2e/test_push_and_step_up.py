"""Push approval and step-up with real, separate clients: `twofold-authenticator` in its own processes is the phone,
headless Chromium is the browser, and PyJWT checks step-up assertions against /.well-known/jwks.json."""
import json
import os
import re
import stat
import subprocess
import time

import jwt
import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import PASSWORD, ROOT, fresh_code, wait_for_fresh_step
from test_api_interop import svg_to_text
from test_browser_signin import click_through, shot, sign_in_with_password, text

AUTHENTICATOR = ROOT / ".build" / "debug" / "twofold-authenticator"


class Phone:
    """twofold-authenticator with its own sealed key file."""

    def __init__(self, directory):
        self.path = directory / "phone.keys"
        self.env = dict(os.environ, TWOFOLD_AUTHENTICATOR_FILE=str(self.path), TWOFOLD_AUTHENTICATOR_PASSPHRASE="phone passphrase")

    def run(self, *args, check=True):
        result = subprocess.run([str(AUTHENTICATOR), *args], capture_output=True, text=True, env=self.env, timeout=60, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"twofold-authenticator {' '.join(args)} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result.stdout if check else result.stdout + result.stderr


def enroll_app_and_phone(twofold, phone):
    """Over the API: an authenticator app (in the phone's code list too) and the phone as a push device."""
    api = f"http://127.0.0.1:{twofold.port}/api/v1"
    login = requests.post(f"{api}/login", json={"username": "dr.smith", "password": PASSWORD}).json()
    auth = {"Authorization": f"Bearer {login['token']}"}
    app = requests.post(f"{api}/me/factors/totp", json={"password": PASSWORD}, headers=auth).json()
    enrolled = fresh_code(app["secret"])
    activated = requests.post(f"{api}/me/factors/{app['factorId']}/activate", json={"code": enrolled}, headers=auth)
    assert activated.status_code == 200, activated.text
    enrolled_at = enrolled.step * 30
    phone.run("add", app["otpauthURI"], "--name", "clinic")

    push = requests.post(f"{api}/me/factors/push", json={"password": PASSWORD, "nickname": "Work phone"}, headers=auth)
    assert push.status_code == 200, push.text
    body = push.json()
    assert svg_to_text(body["qrSVG"]) == body["enrollmentURI"], "the QR code carries the enrollment URI"
    assert "Enrolled as Pixel" in phone.run("push", "enroll", body["enrollmentURI"], "--name", "Pixel")
    finished = requests.post(f"{api}/me/factors/{body['factorId']}/activate", headers=auth)
    assert finished.status_code == 200, finished.text
    return body["factorId"], enrolled_at


def test_browser_sign_in_approved_from_the_reference_authenticator(twofold, browser, artifacts, tmp_path):
    practice = twofold.create_practice("Riverside Family Medicine")
    twofold.create_user(practice)
    twofold.start()
    phone = Phone(tmp_path)
    push_factor, _ = enroll_app_and_phone(twofold, phone)

    mode = stat.S_IMODE(os.stat(phone.path).st_mode)
    assert mode == 0o600, oct(mode)
    sealed = phone.path.read_text()
    assert "Pixel" not in sealed and "otpauth" not in sealed, "the key file is sealed"
    listing = phone.run("list")
    assert "code  clinic" in listing and "push  Pixel" in listing
    wrong = subprocess.run([str(AUTHENTICATOR), "list"], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                           env=dict(phone.env, TWOFOLD_AUTHENTICATOR_PASSPHRASE="not it"))
    assert wrong.returncode != 0 and "wrong passphrase" in wrong.stderr

    sign_in_with_password(browser, twofold.base)
    browser.find_element(By.CSS_SELECTOR, "details.other-methods summary").click()
    click_through(browser, browser.find_element(By.LINK_TEXT, "Pixel"))
    click_through(browser, "send-push")
    number = browser.find_element(By.ID, "match-number").text.strip()
    assert re.fullmatch(r"\d\d", number)
    shot(browser, artifacts, "push-wait")

    pending = phone.run("push", "pending")
    assert "Sign-in request" in pending and "Riverside Family Medicine" in pending
    challenge = re.search(r"^([0-9A-F-]{36})", pending, re.M).group(1)
    wrong_number = "10" if number != "10" else "11"
    refused = phone.run("push", "approve", challenge, "--number", wrong_number, check=False)
    assert "does not match" in refused + phone.run("push", "pending")  # refused, and no longer pending
    # The waiting page notices by itself and goes back to the choice of methods.
    WebDriverWait(browser, 30).until(lambda d: "denied" in text(d))

    click_through(browser, "send-push")
    number = browser.find_element(By.ID, "match-number").text.strip()
    challenge = re.search(r"^([0-9A-F-]{36})", phone.run("push", "pending"), re.M).group(1)
    assert "Approved." in phone.run("push", "approve", challenge, "--number", number)
    # The page polls and continues by itself.
    WebDriverWait(browser, 30).until(lambda d: d.current_url.rstrip("/") == twofold.base)
    shot(browser, artifacts, "push-signed-in")
    assert "intact" in twofold.cli("audit", "verify").stdout


def test_step_up_with_a_fresh_code_and_an_assertion_checked_by_pyjwt(twofold, tmp_path):
    practice = twofold.create_practice("Riverside Family Medicine")
    user_id = twofold.create_user(practice)
    twofold.start()
    phone = Phone(tmp_path)
    _, enrolled_at = enroll_app_and_phone(twofold, phone)
    key = twofold.cli("api-key", "create", "--practice", practice, "--name", "EHR").stdout.strip().splitlines()[-1]
    ehr = {"Authorization": f"Bearer {key}"}
    base = f"http://127.0.0.1:{twofold.port}"
    action = {"type": "order.sign", "summary": "Sign lab order: lipid panel", "hash": "3f" * 32}

    started = requests.post(f"{base}/api/v1/step-up", json={"username": "dr.smith", "action": action}, headers=ehr)
    assert started.status_code == 201, started.text
    body = started.json()
    assert set(body["methods"]) == {"totp", "push"}
    # The assertion is for this key only: its id is the audience.
    key_id = body["audience"]
    assert key_id in twofold.cli("api-key", "list", "--practice", practice).stdout

    # The enrollment spent the current time step; a step-up needs a fresh one.
    wait_for_fresh_step(after_step=int(enrolled_at // 30))
    output = phone.run("code", "clinic")
    code, seconds = re.fullmatch(r"(\d{6}) \((\d+) s left\)\n", output).groups()
    assert 1 <= int(seconds) <= 30
    verified = requests.post(f"{base}/api/v1/step-up/{body['challengeId']}/verify", json={"code": code}, headers=ehr)
    assert verified.status_code == 200, verified.text
    assertion = verified.json()["assertion"]

    jwks = jwt.PyJWKClient(f"{base}/.well-known/jwks.json")
    signing_key = jwks.get_signing_key_from_jwt(assertion)
    claims = jwt.decode(assertion, signing_key.key, algorithms=["ES256"], audience=key_id, issuer=base,
                        options={"require": ["exp", "iat", "sub", "jti", "aud", "iss"]})
    assert claims["sub"] == user_id
    assert claims["practice"] == practice
    assert claims["amr"] == ["otp"]
    assert claims["action_hash"] == action["hash"]
    assert claims["exp"] - claims["iat"] == 300
    assert claims["iss"] == base
    assert claims["aud"] == key_id
    with pytest.raises(jwt.InvalidAudienceError):
        jwt.decode(assertion, signing_key.key, algorithms=["ES256"], audience="another-integrator")

    # Another key of the same practice cannot see, answer or collect this integrator's step-ups.
    other_key = twofold.cli("api-key", "create", "--practice", practice, "--name", "Billing").stdout.strip().splitlines()[-1]
    other = {"Authorization": f"Bearer {other_key}"}
    assert requests.get(f"{base}/api/v1/step-up/{body['challengeId']}", headers=other).status_code == 404
    assert requests.post(f"{base}/api/v1/step-up/{body['challengeId']}/verify", json={"code": code}, headers=other).status_code == 404

    again = requests.post(f"{base}/api/v1/step-up/{body['challengeId']}/verify", json={"code": code}, headers=ehr)
    assert again.status_code == 409, "one step-up, one assertion"

    # Push step-up: the phone sees the action, the EHR shows the number, the first poll collects the assertion.
    second = requests.post(f"{base}/api/v1/step-up", json={"username": "dr.smith", "action": action}, headers=ehr).json()
    push = requests.post(f"{base}/api/v1/step-up/{second['challengeId']}/push", json={}, headers=ehr).json()
    pending = phone.run("push", "pending")
    assert "Confirm action" in pending and "lipid panel" in pending
    challenge = re.search(r"^([0-9A-F-]{36})", pending, re.M).group(1)
    phone.run("push", "approve", challenge, "--number", str(push["number"]))
    collected = requests.get(f"{base}/api/v1/step-up/{second['challengeId']}", headers=ehr).json()
    assert collected["status"] == "completed"
    assert jwt.decode(collected["assertion"], jwks.get_signing_key_from_jwt(collected["assertion"]).key, algorithms=["ES256"],
                      audience=key_id)["amr"] == ["push"]

    # Rotation: a new key of each algorithm signs (one kid a line, ES256 last); the previous ones stay published,
    # so the earlier assertion still verifies.
    new_kids = twofold.cli("keys", "rotate").stdout.strip().splitlines()[-2:]
    new_kid = new_kids[-1]
    published = requests.get(f"{base}/.well-known/jwks.json").json()["keys"]
    for alg, kid in zip(["RS256", "ES256"], new_kids):
        of_alg = [k["kid"] for k in published if k["alg"] == alg]
        assert of_alg[0] == kid and len(of_alg) == 2, published
    fresh = jwt.PyJWKClient(f"{base}/.well-known/jwks.json", cache_jwk_set=False)
    jwt.decode(assertion, fresh.get_signing_key_from_jwt(assertion).key, algorithms=["ES256"], audience=key_id, options={"verify_exp": False})
    assert jwt.get_unverified_header(assertion)["kid"] != new_kid
