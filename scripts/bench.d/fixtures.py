#!/usr/bin/env python3
"""Bench fixtures for scripts/bench.

  fixtures.py csv DIR N           users.csv, factors.csv and secrets.txt for N users (bench000001 …)
  fixtures.py accept DIR OUT FROM COUNT   OUT: bodies with the current code of users FROM..FROM+COUNT-1 (each used once)
  fixtures.py reject DIR OUT COUNT        OUT: bodies with a wrong code, spread over COUNT users (every one a full check)
"""
import base64
import hashlib
import hmac
import json
import os
import struct
import sys
import time


def totp(secret_b32, at):
    key = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = (struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{value:06d}"


def username(index):
    return f"bench{index:06d}"


def make_csv(directory, count, name=username, prefix="", password_hash=None):
    """PREFIXusers.csv, PREFIXfactors.csv and PREFIXsecrets.txt for COUNT users called name(index), each with an
    authenticator key; with password_hash, the users share that bcrypt hash."""
    with open(os.path.join(directory, f"{prefix}users.csv"), "w") as users, \
            open(os.path.join(directory, f"{prefix}factors.csv"), "w") as factors, \
            open(os.path.join(directory, f"{prefix}secrets.txt"), "w") as secrets:
        users.write("username,first_name,last_name,email,cell,role" + (",password_hash" if password_hash else "") + "\n")
        factors.write("username,secret,digits,algorithm,period,nickname\n")
        for index in range(count):
            secret = base64.b32encode(os.urandom(20)).decode().rstrip("=")
            users.write(f"{name(index)},Bench,User{index},{name(index)}@example.org,,staff" + (f",{password_hash}" if password_hash else "") + "\n")
            factors.write(f"{name(index)},{secret},6,SHA1,30,Bench app\n")
            secrets.write(secret + "\n")


def secrets(directory):
    with open(os.path.join(directory, "secrets.txt")) as handle:
        return [line.strip() for line in handle]


def main():
    mode = sys.argv[1]
    if mode == "csv":
        make_csv(sys.argv[2], int(sys.argv[3]))
    elif mode == "accept":
        keys = secrets(sys.argv[2])
        start, count = int(sys.argv[4]), int(sys.argv[5])
        now = time.time()
        with open(sys.argv[3], "w") as out:
            for index in range(start, min(start + count, len(keys))):
                out.write(json.dumps({"username": username(index), "code": totp(keys[index], now)}) + "\n")
    elif mode == "reject":
        count = int(sys.argv[4])
        with open(sys.argv[3], "w") as out:
            for index in range(count):
                out.write(json.dumps({"username": username(index), "code": "000000"}) + "\n")


if __name__ == "__main__":
    main()
