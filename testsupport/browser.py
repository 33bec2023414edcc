"""Debian's chromium through Playwright, for the browser tests; screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"  # kept by CI, git-ignored
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium_page(chromium_path: str, *, width: int = 1024, height: int = 800, timeout_ms: int = 15_000):
    """A fresh browser page; the browser is closed and the ORM's extra connections with it.

    Chromium reports on its console what the pages' Content-Security-Policy blocked: any such
    report fails the test once the page is done with.
    """
    from django.db import connections
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": width, "height": height}).new_page()
        page.set_default_timeout(timeout_ms)
        refused = []
        page.on("console", lambda message: "Content Security Policy" in message.text and refused.append(message.text))
        try:
            yield page
        finally:
            browser.close()
            # ORM calls made while Playwright's loop runs get their own connection; don't leave it open.
            connections.close_all()
        assert refused == [], f"the pages' own Content-Security-Policy blocked something: {refused}"


def screenshot(page, name: str) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
