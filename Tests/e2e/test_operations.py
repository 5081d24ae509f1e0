"""Operations: JSON logs without secrets, and client addresses behind trusted proxies."""
import json

import requests

from conftest import PASSWORD, Twofold, fresh_code


def test_json_logs_never_contain_secrets_codes_passwords_or_tokens(tmp_path):
    server = Twofold(tmp_path, {"TWOFOLD_LOG_FORMAT": "json", "LOG_LEVEL": "debug"})
    try:
        practice = server.create_practice()
        server.create_user(practice)
        server.start()
        api = f"http://127.0.0.1:{server.port}/api/v1"
        secrets_seen = [PASSWORD]
        login = requests.post(f"{api}/login", json={"username": "dr.smith", "password": PASSWORD}).json()
        auth = {"Authorization": f"Bearer {login['token']}"}
        secrets_seen.append(login["token"])
        started = requests.post(f"{api}/me/factors/totp", json={"password": PASSWORD}, headers=auth).json()
        secrets_seen.append(started["secret"])
        code = fresh_code(started["secret"], step_offset=-1)
        activated = requests.post(f"{api}/me/factors/{started['factorId']}/activate", json={"code": code}, headers=auth).json()
        secrets_seen += [code] + activated["recoveryCodes"]
        # A confirmed phone as a second method (only a confirmed number gets sign-in codes).
        sms_started = requests.post(f"{api}/me/factors/sms", json={"password": PASSWORD}, headers=auth).json()
        enrollment_sms = server.latest_sms_code()
        secrets_seen.append(enrollment_sms)
        assert requests.post(f"{api}/me/factors/{sms_started['factorId']}/activate", json={"code": enrollment_sms}, headers=auth).status_code == 200
        second = requests.post(f"{api}/login", json={"username": "dr.smith", "password": PASSWORD}).json()
        secrets_seen.append(second["token"])
        auth2 = {"Authorization": f"Bearer {second['token']}"}
        requests.post(f"{api}/login/verify", json={"code": "000000"}, headers=auth2)
        signed_in_code = fresh_code(started["secret"], after_step=code.step)
        secrets_seen.append(signed_in_code)
        verified = requests.post(f"{api}/login/verify", json={"code": signed_in_code, "rememberBrowser": True}, headers=auth2)
        assert verified.status_code == 200
        secrets_seen += [verified.json()["token"], verified.json()["rememberToken"]]
    finally:
        server.stop()
    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    assert len(lines) > 5
    for line in lines:
        record = json.loads(line)
        assert {"time", "level", "message"} <= record.keys()
        for secret in secrets_seen:
            assert secret not in line, f"a secret appeared in the log: {line}"


def failed_sign_in_addresses(server, forwarded_for):
    """Makes one failed sign-in with the given X-Forwarded-For and returns the addresses the audit log recorded."""
    practice = server.create_practice()
    server.create_user(practice, username="admin", admin=True)
    server.start()
    api = f"http://127.0.0.1:{server.port}/api/v1"
    requests.post(f"{api}/login", json={"username": "admin", "password": "wrong"}, headers={"X-Forwarded-For": forwarded_for})
    token = requests.post(f"{api}/login", json={"username": "admin", "password": PASSWORD}).json()["token"]
    events = requests.get(f"{api}/practice/audit?type=sign_in.failed", headers={"Authorization": f"Bearer {token}"}).json()["events"]
    return [event["ip"] for event in events]


def test_forwarded_for_is_believed_only_from_trusted_proxies(tmp_path):
    trusted = Twofold(tmp_path, {"TWOFOLD_TRUSTED_PROXIES": "127.0.0.1/32, ::1/128"})
    try:
        assert failed_sign_in_addresses(trusted, "198.51.100.7, 203.0.113.9") == ["203.0.113.9"]
    finally:
        trusted.stop()


def test_forwarded_for_is_ignored_without_configuration(twofold):
    assert failed_sign_in_addresses(twofold, "203.0.113.9") == ["127.0.0.1"]
