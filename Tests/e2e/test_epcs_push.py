"""EPCS over the API with separate real clients: two approvers grant the permission over the JSON API, the EHR starts an
EPCS step-up, `twofold-authenticator push pending` (the prescriber's phone) prints the prescriptions, the DEA number
and the statement of 21 CFR 1311.140(a)(3), the prescriber gives the password and approves on the phone, and PyJWT
checks the assertion. Then `twofold epcs report` lists the day's events, and a lost-device report ends the permission."""
import datetime
import hashlib
import json
import re

import jwt
import requests

from conftest import PASSWORD, fresh_code, wait_for_fresh_step
from test_epcs import ATTESTATION_STATEMENT, DEA_NUMBER, enroll_app
from test_push_and_step_up import Phone, enroll_app_and_phone


def half_signed_in_then_code(twofold, username, secret, after_step):
    """Signs in over the API with the password and a fresh code; returns the session's headers and the code used."""
    login = requests.post(f"{twofold.base}/api/v1/login", json={"username": username, "password": PASSWORD}).json()
    auth = {"Authorization": f"Bearer {login['token']}"}
    code = fresh_code(secret, after_step=after_step)
    finished = requests.post(f"{twofold.base}/api/v1/login/verify", json={"code": code}, headers=auth)
    assert finished.status_code == 200, finished.text
    return {"Authorization": f"Bearer {finished.json()['token']}"}, code


