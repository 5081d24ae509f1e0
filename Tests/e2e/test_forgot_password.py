"""Forgot password in a real browser (headless Chromium) with a real SMTP server (aiosmtpd, STARTTLS and AUTH,
Tests/e2e/smtp_server.py): a provider with an authenticator app clicks "Forgot password?" on the sign-in page, enters
their username, opens the link from the message the SMTP server received, sets a new password with a current oathtool
code, and signs in with the new password and a fresh code. The link works once and the old password no longer works."""
import requests
from selenium.webdriver.common.by import By

from conftest import PASSWORD, fresh_code
from smtp_server import SMTPServer
from test_browser_signin import click_through, shot, sign_in_with_password, text

NEW_PASSWORD = "violet harbor lantern"


def enroll_app(twofold, username="dr.smith"):
    """An authenticator app over the API, activated with the previous step's code; returns the secret and that code."""
    api = f"{twofold.base}/api/v1"
    login = requests.post(f"{api}/login", json={"username": username, "password": PASSWORD})
    assert login.status_code == 200, login.text
    auth = {"Authorization": f"Bearer {login.json()['token']}"}
    app = requests.post(f"{api}/me/factors/totp", json={"password": PASSWORD}, headers=auth).json()
    code = fresh_code(app["secret"], step_offset=-1)
    activated = requests.post(f"{api}/me/factors/{app['factorId']}/activate", json={"code": code}, headers=auth)
    assert activated.status_code == 200, activated.text
    return app["secret"], code


def reset_link_from(smtp, base, address):
    """The link of the password reset message the SMTP server received for `address`, checked in both parts."""
    message = smtp.wait_for(lambda m: m["To"] == address and m["Subject"] == "Set a new password for Riverside Family Medicine", timeout=30)
    assert message.get_content_type() == "multipart/alternative"
    body = smtp.text(message)
    assert "expires in 30 minutes" in body and "If this was not you" in body
    link = smtp.find_link(message, "/login/reset/")
    assert link.startswith(f"{base}/login/reset/") and len(link.rsplit("/", 1)[1]) == 43, link
    assert f'href="{link}"' in smtp.html(message), "the HTML part carries the same link"
    return link


def test_forgot_password_with_an_authenticator_app(twofold, browser, artifacts, tmp_path):
    with SMTPServer(tmp_path / "smtp") as smtp:
        twofold.env.update(smtp.env(public_url=twofold.base))
        practice = twofold.create_practice("Riverside Family Medicine")
        twofold.create_user(practice)
        twofold.start()
        forgot_password_flow(twofold, smtp, browser, artifacts)


def forgot_password_flow(twofold, smtp, browser, artifacts):
    base = twofold.base
    secret, enrolled = enroll_app(twofold)

    # "Forgot password?" on the sign-in page.
    browser.get(f"{base}/login")
    link = browser.find_element(By.LINK_TEXT, "Forgot password?")
    assert link.get_attribute("href") == f"{base}/login/forgot"
    click_through(browser, link)
    shot(browser, artifacts, "01-forgot")
    browser.find_element(By.ID, "login").send_keys("dr.smith")
    click_through(browser, "send-reset-link")
    shot(browser, artifacts, "02-requested")
    assert "If an account matches what you entered" in text(browser)

    # The link from the message.
    reset_link = reset_link_from(smtp, base, "dr.smith@example.org")
    browser.get(reset_link)
    shot(browser, artifacts, "03-reset-page")
    assert "Choose a new password" in text(browser)
    assert "Code from your authenticator app" in text(browser)
    browser.find_element(By.ID, "newPassword").send_keys(NEW_PASSWORD)
    browser.find_element(By.ID, "confirmPassword").send_keys(NEW_PASSWORD)
    code = fresh_code(secret, after_step=enrolled.step)
    browser.find_element(By.ID, "code").send_keys(code)
    click_through(browser, "reset-password")
    shot(browser, artifacts, "04-reset-done")
    assert "/login" in browser.current_url
    assert "Your password was reset" in text(browser)

    # The user is told (security notification), over the same SMTP server.
    notice = smtp.wait_for(lambda m: m["To"] == "dr.smith@example.org" and m["Subject"] == "Your password was reset", timeout=30)
    assert "reset with a link sent by email" in smtp.text(notice)

    # The link worked once.
    browser.get(reset_link)
    assert "This link no longer works" in text(browser)

    # The old password is refused; the new one still needs the second factor.
    sign_in_with_password(browser, base)
    assert "The username or password is incorrect." in text(browser)
    browser.get(f"{base}/login")
    browser.find_element(By.ID, "username").send_keys("dr.smith")
    browser.find_element(By.ID, "password").send_keys(NEW_PASSWORD)
    click_through(browser, "sign-in")
    assert "/login/two-factor" in browser.current_url
    browser.find_element(By.ID, "code").send_keys(fresh_code(secret, after_step=code.step))
    click_through(browser, "verify")
    shot(browser, artifacts, "05-signed-in")
    assert "Welcome, Sam" in text(browser)
