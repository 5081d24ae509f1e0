"""Two `twofold serve` processes on one PostgreSQL behave as one server: sign-in state, single-use codes,
lockout counters and the audit chain are shared through the database."""
import base64
import concurrent.futures
import os
import secrets
import subprocess
import urllib.parse

import pytest
import requests

from conftest import PASSWORD, Twofold, oathtool_code


@pytest.fixture
def postgres_url():
    base = os.environ.get("TWOFOLD_TEST_POSTGRES_URL")
    assert base, "TWOFOLD_TEST_POSTGRES_URL is not set: run scripts/test, which starts a throwaway PostgreSQL"
    parts = urllib.parse.urlsplit(base)
    name = "e2e_" + secrets.token_hex(6)
    admin = dict(os.environ, PGPASSWORD=parts.password or "")
    psql = ["psql", "-h", parts.hostname, "-p", str(parts.port), "-U", parts.username, "-d", parts.path.lstrip("/"), "-v", "ON_ERROR_STOP=1", "-q"]
    subprocess.run(psql + ["-c", f"CREATE DATABASE {name}"], check=True, env=admin)
    yield urllib.parse.urlunsplit(parts._replace(path="/" + name))
    subprocess.run(psql + ["-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False, env=admin)


@pytest.fixture
def pair(tmp_path, postgres_url):
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    env = {"DATABASE_URL": postgres_url, "TWOFOLD_SECRET_KEY": key}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = Twofold(tmp_path / "a", env)
    second = Twofold(tmp_path / "b", env)
    yield first, second
    first.stop()
    second.stop()


def api(server):
    return f"http://127.0.0.1:{server.port}/api/v1"


def login(server):
    response = requests.post(f"{api(server)}/login", json={"username": "dr.smith", "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


def failures(url):
    parts = urllib.parse.urlsplit(url)
    result = subprocess.run(["psql", url.split("?")[0], "-At", "-c", "SELECT second_factor_failures FROM users WHERE username_key = 'dr.smith'"],
                            capture_output=True, text=True, check=True, env=dict(os.environ, PGPASSWORD=parts.password or ""))
    return int(result.stdout.strip())


def test_two_instances_share_everything(pair, postgres_url):
    a, b = pair
    pair_url = postgres_url
    practice = a.create_practice()
    a.create_user(practice)
    key = a.cli("api-key", "create", "--practice", practice, "--name", "VPN").stdout.strip().splitlines()[-1]
    a.start()
    b.start()

    # Enroll on A.
    token = login(a)["token"]
    auth = {"Authorization": f"Bearer {token}"}
    started = requests.post(f"{api(a)}/me/factors/totp", json={"password": PASSWORD}, headers=auth).json()
    secret = started["secret"]
    activated = requests.post(f"{api(b)}/me/factors/{started['factorId']}/activate", json={"code": oathtool_code(secret, -30)}, headers=auth)
    assert activated.status_code == 200, activated.text

    # Password on A, code on B.
    half = login(a)
    assert half["status"] == "second_factor_required"
    done = requests.post(f"{api(b)}/login/verify", json={"code": oathtool_code(secret)}, headers={"Authorization": f"Bearer {half['token']}"})
    assert done.status_code == 200 and done.json()["status"] == "authenticated"

    # Twenty parallel submissions of one fresh code, spread over both instances: exactly one wins.
    tokens = [login(a if i % 2 else b)["token"] for i in range(20)]
    code = oathtool_code(secret, 30)

    def submit(index):
        server = a if index % 2 else b
        return requests.post(f"{api(server)}/login/verify", json={"code": code}, headers={"Authorization": f"Bearer {tokens[index]}"}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(submit, range(20)))
    assert statuses.count(200) == 1, statuses
    assert statuses.count(401) == 19, statuses

    # Wrong codes on both instances add up in one counter, and the wait after five applies on both.
    vpn = {"Authorization": f"Bearer {key}"}
    for index in range(5):
        server = a if index % 2 else b
        reply = requests.post(f"{api(server)}/validate", json={"username": "dr.smith", "code": "000000"}, headers=vpn)
        assert reply.json() == {"result": "reject"}
    assert failures(pair_url) == 5
    too_soon = requests.post(f"{api(b)}/validate", json={"username": "dr.smith", "code": "000000"}, headers=vpn)
    assert too_soon.json() == {"result": "reject"}
    assert failures(pair_url) == 5, "an attempt during the wait must be refused without being checked"

    # One audit chain, written by both.
    a.stop()
    b.stop()
    assert "intact" in a.cli("audit", "verify").stdout
