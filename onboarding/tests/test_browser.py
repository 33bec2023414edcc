"""A person in Debian's chromium: invitation link -> page -> Continue -> simulator dialog -> Allow/Cancel -> result.

Screenshots of every page go to test-artifacts/screenshots/ (kept by CI).
"""

from urllib.parse import urlsplit

import pytest
from django.db import connections

from onboarding.invitations import create_invitation
from onboarding.models import LoginAttempt
from testsupport.browser import CHROMIUM_ARGS, SCREENSHOTS, chromium_page
from tokens.models import AccessToken

from .conftest import AD_1, PAGE_1

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

@pytest.fixture
def page(chromium_path, monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with chromium_page(chromium_path) as page:
        yield page


def shoot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"onboarding-{name}.png"), full_page=True)


def open_invitation(page, world) -> None:
    meta, config, client_business, contact = world
    _, key = create_invitation(client_business, config, contact=contact)
    page.goto(f"{meta.base_url}/invite/{key}/")
    assert page.locator("h1").inner_text() == "Connect Acme Bakery to Tech Provider Portal"
    page.locator("text=See the list of Pages you manage.").wait_for()


def test_a_person_connects_pages_and_an_ad_account_and_sees_them_listed(page, world):
    open_invitation(page, world)
    shoot(page, "1-invitation")
    page.get_by_role("button", name="Continue with Facebook").click()
    page.locator("#allow").wait_for()
    page.check(f"input[name=asset][value='{PAGE_1}']")
    page.check(f"input[name=asset][value='{AD_1}']")
    shoot(page, "2-dialog")
    page.click("#allow")
    page.locator("h1", has_text="Acme Bakery is connected").wait_for()
    shoot(page, "3-result")
    listed = page.locator("ul.assets.connected").inner_text()
    assert "Acme Bakery Page 1" in listed and "Acme Bakery Ad account 1" in listed
    assert urlsplit(page.url).path == f"/connect/result/{LoginAttempt.objects.get().pk}/"
    assert AccessToken.objects.get().status == "active"


def test_a_person_who_cancels_sees_what_happened_and_can_try_again(page, world):
    open_invitation(page, world)
    page.get_by_role("button", name="Continue with Facebook").click()
    page.locator("#cancel").wait_for()
    page.click("#cancel")
    page.locator("h1", has_text="You cancelled the connection").wait_for()
    shoot(page, "4-cancelled")
    assert AccessToken.objects.count() == 0
    page.get_by_role("button", name="Try again").click()
    page.locator("#allow").wait_for()  # back in the dialog, with a new attempt
    assert LoginAttempt.objects.count() == 2


def test_the_invitation_page_reads_on_a_phone_and_warns_about_system_user_tokens(chromium_path, world, monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        phone = browser.new_context(
            viewport={"width": 390, "height": 844},
            user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Mobile/15E148 Safari/604.1",
        )
        page = phone.new_page()
        open_invitation(page, world)
        assert "Please switch to a computer" in page.locator(".notice.warn").inner_text()
        # Nothing overflows sideways on a narrow screen.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        shoot(page, "5-invitation-phone")
        browser.close()
        connections.close_all()
