#!/usr/bin/env python3
"""Background sign-in load for scripts/bench: RATE password sign-ins per second (bcrypt on the server) for SECONDS.

    signins.py URL USERNAME PASSWORD RATE SECONDS
"""
import sys
import threading
import time
import urllib.request


def sign_in(url, body):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        urllib.request.urlopen(request, timeout=10).read()
    except Exception:
        pass


def main():
    url, username, password, rate, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
    body = ('{"username": "%s", "password": "%s"}' % (username, password)).encode()
    deadline = time.time() + seconds
    sent = 0
    while time.time() < deadline:
        threading.Thread(target=sign_in, args=(url + "/api/v1/login", body), daemon=True).start()
        sent += 1
        time.sleep(1 / rate)
    print(f"signins sent={sent}")


if __name__ == "__main__":
    main()