def test_epcs_signing_approved_on_the_reference_authenticator(twofold, tmp_path):
    practice = twofold.create_practice("Riverside Family Medicine")
    one = twofold.create_user(practice, username="approver.one", cell="+15550000001", admin=True)
    two = twofold.create_user(practice, username="approver.two", cell="+15550000002", admin=True)
    provider = twofold.create_user(practice, username="dr.smith", cell="+15550000003")
    twofold.start()
    base = twofold.base
    api = f"{base}/api/v1"

    phone = Phone(tmp_path)
    push_factor, enrolled_at = enroll_app_and_phone(twofold, phone)
    secret_one, code_one = enroll_app(twofold, "approver.one")
    secret_two, code_two = enroll_app(twofold, "approver.two")
    admin_one, code_one = half_signed_in_then_code(twofold, "approver.one", secret_one, code_one.step)
    admin_two, code_two = half_signed_in_then_code(twofold, "approver.two", secret_two, code_two.step)

    # Without two approvers nothing can be granted.
    grant = {"deaNumber": DEA_NUMBER, "deaExpiresOn": (datetime.date.today() + datetime.timedelta(days=365)).isoformat(), "states": ["NY"],
             "proofing": {"provider": "ID.me", "date": (datetime.date.today() - datetime.timedelta(days=7)).isoformat(), "level": "IAL2",
                          "reference": "IDME-0042"}, "adminPassword": PASSWORD}
    early = requests.post(f"{api}/practice/users/{provider}/epcs/grants", json=grant, headers=admin_one)
    assert early.status_code in (403, 409), early.text
    for user, registrant in ((one, False), (two, True)):
        designated = requests.put(f"{api}/practice/users/{user}/epcs/approver",
                                  json={"approver": True, "deaRegistrant": registrant, "adminPassword": PASSWORD}, headers=admin_one)
        assert designated.status_code == 200, designated.text

    entered = requests.post(f"{api}/practice/users/{provider}/epcs/grants", json=grant, headers=admin_one)
    assert entered.status_code == 201, entered.text
    grant_id = entered.json()["grantId"]
    assert entered.json()["status"] == "pending_approval"
    own = requests.post(f"{api}/practice/epcs/grants/{grant_id}/approve", json={"code": fresh_code(secret_one, after_step=code_one.step, step_offset=1)},
                        headers=admin_one)
    assert own.status_code == 403, "the approver who entered the grant cannot approve it"
    approved = requests.post(f"{api}/practice/epcs/grants/{grant_id}/approve", json={"code": fresh_code(secret_two, after_step=code_two.step, step_offset=1)},
                             headers=admin_two)
    assert approved.status_code == 200 and approved.json()["status"] == "active", approved.text

    # The EHR asks for an EPCS signing of two prescriptions.
    key = twofold.cli("api-key", "create", "--practice", practice, "--name", "EHR").stdout.strip().splitlines()[-1]
    ehr = {"Authorization": f"Bearer {key}"}
    summary = "Oxycodone 5 mg tablet, #20\nLorazepam 0.5 mg tablet, #10"
    action = {"type": "epcs", "summary": summary, "hash": hashlib.sha256(summary.encode()).hexdigest()}
    started = requests.post(f"{base}/api/v1/step-up", json={"username": "dr.smith", "action": action}, headers=ehr)
    assert started.status_code == 201, started.text
    body = started.json()
    assert body["factorsRequired"] == ["password", "hard_token"]
    assert "push" in body["methods"]
    attestation = body["attestation"]
    assert hashlib.sha256(attestation.encode()).hexdigest() == body["attestationHash"]

    # The phone is one factor; the password must come too.
    assert requests.post(f"{base}/api/v1/step-up/{body['challengeId']}/push", json={}, headers=ehr).status_code == 400
    push = requests.post(f"{base}/api/v1/step-up/{body['challengeId']}/push", json={"password": PASSWORD}, headers=ehr)
    assert push.status_code == 200, push.text
    pending = phone.run("push", "pending")
    assert ATTESTATION_STATEMENT in pending, pending
    assert DEA_NUMBER in pending and "Oxycodone 5 mg tablet, #20" in pending and "Lorazepam 0.5 mg tablet, #10" in pending
    challenge = re.search(r"^([0-9A-F-]{36})", pending, re.M).group(1)
    phone.run("push", "approve", challenge, "--number", str(push.json()["number"]))
    collected = requests.get(f"{base}/api/v1/step-up/{body['challengeId']}", headers=ehr).json()
    assert collected["status"] == "completed", collected
    signing_key = jwt.PyJWKClient(f"{base}/.well-known/jwks.json").get_signing_key_from_jwt(collected["assertion"])
    claims = jwt.decode(collected["assertion"], signing_key.key, algorithms=["ES256"], audience=body["audience"], issuer=base)
    assert claims["amr"] == ["pwd", "push"]
    assert claims["action_type"] == "epcs" and claims["action_hash"] == action["hash"]
    assert claims["epcs"] == {"dea_number": DEA_NUMBER, "grant_id": grant_id, "attestation_sha256": body["attestationHash"],
                              "factors": ["knowledge", "hard_token"]}

    # The prescriber signs in with the phone's authenticator code and finds the signing in the monthly log.
    wait_for_fresh_step(after_step=int(enrolled_at // 30))
    login = requests.post(f"{api}/login", json={"username": "dr.smith", "password": PASSWORD}).json()
    code = re.match(r"(\d{6})", phone.run("code", "clinic")).group(1)
    finished = requests.post(f"{api}/login/verify", json={"code": code}, headers={"Authorization": f"Bearer {login['token']}"})
    assert finished.status_code == 200, finished.text
    prescriber = {"Authorization": f"Bearer {finished.json()['token']}"}
    month = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m")
    log = requests.get(f"{api}/me/epcs/log", params={"month": month}, headers=prescriber)
    assert log.status_code == 200, log.text
    assert json.dumps(log.json()).count(action["hash"]) == 1, log.text
    assert requests.get(f"{api}/me/epcs/log", params={"month": "2026-13"}, headers=prescriber).status_code == 400

    # The daily report, from the command line.
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    report = json.loads(twofold.cli("epcs", "report", "--practice", practice, "--date", today, "--json").stdout)
    types = json.dumps(report)
    for event in ("epcs.approver_designated", "epcs.grant_entered", "epcs.grant_approved", "epcs.unauthorized_attempt", "epcs.signing_completed"):
        assert event in types, event
    csv_text = twofold.cli("epcs", "report", "--practice", practice, "--date", today, "--csv").stdout
    assert "epcs.signing_completed" in csv_text
    assert twofold.cli("epcs", "report", "--practice", practice, "--date", "2026-02-30", check=False).returncode != 0

    # Losing the phone ends the permission at once.
    lost = requests.post(f"{api}/me/factors/{push_factor}/report-lost", json={"password": PASSWORD}, headers=prescriber)
    assert lost.status_code == 200, lost.text
    again = requests.post(f"{base}/api/v1/step-up", json={"username": "dr.smith", "action": action}, headers=ehr)
    assert again.status_code == 403, again.text
    alerts = requests.get(f"{api}/practice/epcs/alerts", headers=admin_two).json()["alerts"]
    assert any("lost or stolen" in alert["message"] for alert in alerts), alerts
