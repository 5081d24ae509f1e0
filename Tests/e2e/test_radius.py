"""The RADIUS server inside `twofold serve` with real, independent RADIUS clients: FreeRADIUS's `radclient`, the Linux
PAM module `pam_radius_auth` driven by `pamtester`, and the Python library pyrad. oathtool computes every code."""
import hashlib
import hmac
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
import uuid

import pexpect
import pytest
import requests

from conftest import PASSWORD, Twofold, fresh_code

PAM_MODULE = "/lib/x86_64-linux-gnu/security/pam_radius_auth.so"
MESSAGE_AUTHENTICATOR = 80


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def radius_twofold(tmp_path):
    port = free_udp_port()
    server = Twofold(tmp_path, {"TWOFOLD_RADIUS_LISTEN": f"127.0.0.1:{port}"})
    server.radius_port = port
    return server


@pytest.fixture
def radius(tmp_path):
    server = radius_twofold(tmp_path)
    yield server
    server.stop()


def create_client(server, practice, name, address, mode=None):
    """Registers a RADIUS client with the CLI; returns (client id, generated shared secret)."""
    args = ["radius-client", "create", "--practice", practice, "--name", name, "--address", address] + (["--mode", mode] if mode else [])
    out = server.cli(*args).stdout
    client_id = re.search(r"^client_id: (\S+)$", out, re.M).group(1)
    secret = re.search(r"^secret: (\S+)$", out, re.M).group(1)
    assert len(secret) >= 32
    return client_id, secret


def api_login(server, username):
    api = f"http://127.0.0.1:{server.port}/api/v1"
    login = requests.post(f"{api}/login", json={"username": username, "password": PASSWORD}).json()
    assert login["status"] == "authenticated", login
    return api, {"Authorization": f"Bearer {login['token']}"}


def enroll_totp(server, username, auth=None):
    """Gives the user an authenticator app over the JSON API; returns (secret, the activation code with its .step)."""
    api, auth = auth or api_login(server, username)
    started = requests.post(f"{api}/me/factors/totp", json={"password": PASSWORD}, headers=auth)
    assert started.status_code == 200, started.text
    body = started.json()
    code = fresh_code(body["secret"], step_offset=-1)
    activated = requests.post(f"{api}/me/factors/{body['factorId']}/activate", json={"code": code}, headers=auth)
    assert activated.status_code == 200, activated.text
    return body["secret"], code


def enroll_sms(server, username, auth):
    api, auth = auth
    started = requests.post(f"{api}/me/factors/sms", json={"password": PASSWORD}, headers=auth)
    assert started.status_code == 200, started.text
    activated = requests.post(f"{api}/me/factors/{started.json()['factorId']}/activate", json={"code": server.latest_sms_code()}, headers=auth)
    assert activated.status_code == 200, activated.text


def wrong_code(code):
    return f"{(int(code) + 500_000) % 1_000_000:06d}"


def audit_events(server, admin, event):
    api, auth = api_login(server, admin)
    result = requests.get(f"{api}/practice/audit", params={"type": event}, headers=auth)
    assert result.status_code == 200, result.text
    return result.json()["events"]


def assert_audit_intact(server):
    verified = server.cli("audit", "verify").stdout
    assert "intact" in verified, verified


def dropped(server, reason):
    """The value of twofold_radius_dropped_total for `reason` in /metrics."""
    text = requests.get(f"http://127.0.0.1:{server.port}/metrics").text
    match = re.search(r'^twofold_radius_dropped_total\{reason="%s"\} (\d+)' % re.escape(reason), text, re.M)
    return int(match.group(1)) if match else 0


# MARK: radclient

class RadclientAnswer:
    def __init__(self, result):
        self.rc = result.returncode
        self.output = result.stdout + result.stderr
        received = re.search(r"^Received (\S+) Id \d+ .*\n((?:\t.*\n?)*)", self.output, re.M)
        self.code = received.group(1) if received else None
        self.attributes = re.findall(r"^\t([\w-]+) = (.*)$", received.group(2), re.M) if received else []

    def values(self, name):
        return [value for key, value in self.attributes if key == name]

    def text(self, name):
        return " ".join(value.strip('"') for value in self.values(name))

    def __repr__(self):
        return f"radclient rc={self.rc}:\n{self.output}"


