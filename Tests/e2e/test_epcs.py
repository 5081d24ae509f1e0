"""EPCS in a real browser (headless Chromium): an administrator designates two EPCS access approvers, approver one
enters a provider's permission, approver two (a DEA registrant) approves it with an oathtool code, the provider signs
an EPCS step-up on the page that shows the attestation of 21 CFR 1311.140(a)(3) with password and code, and PyJWT
checks the assertion against /.well-known/jwks.json. The daily EPCS report then lists those events."""
import datetime
import hashlib
import time
import urllib.parse

import jwt
import requests
from selenium.webdriver.common.by import By

from conftest import ARTIFACTS, PASSWORD, fresh_code
from test_browser_signin import click_through, shot, sign_in_with_password, sign_out, text

DEA_NUMBER = "AB1234563"
ATTESTATION_STATEMENT = (
    "By completing the two-factor authentication protocol at this time, you are legally signing the prescription(s) and "
    "authorizing the transmission of the above information to the pharmacy for dispensing. The two-factor authentication "
    "protocol may only be completed by the practitioner whose name and DEA registration number appear above."
)
PRESCRIPTIONS = ["Oxycodone 5 mg tablet, #20, 1 every 6 hours as needed for pain", "Lorazepam 0.5 mg tablet, #10, 1 at bedtime"]


