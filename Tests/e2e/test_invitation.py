"""An invitation in a real browser (headless Chromium): the administrator of a practice that requires 2FA adds a staff
member on the "New staff member" page with "Send an invitation by email"; the staff list shows them as Invited; the
message is read from a real SMTP server (aiosmtpd with STARTTLS and AUTH, Tests/e2e/smtp_server.py) and parsed with
Python's `email` package; the staff member opens its link, chooses a password, is led straight to enroll an authenticator app
(enrolled with an oathtool code computed from the key shown on the page) and lands signed in. The link works once."""
import re

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from conftest import PASSWORD
from smtp_server import SMTPServer
from test_browser_admin import enroll_with_app, staff_row
from test_browser_signin import click_through, shot, sign_in_with_password, sign_out, text

STAFF_PASSWORD = "meadow lantern copper"
LINK = r"https?://\S+/invite/[A-Za-z0-9_-]{43}"


def invitation_from_smtp(smtp, address):
    """The invitation the SMTP server received for `address`: its link, text and HTML parts, and the parsed message."""
    message = smtp.wait_for(lambda m: m["To"] == address and "invit" in m["Subject"].lower(), timeout=60)
    assert message.get_content_type() == "multipart/alternative"
    text, html = SMTPServer.text(message), SMTPServer.html(message)
    link = re.search(LINK, text).group(0)
    assert f'href="{link}"' in html, "the HTML part carries the same link"
    return link, text, html, message


def test_an_invited_staff_member_chooses_a_password_and_enrolls(twofold, browser, artifacts, tmp_path):
    smtp = SMTPServer(tmp_path / "smtp").start()
    try:
        run(twofold, smtp, browser, artifacts)
    finally:
        smtp.stop()


def run(twofold, smtp, browser, artifacts):
    twofold.env.update(smtp.env(public_url=twofold.base))
    practice = twofold.create_practice("Riverside Family Medicine", mandatory=True)
    twofold.create_user(practice, username="office.admin", cell="+15550000001", admin=True)
    twofold.start()
    base = twofold.base

    # The administrator (who enrolls first: the practice requires 2FA) adds Nina with an invitation by email.
    sign_in_with_password(browser, base, "office.admin")
    assert "/account/security/setup" in browser.current_url
    enroll_with_app(browser)
    click_through(browser, "admin-link")
    click_through(browser, "add-staff")
    assert browser.find_element(By.ID, "delivery-invite").is_selected(), "an invitation is the default"
    browser.find_element(By.ID, "username").send_keys("nina.new")
    browser.find_element(By.ID, "firstName").send_keys("Nina")
    browser.find_element(By.ID, "lastName").send_keys("Newton")
    browser.find_element(By.ID, "email").send_keys("nina@example.org")
    browser.find_element(By.ID, "cellPhone").send_keys("+15550000007")
    Select(browser.find_element(By.ID, "role")).select_by_value("staff")
    browser.find_element(By.ID, "adminPassword").send_keys(PASSWORD)
    shot(browser, artifacts, "01-new-staff-invite")
    click_through(browser, "save-staff")
    shot(browser, artifacts, "02-invited")
    assert "an invitation was emailed" in browser.find_element(By.ID, "notice").text
    assert re.search(r"Invited\s+expires \d+ \w+ \d{4}", staff_row(browser, "nina.new").text), staff_row(browser, "nina.new").text
    sign_out(browser)

    # The message, delivered over SMTP, names the practice, who invited her and the expiry.
    link, body, html, message = invitation_from_smtp(smtp, "nina@example.org")
    assert "Riverside Family Medicine" in message["Subject"]
    assert "Sam Smith (Riverside Family Medicine) invited you" in body
    assert "Your login: nina.new" in body
    assert "expires in 7 days" in body
    assert "If you did not expect this invitation" in body
    assert "Choose your password" in html
    assert link.startswith(base + "/invite/")
    assert [to for _, to in smtp.envelopes].count(["nina@example.org"]) == 1, "one message to her, to her only"

    # She cannot sign in before accepting.
    sign_in_with_password(browser, base, "nina.new")
    assert browser.find_element(By.ID, "error").text == "The username or password is incorrect."

    # She opens the link and chooses her password (8 characters suffice: she will have a second factor).
    browser.get(link)
    shot(browser, artifacts, "03-invitation-page")
    assert "Welcome to Riverside Family Medicine" in text(browser)
    assert "Nina Newton" in text(browser)
    assert browser.find_element(By.ID, "invitation-username").text == "nina.new"
    assert "requires two-factor authentication" in text(browser)
    browser.find_element(By.ID, "password").send_keys(STAFF_PASSWORD)
    browser.find_element(By.ID, "confirmPassword").send_keys(STAFF_PASSWORD)
    click_through(browser, "accept-invitation")
    shot(browser, artifacts, "04-enroll-right-away")

    # She is led straight to enrollment, and enrolls an authenticator app with an oathtool code.
    assert "/account/security/setup" in browser.current_url
    assert "Welcome! Your password is set." in browser.find_element(By.ID, "notice").text
    assert "Your practice requires two-factor authentication" in text(browser)
    enroll_with_app(browser)
    shot(browser, artifacts, "05-signed-in")
    assert browser.current_url.rstrip("/") == base or browser.current_url.startswith(base + "/?")
    assert "Two-factor authentication is on" in text(browser)
    assert "Welcome, Nina" in text(browser)
    sign_out(browser)

    # The link worked once.
    browser.get(link)
    shot(browser, artifacts, "06-link-used")
    assert "This invitation link no longer works" in text(browser)
    assert "Ask your practice administrator to send you a new invitation" in text(browser)

    events = twofold.cli("audit", "verify").stdout
    assert "intact" in events
