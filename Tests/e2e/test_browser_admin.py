"""A practice administrator runs 2FA from the web pages (headless Chromium): set up 2FA for a staff member,
require it for the practice, disable it after a lost phone; the audit page shows each step and the chain verifies."""
import re

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from conftest import PASSWORD, fresh_code
from test_browser_signin import click_through, shot, sign_in_with_password, sign_out, text


def enroll_with_app(browser):
    """Enrolls with the previous step's code, which leaves the current step for the next sign-in; returns the secret and that code."""
    click_through(browser, "choose-app")
    secret = browser.find_element(By.ID, "manual-key").text.replace(" ", "")
    code = fresh_code(secret, step_offset=-1)
    browser.find_element(By.ID, "code").send_keys(code)
    click_through(browser, "enable")
    browser.find_element(By.ID, "saved").click()
    click_through(browser, "continue")
    return secret, code


def enroll_with_sms(browser, twofold, phone):
    click_through(browser, "choose-sms")
    browser.find_element(By.ID, "code").send_keys(twofold.latest_sms_code(phone))
    click_through(browser, "enable")
    browser.find_element(By.ID, "saved").click()
    click_through(browser, "continue")


def staff_row(browser, username):
    return browser.find_element(By.CSS_SELECTOR, f'tr[data-username="{username}"]')


def test_administrator_runs_two_factor_for_the_practice(twofold, browser, artifacts):
    practice = twofold.create_practice("Riverside Family Medicine")
    twofold.create_user(practice, username="office.admin", cell="+15550000001", admin=True)
    twofold.create_user(practice, username="jason", cell="+15550000002")
    twofold.create_user(practice, username="maria", cell="+15550000003")
    twofold.start()
    base = twofold.base

    # The administrator sets up 2FA for Jason, confirming with their own password.
    sign_in_with_password(browser, base, "office.admin")
    click_through(browser, "admin-link")
    shot(browser, artifacts, "01-staff-list")
    assert "Inactive" in staff_row(browser, "jason").text
    click_through(browser, staff_row(browser, "jason").find_element(By.LINK_TEXT, "Set up"))
    shot(browser, artifacts, "02-confirm-set-up")
    assert "Email to use: jason@example.org" in text(browser)
    assert "Cell phone to use: +15550000002" in text(browser)
    browser.find_element(By.ID, "adminPassword").send_keys(PASSWORD)
    click_through(browser, "confirm")
    shot(browser, artifacts, "03-set-up-done")
    assert "successfully set" in browser.find_element(By.ID, "notice").text
    assert "Required — not yet set up" in staff_row(browser, "jason").text
    sign_out(browser)

    # Jason signs in and can reach nothing until he has enrolled.
    sign_in_with_password(browser, base, "jason")
    assert "/account/security/setup" in browser.current_url
    browser.get(f"{base}/account/security")
    assert "/account/security/setup" in browser.current_url
    enroll_with_app(browser)
    assert "Two-factor authentication is on" in text(browser)
    sign_out(browser)

    # The administrator makes 2FA mandatory for everyone (and is led to enroll first).
    sign_in_with_password(browser, base, "office.admin")
    browser.get(f"{base}/admin/staff")
    assert re.search(r"Active: app [0-9A-F]{8}", staff_row(browser, "jason").text)
    browser.get(f"{base}/admin/practice")
    checkbox = browser.find_element(By.ID, "mandatoryTwoFactor")
    if not checkbox.is_selected():
        checkbox.click()
    browser.find_element(By.ID, "adminPassword").send_keys(PASSWORD)
    click_through(browser, "save-settings")
    shot(browser, artifacts, "04-settings-saved")
    browser.get(f"{base}/admin/staff")
    assert "/account/security/setup" in browser.current_url
    admin_secret, admin_enrolled = enroll_with_app(browser)
    sign_out(browser)

    # Maria, who never set up 2FA, is forced through enrollment.
    sign_in_with_password(browser, base, "maria")
    assert "/account/security/setup" in browser.current_url
    assert "requires two-factor authentication" in text(browser)
    enroll_with_sms(browser, twofold, "+15550000003")
    sign_out(browser)

    # Jason lost his phone: the administrator disables his 2FA.
    sign_in_with_password(browser, base, "office.admin")
    browser.find_element(By.ID, "code").send_keys(fresh_code(admin_secret, after_step=admin_enrolled.step))
    click_through(browser, "verify")
    shot(browser, artifacts, "05-admin-signed-in-by-sms")
    browser.get(f"{base}/admin/staff?q=jason")
    shot(browser, artifacts, "05-search")
    click_through(browser, browser.find_element(By.LINK_TEXT, "jason"))
    browser.find_element(By.ID, "adminPassword").send_keys(PASSWORD)
    browser.execute_script("window.confirm = () => true")
    click_through(browser, "disable-two-factor")
    shot(browser, artifacts, "05-disabled")
    assert "Two-factor authentication was disabled" in text(browser)

    # The audit page shows every step.
    browser.get(f"{base}/admin/audit")
    shot(browser, artifacts, "06-audit")
    events = {cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#audit td.event")}
    for expected in ("admin.two_factor_required", "factor.added", "practice.settings_changed", "admin.two_factor_disabled", "sms.sent", "sign_in.succeeded"):
        assert expected in events, f"{expected} missing from the audit page"
    Select(browser.find_element(By.NAME, "type")).select_by_value("admin.two_factor_disabled")
    click_through(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button"))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#audit tbody tr")) == 1
    sign_out(browser)

    # Jason must enroll again.
    sign_in_with_password(browser, base, "jason")
    assert "/account/security/setup" in browser.current_url
    enroll_with_app(browser)
    assert "Two-factor authentication is on" in text(browser)

    assert "intact" in twofold.cli("audit", "verify").stdout
