"""A provider's day in a real browser (headless Chromium): enroll an authenticator app by scanning the QR code on
the page, sign in with codes from oathtool, remember the browser, revoke it, use a recovery code, get an SMS code."""
import re

import time

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import PASSWORD, decode_qr_png, fresh_code


def click_through(driver, element):
    """Clicks something that loads a new page and waits until the new page has loaded."""
    for attempt in range(5):
        try:
            driver.execute_script("window.__twofoldOldPage = true")
            target = driver.find_element(By.ID, element) if isinstance(element, str) else element
            target.click()
            break
        except WebDriverException:
            # the previous page may still have been settling; look again
            if attempt == 4 or not isinstance(element, str):
                raise
            time.sleep(0.2)

    def new_page_loaded(d):
        try:
            return d.execute_script("return window.__twofoldOldPage === undefined && document.readyState === 'complete'")
        except WebDriverException:
            return False

    WebDriverWait(driver, 15, poll_frequency=0.05).until(new_page_loaded)


def text(driver):
    return driver.find_element(By.TAG_NAME, "body").text


def shot(driver, artifacts, name):
    driver.save_screenshot(str(artifacts / f"{name}.png"))


def sign_in_with_password(driver, base, username="dr.smith"):
    driver.get(f"{base}/login")
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    click_through(driver, "sign-in")


def sign_out(driver):
    click_through(driver, "sign-out")
    assert "/login" in driver.current_url


def test_provider_enrolls_and_signs_in_every_way(twofold, browser, artifacts):
    practice = twofold.create_practice("Riverside Family Medicine")
    twofold.create_user(practice)
    twofold.start()
    base = twofold.base

    # Sign in with the password only (2FA is off) and turn it on from Account › Security.
    sign_in_with_password(browser, base)
    shot(browser, artifacts, "01-home-2fa-off")
    assert "Two-factor authentication is off" in text(browser)
    click_through(browser, "security-link")
    click_through(browser, "add-method")
    shot(browser, artifacts, "02-choose-method")
    click_through(browser, "choose-app")

    # Scan the QR code as a phone would: screenshot the element and decode it independently.
    qr = browser.find_element(By.ID, "qr")
    qr.screenshot(str(artifacts / "03-qr.png"))
    shot(browser, artifacts, "03-setup-app")
    uri = decode_qr_png(artifacts / "03-qr.png")
    assert uri.startswith("otpauth://totp/Riverside%20Family%20Medicine:dr.smith?")
    secret = re.search(r"secret=([A-Z2-7]+)", uri).group(1)
    manual_key = browser.find_element(By.ID, "manual-key").text.replace(" ", "")
    assert manual_key == secret

    # Prove the app works with the previous step's code (leaves the next two steps for sign-ins).
    enrolled = fresh_code(secret, step_offset=-1)
    browser.find_element(By.ID, "code").send_keys(enrolled)
    click_through(browser, "enable")
    shot(browser, artifacts, "04-recovery-codes")
    codes = [element.text for element in browser.find_elements(By.CSS_SELECTOR, "#recovery-codes code")]
    assert len(codes) == 10 and all(re.fullmatch(r"[a-z0-9]{4}-[a-z0-9]{4}-[a-z0-9]{4}", code) for code in codes)
    browser.find_element(By.ID, "saved").click()
    click_through(browser, "continue")
    assert "Two-factor authentication is on" in text(browser)

    # Add the cell phone as a second method: confirmed with a code, it may receive sign-in codes later.
    browser.get(f"{base}/account/security")
    click_through(browser, "add-method")
    click_through(browser, "choose-sms")
    browser.find_element(By.ID, "code").send_keys(twofold.latest_sms_code())
    click_through(browser, "enable")
    assert "The sign-in method was added." in text(browser)
    sign_out(browser)

    # Sign in again with a fresh code and "don't ask again".
    sign_in_with_password(browser, base)
    assert "/login/two-factor" in browser.current_url
    shot(browser, artifacts, "05-two-factor")
    assert "Don't ask again on this browser for 30 days" in text(browser)
    browser.find_element(By.ID, "code").send_keys(fresh_code(secret, after_step=enrolled.step))
    browser.find_element(By.ID, "remember").click()
    click_through(browser, "verify")
    assert "Welcome, Sam" in text(browser)
    sign_out(browser)

    # The remembered browser skips the code.
    sign_in_with_password(browser, base)
    assert "Welcome, Sam" in text(browser)
    shot(browser, artifacts, "06-remembered")

    # Revoke the browser on Account › Security: the next sign-in asks for a code again.
    browser.get(f"{base}/account/security")
    shot(browser, artifacts, "07-security")
    rows = browser.find_elements(By.CSS_SELECTOR, "#browsers tbody tr")
    assert len(rows) == 1 and "Chrome" in rows[0].text
    click_through(browser, rows[0].find_element(By.CSS_SELECTOR, "button.revoke"))
    assert "will be asked for a code again" in text(browser)
    sign_out(browser)
    sign_in_with_password(browser, base)
    assert "/login/two-factor" in browser.current_url

    # Use a recovery code instead.
    click_through(browser, "use-recovery")
    browser.find_element(By.ID, "code").send_keys(codes[0])
    click_through(browser, "verify-recovery")
    assert "Welcome, Sam" in text(browser)
    browser.get(f"{base}/account/security")
    assert "9" in browser.find_element(By.ID, "recovery-left").text
    sign_out(browser)

    # Ask for a code by text message and read it from the outbox.
    sign_in_with_password(browser, base)
    click_through(browser, "send-sms")
    waiting = re.search(r"Wait (\d+) seconds", text(browser))
    if waiting:  # one text message per 30 seconds, and the phone was confirmed a moment ago
        time.sleep(int(waiting.group(1)) + 1)
        click_through(browser, "send-sms")
    shot(browser, artifacts, "08-sms-sent")
    assert "•••4567" in text(browser)
    browser.find_element(By.ID, "code").send_keys(twofold.latest_sms_code())
    click_through(browser, "verify")
    assert "Welcome, Sam" in text(browser)
    shot(browser, artifacts, "09-signed-in-by-sms")

    assert "intact" in twofold.cli("audit", "verify").stdout


def test_mandatory_practice_leads_to_sms_enrollment(twofold, browser, artifacts):
    practice = twofold.create_practice("Lakeside Pediatrics", mandatory=True)
    twofold.create_user(practice, username="nurse.kim")
    twofold.start()
    sign_in_with_password(browser, twofold.base, "nurse.kim")
    assert "/account/security/setup" in browser.current_url
    assert "requires two-factor authentication" in text(browser)
    browser.get(f"{twofold.base}/account/security")
    assert "/account/security/setup" in browser.current_url
    click_through(browser, "choose-sms")
    shot(browser, artifacts, "01-confirm-phone")
    browser.find_element(By.ID, "code").send_keys(twofold.latest_sms_code())
    click_through(browser, "enable")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#recovery-codes code")) == 10
    browser.find_element(By.ID, "saved").click()
    click_through(browser, "continue")
    assert "Two-factor authentication is on" in text(browser)


def test_wrong_password_shows_one_generic_message(twofold, browser):
    twofold.create_user(twofold.create_practice())
    twofold.start()
    browser.get(f"{twofold.base}/login")
    browser.find_element(By.ID, "username").send_keys("dr.smith")
    browser.find_element(By.ID, "password").send_keys("wrong password")
    click_through(browser, "sign-in")
    assert browser.find_element(By.ID, "error").text == "The username or password is incorrect."
