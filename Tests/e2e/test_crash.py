"""`kill -9` under load loses nothing: every code Twofold answered `accept` for stays spent after a restart, every
accepted verification has its audit event, and `twofold audit verify` passes — on SQLite and on PostgreSQL.

A verification answers only after the transaction holding its effects (the time-step claim, the failure counter,
the audit event) has committed, so a process killed at any instant leaves either all of a verification or none of
it that a client was told about."""
import base64
import concurrent.futures
import os
import secrets
import signal
import sqlite3
import subprocess
import threading
import time
import urllib.parse

import pyotp
import pytest
import requests

from conftest import Twofold

USERS = 240
KILL_AFTER_ACCEPTS = 60


@pytest.fixture(params=["sqlite", "postgres"])
def server(request, tmp_path):
    env = {}
    database = None
    if request.param == "postgres":
        base = os.environ.get("TWOFOLD_TEST_POSTGRES_URL")
        assert base, "TWOFOLD_TEST_POSTGRES_URL is not set: run scripts/test, which starts a throwaway PostgreSQL"
        parts = urllib.parse.urlsplit(base)
        name = "crash_" + secrets.token_hex(6)
        database = (parts, name)
        psql_env = dict(os.environ, PGPASSWORD=parts.password or "")
        psql = ["psql", "-h", parts.hostname, "-p", str(parts.port), "-U", parts.username, "-d", parts.path.lstrip("/"), "-q"]
        subprocess.run(psql + ["-c", f"CREATE DATABASE {name}"], check=True, env=psql_env)
        env = {"DATABASE_URL": urllib.parse.urlunsplit(parts._replace(path="/" + name)),
               "TWOFOLD_SECRET_KEY": base64.b64encode(secrets.token_bytes(32)).decode()}
    twofold = Twofold(tmp_path, env)
    twofold.kind = request.param
    yield twofold
    twofold.stop()
    if database:
        parts, name = database
        subprocess.run(["psql", "-h", parts.hostname, "-p", str(parts.port), "-U", parts.username, "-d", parts.path.lstrip("/"), "-q",
                        "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False, env=dict(os.environ, PGPASSWORD=parts.password or ""))


def seed(server):
    practice = server.create_practice()
    keys = {}
    users, factors = server.data_dir / "users.csv", server.data_dir / "factors.csv"
    with open(users, "w") as u, open(factors, "w") as f:
        u.write("username,first_name,last_name,email,cell,role\n")
        f.write("username,secret,digits,algorithm,period,nickname\n")
        for index in range(USERS):
            name = f"crash{index:04d}"
            keys[name] = pyotp.random_base32()
            u.write(f"{name},Crash,User{index},{name}@example.org,,staff\n")
            f.write(f"{name},{keys[name]},6,SHA1,30,Phone\n")
    server.cli("import", "users", "--practice", practice, str(users))
    server.cli("import", "factors", "--practice", practice, str(factors))
    api_key = server.cli("api-key", "create", "--practice", practice, "--name", "VPN").stdout.strip().splitlines()[-1]
    return keys, api_key


def codes_for_one_window(keys):
    """Every user's code of one time step, computed when at least 40 seconds of the server's ±1-step window remain,
    so the load, the kill, the restart and the replays all happen while these codes would still be valid."""
    while True:
        now = time.time()
        if 30 - now % 30 >= 12:
            return {name: pyotp.TOTP(secret).at(now) for name, secret in keys.items()}
        time.sleep(30 - now % 30 + 0.05)


def validate(server, api_key, username, code):
    reply = requests.post(f"http://127.0.0.1:{server.port}/api/v1/validate", json={"username": username, "code": code},
                          headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    reply.raise_for_status()
    return reply.json()["result"]


def accepted_events(server):
    """The users with a `validate.accepted` event in the log."""
    if server.kind == "sqlite":
        with sqlite3.connect(server.data_dir / "twofold.sqlite") as db:
            rows = db.execute("SELECT u.username FROM audit_events e JOIN users u ON u.id = e.subject_id "
                              "WHERE e.event = 'validate.accepted'").fetchall()
        return {row[0] for row in rows}
    url = server.env["DATABASE_URL"]
    parts = urllib.parse.urlsplit(url)
    result = subprocess.run(["psql", url.split("?")[0], "-At", "-c",
                             "SELECT u.username FROM audit_events e JOIN users u ON u.id = e.subject_id WHERE e.event = 'validate.accepted'"],
                            capture_output=True, text=True, check=True, env=dict(os.environ, PGPASSWORD=parts.password or ""))
    return set(result.stdout.split())


def test_kill_9_under_load_replays_nothing_and_loses_no_audit_event(server):
    keys, api_key = seed(server)
    server.start()
    codes = codes_for_one_window(keys)
    accepted, lock = set(), threading.Lock()
    killed = threading.Event()

    def submit(username):
        try:
            result = validate(server, api_key, username, codes[username])
        except requests.RequestException:
            return  # in flight when the process died: the client was told nothing
        if result == "accept":
            with lock:
                accepted.add(username)
                if len(accepted) >= KILL_AFTER_ACCEPTS and not killed.is_set():
                    killed.set()
                    os.kill(server.process.pid, signal.SIGKILL)

    # The last few users are left out of the load, to show the restarted server still accepts a fresh code.
    load, spare = list(codes)[:-4], list(codes)[-4:]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(submit, load))
    assert killed.is_set(), f"the load ended before {KILL_AFTER_ACCEPTS} accepts ({len(accepted)})"
    server.process.wait(timeout=10)
    assert server.process.returncode == -signal.SIGKILL
    assert len(accepted) < len(load), "every request was answered: the kill did not interrupt the load"

    server.start()
    # No accepted code is accepted again.
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        replays = dict(zip(accepted, pool.map(lambda name: validate(server, api_key, name, codes[name]), accepted)))
    assert set(replays.values()) == {"reject"}, {name: result for name, result in replays.items() if result != "reject"}
    # The restarted server still accepts a code it has not seen.
    assert validate(server, api_key, spare[0], codes[spare[0]]) == "accept"
    server.stop()

    # Every verification a client was told about has its audit event, and the log verifies.
    assert accepted <= accepted_events(server)
    verified = server.cli("audit", "verify")
    assert "intact" in verified.stdout, verified.stdout + verified.stderr
