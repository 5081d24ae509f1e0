#!/usr/bin/env python3
"""Fixtures for `scripts/bench --second-step`: the second step of an API sign-in (a code after the password).

  second_step.py csv DIR COUNT HASH       login-users.csv and login-factors.csv: COUNT users (login000001 …) who share
                                          the bcrypt HASH, each with an authenticator key (login-secrets.txt)
  second_step.py tokens URL DIR PASSWORD FROM COUNT THREADS
                                          signs in users FROM..FROM+COUNT-1 with the password (POST /api/v1/login, each
                                          from its own X-Forwarded-For address so the per-address limit is not what is
                                          measured) and writes DIR/pending-FROM.tsv: one "index<TAB>token" per
                                          second_factor_required answer
  second_step.py requests DIR FROM OUT    OUT: one "token<TAB>body" per pending sign-in, the body carrying the current
                                          code of that user, computed now, just before the load
"""
import concurrent.futures
import http.client
import json
import os
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixtures import make_csv, totp  # noqa: E402


def username(index):
    return f"login{index:06d}"


def sign_in_all(url, directory, password, first, count, threads):
    parsed = urllib.parse.urlparse(url)
    local = threading.local()
    failures = []

    def connection():
        if getattr(local, "conn", None) is None:
            local.conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        return local.conn

    def one(index):
        body = json.dumps({"username": username(index), "password": password})
        # 10.0.0.0/8 addresses, one per user
        address = f"10.{(index >> 16) & 255}.{(index >> 8) & 255}.{index & 255}"
        headers = {"Content-Type": "application/json", "X-Forwarded-For": address}
        for _ in range(3):
            conn = connection()
            try:
                conn.request("POST", "/api/v1/login", body=body, headers=headers)
                response = conn.getresponse()
                answer = response.read()
                if response.status == 200:
                    reply = json.loads(answer)
                    if reply.get("status") == "second_factor_required":
                        return index, reply["token"]
                failures.append(f"{response.status} {answer[:120]!r}")
                return index, None
            except (OSError, http.client.HTTPException):
                local.conn = None
        return index, None

    started = time.time()
    tokens = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        for index, token in pool.map(one, range(first, first + count)):
            if token:
                tokens.append((index, token))
    elapsed = time.time() - started
    with open(os.path.join(directory, f"pending-{first}.tsv"), "w") as out:
        for index, token in tokens:
            out.write(f"{index}\t{token}\n")
    print(f"password steps: {len(tokens)} pending sign-ins in {elapsed:.1f} s ({len(failures)} refused"
          + (f", first: {failures[0]}" if failures else "") + ")")
    if not tokens:
        sys.exit(1)


def make_requests(directory, first, out_path):
    with open(os.path.join(directory, "login-secrets.txt")) as handle:
        keys = [line.strip() for line in handle]
    now = time.time()
    with open(os.path.join(directory, f"pending-{first}.tsv")) as pending, open(out_path, "w") as out:
        for line in pending:
            index, token = line.rstrip("\n").split("\t")
            code = totp(keys[int(index)], now)
            out.write(f"{token}\t{json.dumps({'code': code})}\n")


def main():
    mode = sys.argv[1]
    if mode == "csv":
        make_csv(sys.argv[2], int(sys.argv[3]), name=username, prefix="login-", password_hash=sys.argv[4])
    elif mode == "tokens":
        sign_in_all(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]))
    elif mode == "requests":
        make_requests(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