def radclient(server, secret, *lines, command="auth", timeout=3):
    """Sends one packet (attribute lines in radclient's input syntax) with `radclient -x`."""
    assert shutil.which("radclient"), "radclient is missing: apt-get install freeradius-utils, or run scripts/test"
    result = subprocess.run(["radclient", "-x", "-r", "1", "-t", str(timeout), f"127.0.0.1:{server.radius_port}", command, secret],
                            input="".join(line + "\n" for line in lines), capture_output=True, text=True, timeout=30)
    answer = RadclientAnswer(result)
    if answer.code:
        assert answer.attributes and answer.attributes[0][0] == "Message-Authenticator", f"Message-Authenticator must come first: {answer}"
    return answer


def user_lines(username, password, *extra):
    escaped = password.replace("\\", "\\\\").replace('"', '\\"')
    return [f'User-Name = "{username}"', f'User-Password = "{escaped}"', 'NAS-Identifier = "clinic-vpn"',
            'Calling-Station-Id = "198.51.100.7"', *extra]


SIGNED = "Message-Authenticator = 0x00"


def test_radclient_accept_reject_challenge_and_message_authenticator(radius):
    practice = radius.create_practice()
    radius.create_user(practice)
    radius.create_user(practice, username="dr.jones", cell=None)
    radius.create_user(practice, username="nurse.kim", cell=None)
    radius.create_user(practice, username="office.admin", cell=None, admin=True)
    _, secret = create_client(radius, practice, "Clinic VPN", "127.0.0.1/32")
    _, gateway_secret = create_client(radius, practice, "AD gateway", "127.0.0.2/32", mode="code-only")
    radius.start()
    smith, smith_enrolled = enroll_totp(radius, "dr.smith")
    jones, jones_enrolled = enroll_totp(radius, "dr.jones")

    status = radclient(radius, secret, SIGNED, command="status")
    assert status.rc == 0 and status.code == "Access-Accept", status

    # What VPN concentrators send besides the user's name and password (FortiGate, Cisco, OpenVPN plugins), including
    # vendor-specific and unassigned attributes, and Proxy-State from a proxy in between: all fine.
    vpn_attributes = ['NAS-IP-Address = 10.0.0.1', 'NAS-Port = 7', 'NAS-Port-Type = Virtual', 'Service-Type = Framed-User',
                      'Framed-Protocol = PPP', 'Called-Station-Id = "vpn.example.org"', 'Acct-Session-Id = "81000001"',
                      'NAS-Port-Id = "tun0"', 'Event-Timestamp = 1700000000', 'Cisco-AVPair = "shell:priv-lvl=15"',
                      'Cisco-AVPair = "ip:addr-pool=vpn"', 'Fortinet-Vdom-Name = "root"', 'Connect-Info = "SSLVPN"',
                      'Tunnel-Type:1 = PPTP', 'Class = 0x010203', 'Attr-200 = 0x01',
                      'Proxy-State = 0x74776f666f6c64', 'Proxy-State = 0x0102']
    no_factor = radclient(radius, secret, *user_lines("nurse.kim", PASSWORD), *vpn_attributes, SIGNED)
    assert no_factor.code == "Access-Accept" and no_factor.text("Reply-Message") == "Welcome, Sam." and no_factor.values("Class"), no_factor
    assert no_factor.values("Proxy-State") == ["0x74776f666f6c64", "0x0102"], no_factor  # RFC 2865 §5.33: copied, in order

    radtest = subprocess.run(["radtest", "nurse.kim", PASSWORD, f"127.0.0.1:{radius.radius_port}", "0", secret],
                             capture_output=True, text=True, timeout=30)
    assert radtest.returncode == 0 and "Received Access-Accept" in radtest.stdout, radtest.stdout + radtest.stderr

    for user, password in (("dr.smith", "not the password"), ("nobody.here", PASSWORD)):
        denied = radclient(radius, secret, *user_lines(user, password), SIGNED)
        assert denied.rc != 0 and denied.code == "Access-Reject" and denied.text("Reply-Message") == "Access denied.", denied

    challenge = radclient(radius, secret, *user_lines("dr.smith", PASSWORD), SIGNED)
    assert challenge.code == "Access-Challenge", challenge
    assert "authenticator app" in challenge.text("Reply-Message"), challenge
    (state,) = challenge.values("State")
    assert re.fullmatch(r"0x[0-9a-f]{32,}", state), challenge
    code = fresh_code(smith, after_step=smith_enrolled.step)
    accepted = radclient(radius, secret, *user_lines("dr.smith", code), f"State = {state}", SIGNED)
    assert accepted.rc == 0 and accepted.code == "Access-Accept" and accepted.text("Reply-Message") == "Welcome, Sam.", accepted
    # The State is single use.
    replayed = radclient(radius, secret, *user_lines("dr.smith", code), f"State = {state}", SIGNED)
    assert replayed.code == "Access-Reject", replayed

    # A device that cannot do challenges: the password and the code in one User-Password.
    denied = radclient(radius, secret, *user_lines("dr.smith", PASSWORD + wrong_code(code)), SIGNED)
    assert denied.code == "Access-Reject" and denied.text("Reply-Message") == "Access denied.", denied
    code = fresh_code(smith, after_step=code.step, step_offset=1)
    one_field = radclient(radius, secret, *user_lines("dr.smith", PASSWORD + code), SIGNED)
    assert one_field.rc == 0 and one_field.code == "Access-Accept", one_field

    # code-only: the gateway (127.0.0.2) checked the password itself and sends the code alone.
    from_gateway = "Packet-Src-IP-Address = 127.0.0.2"
    code = fresh_code(jones, after_step=jones_enrolled.step)
    denied = radclient(radius, gateway_secret, *user_lines("dr.jones", wrong_code(code)), from_gateway, SIGNED)
    assert denied.code == "Access-Reject", denied
    denied = radclient(radius, gateway_secret, *user_lines("dr.jones", PASSWORD), from_gateway, SIGNED)
    assert denied.code == "Access-Reject", denied
    code_only = radclient(radius, gateway_secret, *user_lines("dr.jones", code), from_gateway, SIGNED)
    assert code_only.rc == 0 and code_only.code == "Access-Accept" and code_only.text("Reply-Message") == "Welcome, Sam.", code_only
    # A time step is accepted once.
    again = radclient(radius, gateway_secret, *user_lines("dr.jones", code), from_gateway, SIGNED)
    assert again.code == "Access-Reject", again

    # Silence (no answer at all) for a wrong shared secret and for a request without Message-Authenticator.
    before = dropped(radius, "bad_authenticator"), dropped(radius, "missing_authenticator")
    wrong_secret = radclient(radius, "not-the-shared-secret-of-this-vpn", *user_lines("nurse.kim", PASSWORD), SIGNED, timeout=1)
    assert wrong_secret.rc != 0 and wrong_secret.code is None and "No reply" in wrong_secret.output, wrong_secret
    unsigned = radclient(radius, secret, *user_lines("nurse.kim", PASSWORD), timeout=1)
    assert "Message-Authenticator" not in unsigned.output.split("Received")[0], unsigned
    assert unsigned.rc != 0 and unsigned.code is None and "No reply" in unsigned.output, unsigned
    unsigned_status = radclient(radius, secret, command="status", timeout=1)
    assert unsigned_status.code is None, unsigned_status
    assert dropped(radius, "bad_authenticator") > before[0] and dropped(radius, "missing_authenticator") > before[1]
    # ... and for an address no client covers, even with a registered client's secret.
    before = dropped(radius, "unknown_client")
    stranger = radclient(radius, secret, *user_lines("nurse.kim", PASSWORD), "Packet-Src-IP-Address = 127.0.0.9", SIGNED, timeout=1)
    assert stranger.rc != 0 and stranger.code is None and "No reply" in stranger.output, stranger
    assert dropped(radius, "unknown_client") > before

    accepted_events = audit_events(radius, "office.admin", "radius.accepted")
    assert {(e["details"].get("radius_client"), e["details"].get("method")) for e in accepted_events} >= {
        ("Clinic VPN", "password"), ("Clinic VPN", "totp"), ("AD gateway", "totp")}
    assert any(e["details"].get("nas_ip") == "10.0.0.1" for e in accepted_events), accepted_events
    # radtest sends no NAS-Identifier; the radclient requests above all do.
    assert sum(e["details"].get("nas_identifier") == "clinic-vpn" and e["details"].get("calling_station") == "198.51.100.7"
               for e in accepted_events) == len(accepted_events) - 1 == 4, accepted_events
    assert audit_events(radius, "office.admin", "radius.rejected")
    assert_audit_intact(radius)


