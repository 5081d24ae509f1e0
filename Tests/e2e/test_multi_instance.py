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

from conftest import BINARY, PASSWORD, Twofold, fresh_code


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
    # /api/v1/validate counts failures on the API key's own channel (docs/security.md, "Lockout model").
    query = ("SELECT COALESCE(SUM(c.failures), 0) FROM second_factor_counters c JOIN users u ON u.id = c.user_id "
             "WHERE u.username_key = 'dr.smith' AND c.channel LIKE 'validate:%'")
    result = subprocess.run(["psql", url.split("?")[0], "-At", "-c", query],
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
    enrolled = fresh_code(secret, step_offset=-1)
    activated = requests.post(f"{api(b)}/me/factors/{started['factorId']}/activate", json={"code": enrolled}, headers=auth)
    assert activated.status_code == 200, activated.text

    # Password on A, code on B.
    half = login(a)
    assert half["status"] == "second_factor_required"
    signed_in = fresh_code(secret, after_step=enrolled.step)
    done = requests.post(f"{api(b)}/login/verify", json={"code": signed_in}, headers={"Authorization": f"Bearer {half['token']}"})
    assert done.status_code == 200 and done.json()["status"] == "authenticated"
    # The token of the password step stops working; the new one works on either instance.
    assert requests.get(f"{api(a)}/me", headers={"Authorization": f"Bearer {half['token']}"}).status_code == 401
    assert requests.get(f"{api(a)}/me", headers={"Authorization": f"Bearer {done.json()['token']}"}).json()["stage"] == "signed_in"

    # Twenty parallel submissions of one fresh code, spread over both instances: exactly one wins.
    tokens = [login(a if i % 2 else b)["token"] for i in range(20)]
    code = fresh_code(secret, after_step=signed_in.step, step_offset=1)

    def submit(index):
        server = a if index % 2 else b
        return requests.post(f"{api(server)}/login/verify", json={"code": code}, headers={"Authorization": f"Bearer {tokens[index]}"}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        statuses = list(pool.map(submit, range(20)))
    # The others are replays (401) or, once the account's free attempts are reserved, told to wait (429).
    assert statuses.count(200) == 1, statuses
    assert statuses.count(401) + statuses.count(429) == 19, statuses

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


def sealing_key_id(base64_key):
    import hashlib
    return hashlib.sha256(b"twofold-sealing-key-check\x00" + base64.b64decode(base64_key)).hexdigest()[:16]


def test_a_second_instance_with_its_own_key_refuses_to_start(tmp_path, postgres_url):
    # Neither sets TWOFOLD_SECRET_KEY: each would generate its own twofold.key.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Twofold(tmp_path / "a", {"DATABASE_URL": postgres_url})
    b = Twofold(tmp_path / "b", {"DATABASE_URL": postgres_url})
    b.env.pop("TWOFOLD_SECRET_KEY", None)
    a.env.pop("TWOFOLD_SECRET_KEY", None)
    try:
        a.start()
        refused = subprocess.run([str(BINARY), "serve", "--hostname", "127.0.0.1", "--port", str(b.port)], capture_output=True, text=True, env=b.env, timeout=120)
        assert refused.returncode != 0
        expected = sealing_key_id((tmp_path / "a" / "twofold.key").read_text().strip())
        own = sealing_key_id((tmp_path / "b" / "twofold.key").read_text().strip())
        assert f"key with id {expected}" in refused.stderr, refused.stderr
        assert f"has id {own}" in refused.stderr, refused.stderr
        assert "TWOFOLD_SECRET_KEY" in refused.stderr
        # With the first instance's key it starts.
        b.env["TWOFOLD_SECRET_KEY"] = (tmp_path / "a" / "twofold.key").read_text().strip()
        b.start()
    finally:
        a.stop()
        b.stop()


def test_parallel_guesses_across_two_instances_stay_within_the_limits(pair):
    """Every limit is reserved in the database before the check it guards, so a burst spread over two instances
    evaluates no more attempts than one instance would."""
    a, b = pair
    practice = a.create_practice()
    a.create_user(practice)
    a.start()
    b.start()

    def wrong_password(index):
        server = a if index % 2 else b
        return requests.post(f"{api(server)}/login", json={"username": "dr.smith", "password": f"guess number {index}"}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=25) as pool:
        statuses = list(pool.map(wrong_password, range(50)))
    assert statuses.count(401) == 10, statuses
    assert statuses.count(429) == 40, statuses

    # Thirty parallel wrong codes for one pending sign-in, over both instances: only the five free attempts are checked.
    other = a.create_user(practice, username="dr.jones")
    token = requests.post(f"{api(a)}/login", json={"username": "dr.jones", "password": PASSWORD}).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    started = requests.post(f"{api(a)}/me/factors/totp", json={"password": PASSWORD}, headers=auth).json()
    code = fresh_code(started["secret"])
    assert requests.post(f"{api(b)}/me/factors/{started['factorId']}/activate", json={"code": code}, headers=auth).status_code == 200
    half = requests.post(f"{api(b)}/login", json={"username": "dr.jones", "password": PASSWORD}).json()
    assert half["status"] == "second_factor_required"
    pending = {"Authorization": f"Bearer {half['token']}"}

    def wrong_code(index):
        server = a if index % 2 else b
        return requests.post(f"{api(server)}/login/verify", json={"code": "000000"}, headers=pending).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=15) as pool:
        codes = list(pool.map(wrong_code, range(30)))
    assert codes.count(401) == 5, codes
    assert codes.count(429) == 25, codes
    assert other


def test_two_instances_committing_audit_events_in_groups_keep_every_event(pair, postgres_url):
    """A burst of verifications on both instances at once: each instance commits its audit events in groups on its
    own chains, every answered request has its event, and `twofold audit verify` walks all chains intact."""
    a, b = pair
    practice = a.create_practice()
    for index in range(20):
        a.create_user(practice, username=f"staff{index:02d}", cell=None)
    key = a.cli("api-key", "create", "--practice", practice, "--name", "VPN").stdout.strip().splitlines()[-1]
    a.start()
    b.start()
    vpn = {"Authorization": f"Bearer {key}"}

    def wrong_code(index):
        server = a if index % 2 else b
        reply = requests.post(f"{api(server)}/validate", json={"username": f"staff{index % 20:02d}", "code": "000000"}, headers=vpn)
        return reply.json()["result"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(wrong_code, range(200)))
    assert results == ["reject"] * 200
    a.stop()
    b.stop()

    parts = urllib.parse.urlsplit(postgres_url)
    counted = subprocess.run(["psql", postgres_url.split("?")[0], "-At", "-c",
                              "SELECT count(*), count(DISTINCT chain_id) FROM audit_events WHERE event = 'validate.rejected'"],
                             capture_output=True, text=True, check=True, env=dict(os.environ, PGPASSWORD=parts.password or ""))
    events, chains = map(int, counted.stdout.strip().split("|"))
    assert events == 200
    assert chains >= 2, "both instances wrote chains of their own"
    verified = a.cli("audit", "verify")
    assert "intact" in verified.stdout, verified.stdout + verified.stderr
