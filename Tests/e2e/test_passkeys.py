"""Passkeys in a real browser: headless Chromium with a virtual CTAP2 authenticator (internal transport, resident keys,
user verification) registers a passkey on Account › Security and signs in with it, as a second factor and without a
password, against a real `twofold serve` on http://localhost:PORT."""
from urllib.parse import urlparse

from selenium.webdriver.common.by import By
from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions
from selenium.webdriver.support.ui import WebDriverWait

from conftest import PASSWORD
from test_browser_signin import click_through, shot, sign_in_with_password, text


def add_authenticator(browser, user_verified=True):
    browser.add_virtual_authenticator(VirtualAuthenticatorOptions(
        protocol=VirtualAuthenticatorOptions.Protocol.CTAP2, transport=VirtualAuthenticatorOptions.Transport.INTERNAL,
        has_resident_key=True, has_user_verification=True, is_user_verified=user_verified, is_user_consenting=True))


def path(browser):
    return urlparse(browser.current_url).path


def register_passkey(browser, twofold, nickname="Chromium passkey"):
    """Signs in with the password (2FA off) and adds a passkey from Account › Security."""
    sign_in_with_password(browser, twofold.base)
    assert path(browser) == "/"
    browser.get(twofold.base + "/account/security")
    click_through(browser, "add-passkey")
    browser.find_element(By.ID, "passkey-nickname").send_keys(nickname)
    passwords = browser.find_elements(By.ID, "passkey-password")
    if passwords:
        passwords[0].send_keys(PASSWORD)
    click_through(browser, "choose-passkey")
    assert "recovery codes" in text(browser).lower(), text(browser)
    browser.find_element(By.ID, "saved").click()
    click_through(browser, "continue")
    browser.get(twofold.base + "/account/security")
    assert nickname in text(browser) and "Passkey or security key" in text(browser)


def test_passkey_added_on_the_security_page_signs_in_as_second_factor(twofold, browser, artifacts):
    practice = twofold.create_practice()
    twofold.create_user(practice)
    twofold.start()
    add_authenticator(browser)
    register_passkey(browser, twofold)
    shot(browser, artifacts, "security-with-passkey")
    credentials = browser.get_credentials()
    assert len(credentials) == 1 and credentials[0].is_resident_credential
    assert credentials[0].rp_id == "localhost"

    browser.delete_all_cookies()
    sign_in_with_password(browser, twofold.base)
    assert path(browser) == "/login/two-factor"
    assert "Use your passkey" in text(browser)
    shot(browser, artifacts, "two-factor-passkey")
    click_through(browser, "use-passkey")
    assert path(browser) == "/", text(browser)
    assert browser.get_credentials()[0].sign_count >= 2
    assert "intact" in twofold.cli("audit", "verify").stdout


def test_passwordless_sign_in_when_the_practice_allows_it(twofold, browser, artifacts):
    practice = twofold.create_practice()
    twofold.create_user(practice, admin=True)
    twofold.start()
    add_authenticator(browser)
    register_passkey(browser, twofold)

    browser.delete_all_cookies()
    browser.get(twofold.base + "/login")
    assert "Sign in with a passkey" not in text(browser)
    sign_in_with_password(browser, twofold.base)
    click_through(browser, "use-passkey")
    browser.get(twofold.base + "/admin/practice")
    browser.find_element(By.ID, "allowPasswordless").click()
    browser.find_element(By.ID, "adminPassword").send_keys(PASSWORD)
    click_through(browser, "save-settings")

    browser.delete_all_cookies()
    browser.get(twofold.base + "/login")
    shot(browser, artifacts, "login-with-passkey")
    click_through(browser, "sign-in-passkey")
    assert path(browser) == "/", text(browser)
    assert "Sam" in text(browser)


def test_sign_in_fails_cleanly_when_the_authenticator_is_gone(twofold, browser, artifacts):
    practice = twofold.create_practice()
    twofold.create_user(practice)
    twofold.start()
    add_authenticator(browser)
    register_passkey(browser, twofold)

    browser.delete_all_cookies()
    browser.remove_all_credentials()
    sign_in_with_password(browser, twofold.base)
    browser.find_element(By.ID, "use-passkey").click()
    error = browser.find_element(By.CSS_SELECTOR, "#passkey-form [data-webauthn-error]")
    WebDriverWait(browser, 30).until(lambda d: error.is_displayed())
    assert "no passkey for Twofold" in error.text
    assert path(browser) == "/login/two-factor"
    shot(browser, artifacts, "passkey-missing")
    # The recovery code path still works for someone whose key is lost.
    assert "Use a recovery code" in text(browser)