# MARK: pam_radius_auth with pamtester

def add_message_authenticator(datagram, secret):
    """What pam_radius_auth 3.0 and later do themselves: a Message-Authenticator (RFC 2869 §5.14) appended to the request."""
    length = struct.unpack("!H", datagram[2:4])[0] + 18
    unsigned = datagram[:2] + struct.pack("!H", length) + datagram[4:] + bytes([MESSAGE_AUTHENTICATOR, 18]) + bytes(16)
    return unsigned[:-16] + hmac.new(secret.encode(), unsigned, hashlib.md5).digest()


class SigningRelay:
    """A UDP relay between pam_radius_auth and Twofold that only adds the Message-Authenticator; the Request
    Authenticator, the hidden User-Password, the State and every answer pass unchanged (the answers' Response
    Authenticators stay valid for the module, which checks them)."""

    def __init__(self, upstream_port, secret):
        self.upstream = ("127.0.0.1", upstream_port)
        self.secret = secret
        self.listen = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.listen.bind(("127.0.0.1", 0))
        self.port = self.listen.getsockname()[1]
        self.forward = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.forward.bind(("127.0.0.1", 0))
        self.senders = {}
        self.seen_attributes = []
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            ready, _, _ = select.select([self.listen, self.forward], [], [], 0.2)
            for sock in ready:
                data, sender = sock.recvfrom(4096)
                if sock is self.listen:
                    self.seen_attributes.append(attribute_types(data))
                    self.senders[data[1]] = sender
                    self.forward.sendto(add_message_authenticator(data, self.secret), self.upstream)
                elif data[1] in self.senders:
                    self.listen.sendto(data, self.senders[data[1]])

    def close(self):
        self.running = False
        self.thread.join(timeout=2)
        self.listen.close()
        self.forward.close()


