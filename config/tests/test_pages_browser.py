"""The public pages in Debian's chromium: keyboard users can skip to the content; nothing the policy blocks.

Screenshots go to test-artifacts/screenshots/.
"""

from pathlib import Path

import pytest
from django.conf import settings

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(settings.BASE_DIR) / "test-artifacts" / "screenshots"


@pytest.fixture
def browser_page(chromium_path, monkeypatch):
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 700})
        page.set_default_timeout(15_000)
        refused = []
        page.on("console", lambda message: "Content Security Policy" in message.text and refused.append(message.text))
        page.refused = refused
        yield page
        browser.close()


def test_the_first_tab_shows_a_skip_link_that_moves_to_the_content(browser_page, live_server):
    page = browser_page
    page.goto(f"{live_server.url}/")
    skip = page.locator("a.skip-link")
    assert skip.bounding_box()["x"] < 0  # out of sight until focused
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    assert skip.bounding_box()["x"] >= 0
    page.screenshot(path=str(SCREENSHOTS / "public-skip-link.png"))
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    assert page.refused == []


def test_error_pages_are_branded_and_styled(browser_page, live_server, settings):
    settings.DEBUG = False
    page = browser_page
    page.goto(f"{live_server.url}/no-such-page/")
    assert page.locator("h1").inner_text() == "There is no page at this address"
    # The stylesheet applied: the button is the brand's colour, not the browser's default.
    colour = page.evaluate("getComputedStyle(document.querySelector('.button')).backgroundColor")
    assert colour == "rgb(228, 230, 235)"  # .button.secondary
    page.screenshot(path=str(SCREENSHOTS / "public-404.png"), full_page=True)
    page.goto(f"{live_server.url}/meta/data-deletion/%00/")
    assert page.locator("h1").inner_text() == "We couldn't understand that request"
    page.screenshot(path=str(SCREENSHOTS / "public-400.png"), full_page=True)
    assert page.refused == []
