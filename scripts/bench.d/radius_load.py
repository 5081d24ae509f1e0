#!/usr/bin/env python3
"""RADIUS load for scripts/bench --radius: Access-Requests over UDP on 127.0.0.1, bounded in time.

  radius_load.py MODE HOST PORT SECRET DIR CONCURRENCY SECONDS [USERNAME PASSWORD]

MODE reject     code-only client: a wrong code for a different imported user each request (every one a full check)
     accept     code-only client: the current code of a different imported user each request (never a replay)
     challenge  password+code client: PASSWORD of users USERNAME000000 … USERNAME000399 in turn, answered with an
                Access-Challenge (a bcrypt check each)

Each of CONCURRENCY senders has its own socket and keeps one request outstanding. Every request carries a
Message-Authenticator (HMAC-MD5) and a hidden User-Password (RFC 2865 §5.2); every answer's Response Authenticator is
checked. Prints requests/s, p50/p99 latency and the answers by code.
"""
import asyncio
import hashlib
import hmac
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from fixtures import secrets, totp, username  # noqa: E402

CODES = {2: "accept", 3: "reject", 11: "challenge"}


def hide(password, secret, authenticator):
    padded = password + b"\0" * (-len(password) % 16 or (16 if not password else 0))
    out, previous = b"", authenticator
    for i in range(0, len(padded), 16):
        block = bytes(a ^ b for a, b in zip(padded[i:i + 16], hashlib.md5(secret + previous).digest()))
        out += block
        previous = block
    return out


def access_request(identifier, user, password, secret):
    authenticator = os.urandom(16)
    attributes = bytes([80, 18]) + b"\0" * 16
    name = user.encode()
    attributes += bytes([1, 2 + len(name)]) + name
    hidden = hide(password.encode(), secret, authenticator)
    attributes += bytes([2, 2 + len(hidden)]) + hidden
    header = struct.pack("!BBH", 1, identifier, 20 + len(attributes)) + authenticator
    mac = hmac.new(secret, header + attributes, hashlib.md5).digest()
    return header + attributes[:2] + mac + attributes[18:], authenticator


def response_ok(reply, authenticator, secret):
    expected = hashlib.md5(reply[:4] + authenticator + reply[20:] + secret).digest()
    return hmac.compare_digest(expected, reply[4:20])


class Sender(asyncio.DatagramProtocol):
    def __init__(self):
        self.waiter = None

    def datagram_received(self, data, addr):
        if self.waiter and not self.waiter.done():
            self.waiter.set_result(data)


async def sender(host, port, secret, next_request, deadline, latencies, outcomes):
    loop = asyncio.get_running_loop()
    # Sent from the address it is sent to (127.0.0.2 → 127.0.0.2): Twofold tells clients apart by source address.
    transport, protocol = await loop.create_datagram_endpoint(Sender, local_addr=(host, 0), remote_addr=(host, port), family=socket.AF_INET)
    identifier = 0
    try:
        while time.monotonic() < deadline:
            user, password = next_request()
            identifier = (identifier + 1) % 256
            datagram, authenticator = access_request(identifier, user, password, secret)
            protocol.waiter = loop.create_future()
            started = time.perf_counter()
            transport.sendto(datagram)
            try:
                reply = await asyncio.wait_for(protocol.waiter, timeout=10)
            except asyncio.TimeoutError:
                outcomes["timeout"] = outcomes.get("timeout", 0) + 1
                continue
            latencies.append(time.perf_counter() - started)
            name = CODES.get(reply[0], str(reply[0])) if response_ok(reply, authenticator, secret) else "bad-authenticator"
            outcomes[name] = outcomes.get(name, 0) + 1
    finally:
        transport.close()


def main():
    mode, host, port, secret, directory, concurrency, seconds = sys.argv[1:8]
    secret, port, concurrency, seconds = secret.encode(), int(port), int(concurrency), float(seconds)
    keys = secrets(directory) if mode in ("reject", "accept") else []
    counter = {"next": int(os.environ.get("RADIUS_LOAD_FIRST_USER", "0"))}  # accept runs take disjoint users

    def next_request():
        index = counter["next"]
        counter["next"] += 1
        if mode == "challenge":  # USERNAME is a prefix: radius000000 … radius000399
            return f"{sys.argv[8]}{index % 400:06d}", sys.argv[9]
        index %= len(keys)
        code = totp(keys[index], time.time())
        if mode == "reject":
            code = f"{(int(code) + 1) % 1_000_000:06d}"
        return username(index), code

    latencies, outcomes = [], {}

    async def run():
        deadline = time.monotonic() + seconds
        await asyncio.gather(*(sender(host, port, secret, next_request, deadline, latencies, outcomes) for _ in range(concurrency)))

    started = time.monotonic()
    asyncio.run(run())
    elapsed = time.monotonic() - started
    latencies.sort()

    def percentile(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else 0.0

    summary = " ".join(f"{name}={count}" for name, count in sorted(outcomes.items()))
    print(f"twofold radius [{mode} c{concurrency}]: {len(latencies) / elapsed:.0f} req/s p50 {percentile(0.5):.2f} ms "
          f"p99 {percentile(0.99):.2f} ms | {summary}")


if __name__ == "__main__":
    main()
