"""A real SMTP server for end-to-end tests: aiosmtpd on 127.0.0.1 with STARTTLS (a test CA and server certificate
made here with `cryptography`) and AUTH required, collecting every message it receives.

Use it in a test (any test that needs mail: forgot password, invitations, notifications):

    from conftest import Twofold
    from smtp_server import SMTPServer

    def test_something(tmp_path):
        with SMTPServer(tmp_path / "smtp") as smtp:                 # or smtp = SMTPServer(dir).start() ... smtp.stop()
            server = Twofold(tmp_path / "tf")                       # (make the directories first, e.g. tmp_path / "tf" .mkdir())
            server.env.update(smtp.env(public_url=server.base))     # TWOFOLD_EMAIL_SENDER=smtp, TWOFOLD_SMTP_URL, _CA_FILE, _FROM, _PUBLIC_URL
            server.start()
            ...  # do something that sends mail
            message = smtp.wait_for(lambda m: m["To"] == "dr.smith@example.org", timeout=30)
            link = smtp.find_link(message, "/reset-password")       # the first link in the text part containing that text
            ...
            server.stop()

- `smtp.messages` is the list of received `email.message.EmailMessage` (parsed with `email.policy.default`, so
  `m["Subject"]` is already decoded from RFC 2047); `smtp.envelopes` the matching (mail_from, rcpt_tos) pairs.
- `smtp.wait_for(predicate, timeout)` polls until a message matches and returns it, or fails the test with a list of
  what did arrive. `smtp.text(message)` / `smtp.html(message)` return the decoded parts.
- `SMTPServer(dir, username=..., password=..., require_auth=True)`; `smtp.ca_file` is the PEM of its CA.
  `write_unrelated_ca(path)` writes another CA, for tests of a server whose certificate Twofold must refuse.
- The server runs in a thread of the test process and is stopped by `stop()` (or the `with` block).
"""
import datetime
import email
import email.policy
import ipaddress
import pathlib
import re
import socket
import ssl
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ca(common_name):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def write_unrelated_ca(path):
    """Writes the certificate of a fresh CA that signed nothing (a wrong TWOFOLD_SMTP_CA_FILE); returns the path."""
    _, cert = _ca("Unrelated Test CA")
    path = pathlib.Path(path)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


class _Collector:
    def __init__(self, owner):
        self.owner = owner

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        with self.owner._lock:
            self.owner.messages.append(message)
            self.owner.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self.owner.raw.append(envelope.original_content or envelope.content)
        return "250 2.0.0 Message accepted for delivery"


class SMTPServer:
    """aiosmtpd with STARTTLS required and AUTH (PLAIN/LOGIN) required, on 127.0.0.1. See the module docstring."""

    def __init__(self, directory, username="twofold", password="smtp-test-password", require_auth=True):
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.username, self.password, self.require_auth = username, password, require_auth
        self.port = None
        self.messages = []
        self.envelopes = []
        self.raw = []
        self.auth_attempts = []
        self._lock = threading.Lock()
        self._controller = None
        self.ca_file = str(self.directory / "smtp-ca.pem")

    def _certificates(self):
        ca_key, ca = _ca("Twofold Test SMTP CA")
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])).issuer_name(ca.subject)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
                .sign(ca_key, hashes.SHA256()))
        pathlib.Path(self.ca_file).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        cert_file, key_file = self.directory / "smtp-server.pem", self.directory / "smtp-server.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert_file), str(key_file))
        return context

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.username and auth_data.password.decode() == self.password
        with self._lock:
            self.auth_attempts.append((mechanism, auth_data.login.decode() if isinstance(auth_data, LoginPassword) else None, ok))
        return AuthResult(success=ok)

    def start(self):
        context = self._certificates()
        self.port = _free_port()
        self._controller = Controller(_Collector(self), hostname="127.0.0.1", port=self.port, server_hostname="smtp.test",
                                      tls_context=context, require_starttls=True, authenticator=self._authenticate,
                                      auth_required=self.require_auth, auth_require_tls=True)
        self._controller.start()
        return self

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        return f"smtp://{self.username}:{self.password}@127.0.0.1:{self.port}"

    def env(self, public_url, sender="Riverside 2FA <2fa@example-clinic.org>"):
        """The environment for a Twofold process (server and CLI) that sends through this server."""
        return {"TWOFOLD_EMAIL_SENDER": "smtp", "TWOFOLD_SMTP_URL": self.url, "TWOFOLD_SMTP_CA_FILE": self.ca_file,
                "TWOFOLD_EMAIL_FROM": sender, "TWOFOLD_PUBLIC_URL": public_url}

    def wait_for(self, predicate=lambda message: True, timeout=30.0):
        """The first received message for which `predicate(message)` is true; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = [m for m in self.messages if predicate(m)]
            if found:
                return found[0]
            if time.monotonic() > deadline:
                with self._lock:
                    summary = [(m["To"], m["Subject"]) for m in self.messages]
                raise AssertionError(f"no matching message within {timeout} s; received: {summary}")
            time.sleep(0.1)

    @staticmethod
    def text(message):
        return message.get_body(preferencelist=("plain",)).get_content()

    @staticmethod
    def html(message):
        return message.get_body(preferencelist=("html",)).get_content()

    @classmethod
    def find_link(cls, message, contains=""):
        """The first http(s) link in the text part that contains `contains`."""
        for link in re.findall(r"https?://\S+", cls.text(message)):
            if contains in link:
                return link.rstrip(".,)")
        raise AssertionError(f"no link containing {contains!r} in: {cls.text(message)}")
