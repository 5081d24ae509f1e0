"""Shared fixtures for Twofold's end-to-end tests: a real `twofold serve` process, the CLI, oathtool, a QR decoder
and headless Chromium."""
import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = ROOT / ".build" / "debug" / "twofold"
ARTIFACTS = pathlib.Path(__file__).resolve().parent / "artifacts"
PASSWORD = "correct horse battery"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Twofold:
    """One server process on its own data directory, plus the CLI pointed at the same database."""

    def __init__(self, data_dir, extra_env=None):
        self.data_dir = data_dir
        self.port = free_port()
        self.base = f"http://localhost:{self.port}"
        self.env = dict(os.environ)
        self.env.pop("DATABASE_URL", None)
        self.env.update({"TWOFOLD_DATA_DIR": str(data_dir), "TWOFOLD_BCRYPT_COST": "6", "TWOFOLD_ALLOW_WEAK_BCRYPT": "1", "TWOFOLD_ORIGINS": self.base})
        self.env.update(extra_env or {})
        self.log_path = data_dir / "server.log"
        self.process = None

    def cli(self, *args, stdin=None, check=True):
        result = subprocess.run([str(BINARY), *args], input=stdin, capture_output=True, text=True, env=self.env, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"twofold {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def start(self):
        log = open(self.log_path, "w")
        self.process = subprocess.Popen([str(BINARY), "serve", "--hostname", "127.0.0.1", "--port", str(self.port)],
                                        stdout=log, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None:
                raise AssertionError("twofold serve exited:\n" + self.log_path.read_text())
            time.sleep(0.2)
        raise AssertionError("twofold serve did not become healthy:\n" + self.log_path.read_text())

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def create_practice(self, name="Riverside Family Medicine", mandatory=False):
        args = ["practice", "create", "--name", name] + (["--mandatory-2fa"] if mandatory else [])
        return self.cli(*args).stdout.strip().splitlines()[-1]

    def create_user(self, practice, username="dr.smith", cell="+15551234567", admin=False):
        args = ["user", "create", "--practice", practice, "--username", username, "--first-name", "Sam", "--last-name", "Smith",
                "--email", f"{username}@example.org", "--role", "provider", "--password-stdin"]
        if cell:
            args += ["--cell", cell]
        if admin:
            args += ["--manage-accounts"]
        return self.cli(*args, stdin=PASSWORD + "\n").stdout.strip().splitlines()[-1]

    def outbox(self, to=None):
        args = ["outbox", "list", "--json"] + (["--to", to] if to else [])
        return json.loads(self.cli(*args).stdout)

    def latest_sms_code(self, to="+15551234567"):
        messages = self.outbox(to)
        assert messages, "no text message in the outbox"
        return re.match(r"(\d+)", messages[0]["body"]).group(1)


@pytest.fixture
def twofold(tmp_path):
    server = Twofold(tmp_path)
    yield server
    server.stop()


TOTP_PERIOD = 30


def oathtool_code(secret, offset=0, digits=6):
    """The code an authenticator app shows `offset` seconds from now, from the independent oathtool.
    Tests that submit a code use `fresh_code`, which does not depend on where in a time step they run."""
    assert shutil.which("oathtool"), "oathtool is missing: apt-get install oathtool, or run scripts/test"
    when = int(time.time()) + offset
    result = subprocess.run(["oathtool", "--totp", "-b", "-d", str(digits), "-N", f"@{when}", secret], capture_output=True, text=True, check=True)
    return result.stdout.strip()


class TOTPCode(str):
    """A code (use it as the string it is) that knows its time step, to pass as `after_step` to the next `fresh_code`."""

    def __new__(cls, code, step):
        value = super().__new__(cls, code)
        value.step = step
        return value


def fresh_code(secret, after_step=None, step_offset=0, digits=6, min_remaining=6.0):
    """The code to submit right now, for a time step that no earlier code for `secret` used.

    Waits while fewer than `min_remaining` seconds are left in the current 30-second step, so the submission cannot
    cross into a step where the server's ±1-step window no longer holds the code, and until the code's step lies after
    `after_step` (the step of the code the server last accepted for this secret: it refuses replays). `step_offset`
    -1 (the previous step) or 1 (the next one) stays inside the window and leaves the current step for a later code,
    where a test would otherwise wait up to 30 seconds for a new step. Call it immediately before submitting."""
    assert step_offset in (-1, 0, 1)
    while True:
        now = time.time()
        remaining = TOTP_PERIOD - now % TOTP_PERIOD
        step = int(now // TOTP_PERIOD) + step_offset
        if remaining >= min_remaining and (after_step is None or step > after_step):
            when = step * TOTP_PERIOD
            result = subprocess.run(["oathtool", "--totp", "-b", "-d", str(digits), "-N", f"@{when}", secret], capture_output=True, text=True, check=True)
            return TOTPCode(result.stdout.strip(), step)
        time.sleep(remaining + 0.05)


def wait_for_fresh_step(after_step, min_remaining=6.0):
    """Sleeps until a step after `after_step` has begun with at least `min_remaining` seconds left, for codes that
    another program (the reference authenticator) computes; returns that step."""
    while True:
        now = time.time()
        remaining = TOTP_PERIOD - now % TOTP_PERIOD
        if remaining >= min_remaining and int(now // TOTP_PERIOD) > after_step:
            return int(now // TOTP_PERIOD)
        time.sleep(remaining + 0.05)


def decode_qr_png(path):
    import zxingcpp
    from PIL import Image
    results = zxingcpp.read_barcodes(Image.open(path))
    assert results, f"no QR code found in {path}"
    return results[0].text


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1100,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def artifacts(request):
    directory = ARTIFACTS / request.node.name
    directory.mkdir(parents=True, exist_ok=True)
    return directory
