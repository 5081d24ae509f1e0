"""Security notifications end to end (headless Chromium, a real SMTP server): an administrator turns a staff member's
2FA off on the staff member's page, and the staff member's notification arrives over SMTP (STARTTLS, AUTH) saying what
happened, when, from which address and browser, what to do if it was not them, with its one link to their security
settings at TWOFOLD_PUBLIC_URL. Parsed with Python's `email` package."""
import datetime
import email.utils
import json
import re
import time
from html.parser import HTMLParser

import requests
from selenium.webdriver.common.by import By

from conftest import PASSWORD, Twofold
from smtp_server import SMTPServer
from test_browser_admin import enroll_with_app
from test_browser_signin import click_through, shot, sign_in_with_password, sign_out, text

HEADLINE = "An administrator turned off two-factor authentication for your account"


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links.append(dict(attrs).get("href"))


def queue(server):
    return json.loads(server.cli("mail", "list", "--json").stdout)


def test_administrator_turning_two_factor_off_notifies_the_user(tmp_path, browser, artifacts):
    (tmp_path / "tf").mkdir()
    with SMTPServer(tmp_path / "smtp") as smtp:
        server = Twofold(tmp_path / "tf")
        server.env.update(smtp.env(public_url=server.base))
        try:
            practice = server.create_practice("Riverside Family Medicine")
            server.create_user(practice, username="office.admin", cell="+15550000001", admin=True)
            server.create_user(practice, username="jason", cell="+15550000002")
            server.start()
            base = server.base

            # Jason turns 2FA on himself: he is told a method was added.
            sign_in_with_password(browser, base, "jason")
            browser.get(f"{base}/account/security/setup")
            enroll_with_app(browser)
            assert "Two-factor authentication is on" in text(browser)
            sign_out(browser)
            added = smtp.wait_for(lambda m: m["To"] == "jason@example.org" and m["Subject"] == "A sign-in method was added to your account")
            assert "Authenticator app" in SMTPServer.text(added)

            # The administrator turns it off on Jason's page.
            sign_in_with_password(browser, base, "office.admin")
            browser.get(f"{base}/admin/staff?q=jason")
            click_through(browser, browser.find_element(By.LINK_TEXT, "jason"))
            browser.find_element(By.ID, "adminPassword").send_keys(PASSWORD)
            browser.execute_script("window.confirm = () => true")
            before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
            click_through(browser, "disable-two-factor")
            after = datetime.datetime.now(datetime.timezone.utc)
            shot(browser, artifacts, "01-disabled")
            assert "Two-factor authentication was disabled" in text(browser)
            agent = browser.execute_script("return navigator.userAgent")

            message = smtp.wait_for(lambda m: m["To"] == "jason@example.org" and m["Subject"] == HEADLINE, timeout=30)
            # Headers of a real message.
            assert email.utils.parseaddr(str(message["From"]))[1] == "2fa@example-clinic.org"
            assert message["Message-ID"].endswith("@example-clinic.org>")
            sent = email.utils.parsedate_to_datetime(message["Date"])
            assert sent.tzinfo is not None and abs(sent.timestamp() - time.time()) < 600
            assert message.get_content_type() == "multipart/alternative"
            assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]

            body = SMTPServer.text(message)
            lines = [line.rstrip("\r") for line in body.splitlines()]
            assert lines[0] == "Hello Sam,", body
            assert f"What happened: {HEADLINE}" in lines, body
            assert any(line.startswith("Sam Smith, an administrator of Riverside Family Medicine, turned off two-factor authentication")
                       for line in lines), body
            # When: the pages' wording in UTC, then the exact instant in ISO 8601, within the click.
            when = next(line for line in lines if line.startswith("When: "))
            assert " UTC (" in when and when.endswith("Z)"), when
            instant = datetime.datetime.fromisoformat(re.search(r"\((\S+)\)$", when).group(1).replace("Z", "+00:00"))
            assert before <= instant <= after, (before, instant, after)
            assert "From address: 127.0.0.1" in lines, body
            assert "Browser: Chrome on Linux" in lines, body
            assert f"Browser details: {agent}" in lines, body
            assert "By: Sam Smith, an administrator of Riverside Family Medicine" in lines, body
            assert "If this was not you: someone may have your password." in body
            assert SMTPServer.find_link(message, "/account") == f"{base}/account/security"
            assert f"Review your security settings: {base}/account/security" in lines

            # The HTML part: the same facts; its only link is the security page at the public address.
            html = SMTPServer.html(message)
            assert "Riverside Family Medicine" in html and HEADLINE in html and "127.0.0.1" in html
            parser = Links()
            parser.feed(html)
            assert set(parser.links) == {f"{base}/account/security"}, parser.links
            assert ">Review your security settings</a>" in html

            # The link is this server's security page (signed out, it asks to sign in first).
            followed = requests.get(f"{base}/account/security", allow_redirects=False, timeout=10)
            assert followed.status_code in (302, 303) and "/login" in followed.headers["Location"]

            # One message per event, none to the administrator; the queue shows both sent.
            deadline = time.monotonic() + 20
            while True:
                rows = [r for r in queue(server) if r["to"] == "jason@example.org"]
                if all(r["status"] == "sent" for r in rows) or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
            assert sorted(r["category"] for r in rows) == ["notification.admin_two_factor_disabled", "notification.factor_added"]
            assert all(r["status"] == "sent" for r in rows), rows
            assert [m["Subject"] for m in smtp.messages if m["To"] == "jason@example.org"].count(HEADLINE) == 1
            assert len([m for m in smtp.messages if m["To"] == "jason@example.org"]) == 2
            assert not [m for m in smtp.messages if m["To"] == "office.admin@example.org"]
        finally:
            server.stop()