def attribute_types(datagram):
    types, offset = [], 20
    while offset + 2 <= len(datagram) and datagram[offset + 1] >= 2:
        types.append(datagram[offset])
        offset += datagram[offset + 1]
    return types


def first_request_attributes_of_pam_radius_auth(service, conf_dir):
    """Captures the first Access-Request the installed pam_radius_auth sends, with a plain UDP socket as the server."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as capture:
        capture.bind(("127.0.0.1", 0))
        capture.settimeout(10)
        write_pam_conf(service, conf_dir, capture.getsockname()[1], "probe-secret-probe-secret", timeout=1)
        child = spawn_pamtester(service, "dr.smith")
        child.expect("Password: ")
        child.sendline(PASSWORD)
        datagram, _ = capture.recvfrom(4096)
        child.expect(pexpect.EOF)
        child.close()
    return attribute_types(datagram)


def write_pam_conf(service, conf_dir, port, secret, timeout=3):
    conf = conf_dir / "pam_radius_auth.conf"
    conf.write_text(f"127.0.0.1:{port} {secret} {timeout}\n")
    conf.chmod(0o600)
    with open(f"/etc/pam.d/{service}", "w") as f:
        f.write(f"auth required pam_radius_auth.so conf={conf} client_id=linux-jump-host\n"
                "account required pam_permit.so\n")


def spawn_pamtester(service, user):
    return pexpect.spawn("pamtester", [service, user, "authenticate"], timeout=20, encoding="utf-8")


@pytest.fixture
def pam_service(tmp_path):
    assert shutil.which("pamtester"), "pamtester is missing: apt-get install pamtester, or run scripts/test"
    assert os.path.exists(PAM_MODULE), "pam_radius_auth is missing: apt-get install libpam-radius-auth, or run scripts/test"
    if os.geteuid() != 0:
        pytest.skip("writing a PAM service file to /etc/pam.d needs root")
    service = f"twofold-test-{uuid.uuid4().hex[:12]}"
    yield service
    if os.path.exists(f"/etc/pam.d/{service}"):
        os.remove(f"/etc/pam.d/{service}")


def pam_sign_in(service, answers):
    """Runs `pamtester SERVICE dr.smith authenticate`, answering the password prompt and then the challenge;
    returns (challenge prompt, pamtester's final output)."""
    child = spawn_pamtester(service, "dr.smith")
    child.expect("Password: ")
    child.sendline(answers[0])
    child.expect(r"(Enter [^\r\n]*)")
    prompt = child.match.group(1)
    child.sendline(answers[1])
    child.expect(pexpect.EOF)
    child.close()
    return prompt, child.before


def test_pam_radius_auth_with_pamtester(radius, pam_service, tmp_path):
    practice = radius.create_practice()
    radius.create_user(practice)
    radius.create_user(practice, username="office.admin", cell=None, admin=True)
    _, secret = create_client(radius, practice, "Linux jump host", "127.0.0.1/32")
    radius.start()
    totp, enrolled = enroll_totp(radius, "dr.smith")

    sent = first_request_attributes_of_pam_radius_auth(pam_service, tmp_path)
    assert sent[:2] == [1, 2], sent  # User-Name, User-Password (PAP)
    sends_message_authenticator = MESSAGE_AUTHENTICATOR in sent

    relay = None
    if not sends_message_authenticator:
        # libpam-radius-auth 2.0.0 (Debian 12) predates Blast-RADIUS (CVE-2024-3596) and never sends a
        # Message-Authenticator; Twofold requires one and drops the request: PAM reports the server unreachable.
        write_pam_conf(pam_service, tmp_path, radius.radius_port, secret, timeout=1)
        before = dropped(radius, "missing_authenticator")
        child = spawn_pamtester(pam_service, "dr.smith")
        child.expect("Password: ")
        child.sendline(PASSWORD)
        child.expect(pexpect.EOF)
        child.close()
        assert "successfully authenticated" not in child.before and "cannot retrieve authentication info" in child.before, child.before
        assert dropped(radius, "missing_authenticator") > before
        # The rest of the module's behaviour (PAP hiding, the challenge prompt, State, the Response Authenticator) with
        # the one attribute pam_radius_auth 3.0+ adds itself supplied by a relay.
        relay = SigningRelay(radius.radius_port, secret)
        write_pam_conf(pam_service, tmp_path, relay.port, secret)
    else:
        write_pam_conf(pam_service, tmp_path, radius.radius_port, secret)
    try:
        prompt, output = pam_sign_in(pam_service, [PASSWORD, wrong_code(fresh_code(totp, after_step=enrolled.step))])
        assert "authenticator app" in prompt, prompt
        assert "successfully authenticated" not in output and "Authentication failure" in output, output

        child = spawn_pamtester(pam_service, "dr.smith")
        child.expect("Password: ")
        child.sendline("not the password")
        child.expect(pexpect.EOF)
        assert "Authentication failure" in child.before, child.before

        code = fresh_code(totp, after_step=enrolled.step)
        prompt, output = pam_sign_in(pam_service, [PASSWORD, code])
        assert "authenticator app" in prompt, prompt
        assert "pamtester: successfully authenticated" in output, output
    finally:
        if relay:
            relay.close()
    if relay:
        assert all(types[:2] == [1, 2] and MESSAGE_AUTHENTICATOR not in types for types in relay.seen_attributes)
        assert any(24 in types for types in relay.seen_attributes), "pam_radius_auth never sent the State back"

    accepted = audit_events(radius, "office.admin", "radius.accepted")
    assert len(accepted) == 1 and accepted[0]["details"]["radius_client"] == "Linux jump host"
    assert accepted[0]["details"].get("nas_identifier") == "linux-jump-host", accepted
    assert_audit_intact(radius)


# MARK: pyrad

DICTIONARY = """\
ATTRIBUTE	User-Name		1	string
ATTRIBUTE	User-Password		2	string
ATTRIBUTE	Reply-Message		18	string
ATTRIBUTE	State			24	octets
ATTRIBUTE	Class			25	octets
ATTRIBUTE	Calling-Station-Id	31	string
ATTRIBUTE	NAS-Identifier		32	string
ATTRIBUTE	Message-Authenticator	80	octets
"""


def pyrad_client(tmp_path, server, secret, source="127.0.0.1"):
    from pyrad.client import Client
    from pyrad.dictionary import Dictionary
    path = tmp_path / "dictionary"
    path.write_text(DICTIONARY)
    client = Client(server="127.0.0.1", authport=server.radius_port, secret=secret.encode(), dict=Dictionary(str(path)),
                    retries=1, timeout=3, enforce_ma=True)
    client.bind((source, 0))
    return client


def pyrad_ask(client, username, password, state=None, message_authenticator=True):
    """Sends an Access-Request; pyrad verifies the Response Authenticator and (enforce_ma) the Message-Authenticator.
    Also checks that the Message-Authenticator is the answer's first attribute. Returns (reply, reply-message text)."""
    from pyrad import packet
    request = client.CreateAuthPacket(code=packet.AccessRequest, User_Name=username, NAS_Identifier="clinic-wifi",
                                      Calling_Station_Id="02-00-00-00-00-01", message_authenticator=message_authenticator)
    request["User-Password"] = request.PwCrypt(password)
    if state is not None:
        request["State"] = state
    reply = client.SendPacket(request)
    raw = reply.raw_packet
    assert raw[20] == MESSAGE_AUTHENTICATOR and raw[21] == 18, "Message-Authenticator must be the first attribute"
    assert request.VerifyReply(reply, raw, enforce_ma=True)
    return reply, " ".join(reply.get("Reply-Message", []))


def test_pyrad_challenge_sms_and_mandatory_two_factor(radius, tmp_path):
    from pyrad import client as pyrad_client_module, packet
    practice = radius.create_practice()
    radius.create_user(practice)
    radius.create_user(practice, username="office.admin", cell=None, admin=True)
    mandatory = radius.create_practice("Lakeside Pediatrics", mandatory=True)
    radius.create_user(mandatory, username="dr.new", cell=None)
    _, secret = create_client(radius, practice, "Clinic Wi-Fi", "127.0.0.1/32")
    _, lakeside_secret = create_client(radius, mandatory, "Lakeside VPN", "127.0.0.3/32")
    radius.start()
    session = api_login(radius, "dr.smith")
    enroll_sms(radius, "dr.smith", session)
    sms_enrolled_at = time.time()
    totp, enrolled = enroll_totp(radius, "dr.smith", auth=session)
    wifi = pyrad_client(tmp_path, radius, secret)

    status = wifi.CreateAuthPacket(code=packet.StatusServer)
    assert wifi.SendPacket(status).code == packet.AccessAccept

    reply, message = pyrad_ask(wifi, "dr.smith", PASSWORD)
    assert reply.code == packet.AccessChallenge, message
    assert "authenticator app" in message and "sms" in message, message
    state = reply["State"][0]
    reply, message = pyrad_ask(wifi, "dr.smith", wrong_code(fresh_code(totp, after_step=enrolled.step)), state=state)
    assert reply.code == packet.AccessReject and message == "Access denied."

    reply, _ = pyrad_ask(wifi, "dr.smith", PASSWORD)
    assert reply.code == packet.AccessChallenge
    code = fresh_code(totp, after_step=enrolled.step)
    reply, message = pyrad_ask(wifi, "dr.smith", code, state=reply["State"][0])
    assert reply.code == packet.AccessAccept and message == "Welcome, Sam.", message
    assert reply["Class"][0].startswith(b"twofold:")

    # RFC 5080: a retransmission (the same Identifier and Request Authenticator from the same port) gets the same
    # answer, byte for byte, and is not decided (nor audited) twice.
    code = fresh_code(totp, after_step=code.step, step_offset=1)
    request = wifi.CreateAuthPacket(code=packet.AccessRequest, User_Name="dr.smith")
    request["User-Password"] = request.PwCrypt(PASSWORD + code)
    datagram = request.RequestPacket()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as nas:
        nas.bind(("127.0.0.1", 0))
        nas.settimeout(3)
        nas.sendto(datagram, ("127.0.0.1", radius.radius_port))
        first = nas.recv(4096)
        nas.sendto(datagram, ("127.0.0.1", radius.radius_port))
        second = nas.recv(4096)
    assert first == second
    reply = request.CreateReply(packet=first)
    assert request.VerifyReply(reply, first, enforce_ma=True) and reply.code == packet.AccessAccept

    # A Message-Authenticator that does not match the packet: silence.
    request = wifi.CreateAuthPacket(code=packet.AccessRequest, User_Name="dr.smith")
    request["User-Password"] = request.PwCrypt(PASSWORD)
    datagram = bytearray(request.RequestPacket())
    assert attribute_types(bytes(datagram))[0] == MESSAGE_AUTHENTICATOR  # pyrad puts it first
    datagram[22] ^= 0x01
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as nas:
        nas.bind(("127.0.0.1", 0))
        nas.settimeout(1)
        nas.sendto(bytes(datagram), ("127.0.0.1", radius.radius_port))
        with pytest.raises(socket.timeout):
            nas.recv(4096)

    # Without Message-Authenticator Twofold stays silent.
    with pytest.raises(pyrad_client_module.Timeout):
        short = pyrad_client(tmp_path, radius, secret)
        short.timeout = 1
        pyrad_ask(short, "dr.smith", PASSWORD, message_authenticator=False)

    # A practice that requires 2FA: a user without a method is told to go to the web first.
    lakeside = pyrad_client(tmp_path, radius, lakeside_secret, source="127.0.0.3")
    reply, message = pyrad_ask(lakeside, "dr.new", PASSWORD)
    assert reply.code == packet.AccessReject and "web browser" in message, message
    reply, message = pyrad_ask(lakeside, "dr.smith", PASSWORD)  # another practice's user is unknown here
    assert reply.code == packet.AccessReject and message == "Access denied."

    # "sms" instead of a code: a text message, a second challenge, and the texted code signs in. One text per
    # 30 seconds per user: wait out the one the enrollment sent.
    time.sleep(max(0.0, sms_enrolled_at + 31 - time.time()))
    reply, _ = pyrad_ask(wifi, "dr.smith", PASSWORD)
    assert reply.code == packet.AccessChallenge
    reply, message = pyrad_ask(wifi, "dr.smith", "sms", state=reply["State"][0])
    assert reply.code == packet.AccessChallenge and "•••4567" in message, message
    texted = radius.latest_sms_code()
    reply, message = pyrad_ask(wifi, "dr.smith", texted, state=reply["State"][0])
    assert reply.code == packet.AccessAccept and message == "Welcome, Sam.", message

    methods = sorted(e["details"].get("method") for e in audit_events(radius, "office.admin", "radius.accepted"))
    assert methods == ["sms", "totp", "totp"], methods
    assert_audit_intact(radius)


def test_radclient_a_mistyped_password_with_a_code_appended_counts_as_one_guess(radius):
    """One Access-Request is one password guess. Today the server reserves a password attempt for every way it tries
    to split User-Password into password + code (the whole input, then the last 8, 7 and 6 digits), so a password
    typed wrong with an 8-digit code appended spends 4 of the 10 guesses per 15 minutes, and three such typos lock the
    account (RADIUS and web share the allowance) for a quarter of an hour."""
    practice = radius.create_practice()
    radius.create_user(practice, username="nurse.kim", cell=None)
    _, secret = create_client(radius, practice, "Clinic VPN", "127.0.0.1/32")
    radius.start()
    for _ in range(3):
        denied = radclient(radius, secret, *user_lines("nurse.kim", "correct horse batterx" + "12345678"), SIGNED)
        assert denied.code == "Access-Reject", denied
    accepted = radclient(radius, secret, *user_lines("nurse.kim", PASSWORD), SIGNED)
    assert accepted.code == "Access-Accept", f"3 wrong passwords (of 10 allowed) locked the account: {accepted}"


def test_pyrad_push_approved_by_the_reference_authenticator(radius, tmp_path):
    """`push` at the challenge: twofold-authenticator (the phone, in its own processes) sees which client and address
    ask, approves without a number (a VPN cannot show one), and the held Access-Request is accepted."""
    import concurrent.futures
    from pyrad import packet
    from test_push_and_step_up import Phone, enroll_app_and_phone
    practice = radius.create_practice()
    radius.create_user(practice)
    _, secret = create_client(radius, practice, "Clinic VPN", "127.0.0.1/32")
    radius.start()
    phone = Phone(tmp_path)
    enroll_app_and_phone(radius, phone)
    vpn = pyrad_client(tmp_path, radius, secret)
    reply, message = pyrad_ask(vpn, "dr.smith", PASSWORD)
    assert reply.code == packet.AccessChallenge and "type push" in message, message
    waiting = pyrad_client(tmp_path, radius, secret)
    waiting.timeout = 30
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        answer = pool.submit(pyrad_ask, waiting, "dr.smith", "push", reply["State"][0])
        pending = ""
        deadline = time.time() + 20
        while "Clinic VPN" not in pending and time.time() < deadline:
            time.sleep(0.3)
            pending = phone.run("push", "pending")
        assert "Clinic VPN" in pending and "02-00-00-00-00-01" in pending, pending
        challenge = re.search(r"^([0-9A-F-]{36})", pending, re.M).group(1)
        assert "Approved." in phone.run("push", "approve", challenge)
        accepted, message = answer.result(timeout=30)
    assert accepted.code == packet.AccessAccept and message == "Welcome, Sam.", message
    assert_audit_intact(radius)