def enroll_app(twofold, username):
    """An authenticator app over the API, activated with the previous step's code (the current one stays free);
    returns the secret and that code."""
    api = f"{twofold.base}/api/v1"
    login = requests.post(f"{api}/login", json={"username": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    auth = {"Authorization": f"Bearer {login.json()['token']}"}
    app = requests.post(f"{api}/me/factors/totp", json={"password": PASSWORD}, headers=auth).json()
    code = fresh_code(app["secret"], step_offset=-1)
    activated = requests.post(f"{api}/me/factors/{app['factorId']}/activate", json={"code": code}, headers=auth)
    assert activated.status_code == 200, activated.text
    return app["secret"], code


def sign_in_with_code(browser, twofold, username, secret, after_step):
    sign_in_with_password(browser, twofold.base, username)
    assert "/login/two-factor" in browser.current_url
    code = fresh_code(secret, after_step=after_step)
    browser.find_element(By.ID, "code").send_keys(code)
    click_through(browser, "verify")
    assert "/login" not in browser.current_url, text(browser)
    return code


def set_value(browser, element_id, value):
    """Date inputs take their value in the browser's locale format when typed; set the ISO value directly."""
    browser.execute_script("arguments[0].value = arguments[1]", browser.find_element(By.ID, element_id), value)


def designate(browser, twofold, user_id, registrant):
    browser.get(f"{twofold.base}/admin/staff/{user_id}")
    approver = browser.find_element(By.ID, "epcs-approver")
    if not approver.is_selected():
        approver.click()
    box = browser.find_element(By.ID, "epcs-registrant")
    if box.is_selected() != registrant:
        box.click()
    browser.find_element(By.ID, "epcs-approver-password").send_keys(PASSWORD)
    click_through(browser, "save-epcs-approver")
    assert "The EPCS approver designation was saved." in browser.find_element(By.ID, "notice").text
    status = browser.find_element(By.ID, "epcs-approver-status").text
    assert "is an EPCS access approver" in status
    assert ("and a DEA registrant" in status) == registrant


def test_two_approvers_grant_epcs_and_the_prescriber_signs_with_the_attestation(twofold, browser, artifacts):
    practice = twofold.create_practice("Riverside Family Medicine")
    approver_one = twofold.create_user(practice, username="approver.one", cell="+15550000001", admin=True)
    approver_two = twofold.create_user(practice, username="approver.two", cell="+15550000002", admin=True)
    provider = twofold.create_user(practice, username="dr.smith", cell="+15550000003")
    twofold.start()
    base = twofold.base

    secrets = {}
    for username in ("approver.one", "approver.two", "dr.smith"):
        secrets[username] = enroll_app(twofold, username)

    # An administrator (approver one) designates both approvers on their pages; approver two is the DEA registrant.
    sign_in_with_code(browser, twofold, "approver.one", secrets["approver.one"][0], secrets["approver.one"][1].step)
    click_through(browser, "epcs-link")
    assert "two-person rule" in text(browser)
    assert browser.find_elements(By.ID, "approver-warning"), "no approvers yet: the page warns"
    designate(browser, twofold, approver_two, registrant=True)
    designate(browser, twofold, approver_one, registrant=False)
    browser.get(f"{base}/admin/epcs")
    assert not browser.find_elements(By.ID, "approver-warning")
    rows = {row.get_attribute("data-username"): row.text for row in browser.find_elements(By.CSS_SELECTOR, "#approvers tbody tr")}
    assert rows.keys() == {"approver.one", "approver.two"}
    assert rows["approver.two"].endswith("Yes") and rows["approver.one"].endswith("No")
    shot(browser, artifacts, "01-approvers")

    # Approver one enters the provider's grant.
    today = datetime.datetime.now(datetime.timezone.utc).date()
    browser.get(f"{base}/admin/staff/{provider}")
    click_through(browser, "enter-epcs-grant")
    browser.find_element(By.ID, "deaNumber").send_keys(DEA_NUMBER)
    set_value(browser, "deaExpiresOn", (today + datetime.timedelta(days=730)).isoformat())
    browser.find_element(By.ID, "states").send_keys("NY NJ")
    browser.find_element(By.ID, "proofingProvider").send_keys("ID.me")
    set_value(browser, "proofingDate", (today - datetime.timedelta(days=30)).isoformat())
    level = browser.find_element(By.ID, "proofingLevel")
    level.clear()
    level.send_keys("IAL2")
    browser.find_element(By.ID, "proofingReference").send_keys("IDME-2030-0042")
    browser.find_element(By.ID, "adminPassword").send_keys(PASSWORD)
    shot(browser, artifacts, "02-grant-form")
    click_through(browser, "enter-grant")
    assert "The EPCS grant was entered." in browser.find_element(By.ID, "notice").text
    row = browser.find_element(By.CSS_SELECTOR, "#grants tbody tr")
    assert row.get_attribute("data-status") == "pending_approval"
    assert not row.find_elements(By.CSS_SELECTOR, "a.approve"), "the approver who entered it cannot approve it"
    shot(browser, artifacts, "03-grant-pending")
    sign_out(browser)

    # Approver two approves it with a fresh code from their authenticator app.
    two_signed_in = sign_in_with_code(browser, twofold, "approver.two", secrets["approver.two"][0], secrets["approver.two"][1].step)
    browser.get(f"{base}/admin/epcs")
    click_through(browser, browser.find_element(By.CSS_SELECTOR, "#grants tbody tr a.approve"))
    details = browser.find_element(By.ID, "epcs-details").text
    assert DEA_NUMBER in details and "IDME-2030-0042" in details
    assert not browser.find_elements(By.ID, "blocked"), browser.find_element(By.ID, "blocked").text
    approve_code = fresh_code(secrets["approver.two"][0], after_step=two_signed_in.step, step_offset=1)
    browser.find_element(By.ID, "code").send_keys(approve_code)
    shot(browser, artifacts, "04-approve")
    click_through(browser, "confirm")
    assert "The EPCS grant was approved" in browser.find_element(By.ID, "notice").text
    assert browser.find_element(By.CSS_SELECTOR, "#grants tbody tr").get_attribute("data-status") == "active"
    shot(browser, artifacts, "05-grant-active")
    # Keep approver two's session for the daily report; the provider uses the same browser meanwhile.
    approver_two_cookies = browser.get_cookies()
    browser.delete_all_cookies()

    # The EHR starts an EPCS step-up for two prescriptions.
    key = twofold.cli("api-key", "create", "--practice", practice, "--name", "EHR").stdout.strip().splitlines()[-1]
    ehr = {"Authorization": f"Bearer {key}"}
    action = {"type": "epcs", "summary": "\n".join(PRESCRIPTIONS), "hash": "4f" * 32}
    started = requests.post(f"{base}/api/v1/step-up", json={"username": "dr.smith", "action": action}, headers=ehr)
    assert started.status_code == 201, started.text
    body = started.json()
    attestation = body["attestation"]
    assert ATTESTATION_STATEMENT in attestation and DEA_NUMBER in attestation
    assert body["attestationHash"] == hashlib.sha256(attestation.encode("utf-8")).hexdigest()

    # The provider signs in and opens the step-up page: the prescriptions, name, DEA number and the statement.
    provider_signed_in = sign_in_with_code(browser, twofold, "dr.smith", secrets["dr.smith"][0], secrets["dr.smith"][1].step)
    browser.get(base + urllib.parse.urlsplit(body["url"]).path)
    box = browser.find_element(By.ID, "epcs-attestation").text
    assert ATTESTATION_STATEMENT in box
    assert DEA_NUMBER == browser.find_element(By.ID, "epcs-dea").text
    assert "Sam Smith" == browser.find_element(By.ID, "epcs-practitioner").text
    for line in PRESCRIPTIONS:
        assert line in box
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "epcs-step-up.png"))
    shot(browser, artifacts, "06-epcs-step-up")

    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "code").send_keys(fresh_code(secrets["dr.smith"][0], after_step=provider_signed_in.step, step_offset=1))
    click_through(browser, "step-up-verify")
    assert "Confirmed." in browser.find_element(By.ID, "step-up-done").text
    shot(browser, artifacts, "07-signed")

    # The integrator collects the assertion and checks it with PyJWT against the published keys.
    collected = {}
    for _ in range(50):
        collected = requests.get(f"{base}/api/v1/step-up/{body['challengeId']}", headers=ehr).json()
        if collected.get("assertion"):
            break
        time.sleep(0.2)
    assertion = collected["assertion"]
    jwks = jwt.PyJWKClient(f"{base}/.well-known/jwks.json")
    claims = jwt.decode(assertion, jwks.get_signing_key_from_jwt(assertion).key, algorithms=["ES256"], audience=body["audience"],
                        options={"require": ["exp", "iat", "sub", "jti", "aud", "iss"]})
    assert claims["sub"] == provider
    assert claims["action_type"] == "epcs"
    assert claims["epcs"]["dea_number"] == DEA_NUMBER
    assert claims["epcs"]["attestation_sha256"] == hashlib.sha256(attestation.encode("utf-8")).hexdigest()
    assert "pwd" in claims["amr"] and "otp" in claims["amr"], claims["amr"]
    sign_out(browser)

    # Approver two opens today's daily EPCS report: it lists the grant and the signing.
    browser.delete_all_cookies()
    browser.get(f"{base}/login")
    for cookie in approver_two_cookies:
        browser.add_cookie({name: cookie[name] for name in ("name", "value", "path") if name in cookie})
    day = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    browser.get(f"{base}/admin/epcs/reports/{day}")
    assert "/login" not in browser.current_url
    shot(browser, artifacts, "08-daily-report")
    page = browser.page_source
    for event in ("epcs.grant_entered", "epcs.grant_approved", "epcs.signing_completed"):
        assert event in page, f"{event} missing from the daily report"
    assert "intact" in twofold.cli("audit", "verify").stdout
