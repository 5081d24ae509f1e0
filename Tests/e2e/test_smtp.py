"""Twofold's SMTP client against a real SMTP server (aiosmtpd) with STARTTLS and AUTH: `twofold mail test`, the
message parsed with Python's `email` package, the queue afterwards, and a server whose certificate must be refused."""
import email.header
import email.utils
import json
import time

from conftest import Twofold
from smtp_server import SMTPServer, write_unrelated_ca


def mail_list(server, to=None):
    return json.loads(server.cli("mail", "list", "--json", *(["--to", to] if to else [])).stdout)


def wait_for_row(server, predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        rows = mail_list(server)
        if rows and predicate(rows[0]):
            return rows[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"the queue did not reach the expected state: {rows}\n" + server.log_path.read_text()[-3000:])
        time.sleep(0.25)


def test_mail_test_is_delivered_over_starttls_with_auth(tmp_path):
    (tmp_path / "tf").mkdir()
    with SMTPServer(tmp_path / "smtp") as smtp:
        server = Twofold(tmp_path / "tf")
        server.env.update(smtp.env(public_url=server.base, sender="Praxis Müller 2FA <2fa@example-clinic.org>"))
        server.start()
        try:
            out = server.cli("mail", "test", "--to", "x@example.org").stdout
            assert "Queued test message" in out

            message = smtp.wait_for(lambda m: m["To"] == "x@example.org", timeout=30)
            assert smtp.envelopes[0] == ("2fa@example-clinic.org", ["x@example.org"])
            assert smtp.auth_attempts and all(ok for _, _, ok in smtp.auth_attempts)
            assert smtp.auth_attempts[0][1] == "twofold"

            # Headers, read with the policy-free decoder too (RFC 2047 words on the wire).
            raw = smtp.raw[0].decode("ascii")  # the whole message is 7-bit
            assert "\r\n" in raw and "\n" not in raw.replace("\r\n", "")
            assert all(len(line) <= 78 for line in raw.split("\r\n")), [line for line in raw.split("\r\n") if len(line) > 78]
            subject_on_wire = next(line for line in raw.split("\r\n") if line.startswith("Subject: "))
            assert "=?utf-8?" in subject_on_wire.lower()
            decoded = str(email.header.make_header(email.header.decode_header(subject_on_wire[len("Subject: "):])))
            assert decoded == "Twofold test message ✓"
            assert message["Subject"] == "Twofold test message ✓"
            name, address = email.utils.parseaddr(str(message["From"]))
            assert (name, address) == ("Praxis Müller 2FA", "2fa@example-clinic.org")
            assert message["To"] == "x@example.org"
            sent_at = email.utils.parsedate_to_datetime(message["Date"])
            assert sent_at.tzinfo is not None and abs(time.time() - sent_at.timestamp()) < 600
            assert message["Message-ID"].startswith("<") and message["Message-ID"].endswith("@example-clinic.org>")
            assert message["MIME-Version"] == "1.0"
            assert message["Auto-Submitted"] == "auto-generated"

            # multipart/alternative: text then HTML, both UTF-8.
            assert message.get_content_type() == "multipart/alternative"
            parts = list(message.iter_parts())
            assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
            assert all(p.get_content_charset() == "utf-8" for p in parts)
            assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in parts)
            assert "This is a test message from Twofold." in SMTPServer.text(message)
            assert "smtp://127.0.0.1:" in SMTPServer.text(message)
            assert "<h1" in SMTPServer.html(message) and "Test message" in SMTPServer.html(message)

            # The queue: sent, body wiped, the same Message-ID.
            row = wait_for_row(server, lambda r: r["status"] == "sent")
            assert row["to"] == "x@example.org" and row["attempts"] == 1 and row["category"] == "test"
            assert "text" not in row and "html" not in row  # no body once it is sent
            assert f"<{row['messageId']}>" == message["Message-ID"]
            assert row.get("lastError") is None
            assert len(smtp.messages) == 1
            log = server.log_path.read_text()
            assert "smtp-test-password" not in log and "This is a test message" not in log
        finally:
            server.stop()


def test_a_server_certificate_from_an_untrusted_ca_is_refused(tmp_path):
    (tmp_path / "tf").mkdir()
    with SMTPServer(tmp_path / "smtp") as smtp:
        server = Twofold(tmp_path / "tf")
        server.env.update(smtp.env(public_url=server.base))
        server.env["TWOFOLD_SMTP_CA_FILE"] = write_unrelated_ca(tmp_path / "other-ca.pem")
        server.start()
        try:
            server.cli("mail", "test", "--to", "x@example.org")
            row = wait_for_row(server, lambda r: r["attempts"] >= 1 and r["status"] == "queued" and r.get("lastError"))
            assert "TLS" in row["lastError"] and "certificate could not be verified" in row["lastError"], row["lastError"]
            assert "text" in row  # still queued, so the body is kept (sealed) for the retry
            time.sleep(1)
            assert smtp.messages == []
            assert smtp.auth_attempts == []  # the password never left over an unverified connection
        finally:
            server.stop()


def test_a_server_without_starttls_is_refused(tmp_path):
    """A plain SMTP server (no STARTTLS offered): nothing is sent, and the reason is in last_error."""
    from aiosmtpd.controller import Controller

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope.content)
            return "250 OK"

    (tmp_path / "tf").mkdir()
    port = __import__("conftest").free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        server = Twofold(tmp_path / "tf")
        server.env.update({"TWOFOLD_EMAIL_SENDER": "smtp", "TWOFOLD_SMTP_URL": f"smtp://127.0.0.1:{port}", "TWOFOLD_PUBLIC_URL": server.base,
                           "TWOFOLD_EMAIL_FROM": "2fa@example-clinic.org"})
        server.start()
        try:
            server.cli("mail", "test", "--to", "x@example.org")
            row = wait_for_row(server, lambda r: r["attempts"] >= 1 and r.get("lastError"))
            assert row["status"] == "queued"
            assert "does not offer STARTTLS" in row["lastError"]
            assert received == []
        finally:
            server.stop()
    finally:
        controller.stop()
