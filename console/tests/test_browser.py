"""Staff in Debian's chromium: sign in with a TOTP code, read the first screen, follow a bar of the
chart to its list, open a client's page, run "Check now" as a job on a real Celery worker and watch
its progress and result. Screenshots: test-artifacts/screenshots/console-*.png (kept by CI)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from config.celery import app as celery_app
from testsupport.browser import chromium_page, screenshot
from testsupport.factories import make_client
from testsupport.staff import make_staff, totp_code, totp_device
from tokens.models import AccessToken
from tokens.tests.test_sweep_simulator import onboard
from tokens.tests.test_workers import start_workers  # noqa: F401  (a fixture)

from .world import seed_world

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.real_worker,
              pytest.mark.django_db(transaction=True)]
PASSWORD = "a long staff password for the browser"
JOB_DEADLINE_MS = 90_000  # the worker starts, then checks one token against the simulator


@pytest.fixture
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def test_staff_sign_in_with_a_code_read_the_first_screen_and_run_a_check_as_a_job(
    chromium_path, simulated_meta, start_workers, monkeypatch, fast_hashing  # noqa: F811
):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    operator = make_staff("olga", "Operator", password=PASSWORD)
    device = totp_device(operator)
    acme = onboard(simulated_meta, make_client(name="Acme Bakery", meta_business_id=None)).client
    seed_world(4)  # tokens ending in 3 to 6 days: bars on the chart
    queue = start_workers(1, {"META_GRAPH_URL": simulated_meta.graph_url, "PORTAL_BASE_URL": simulated_meta.base_url})
    monkeypatch.setitem(celery_app.conf, "task_default_queue", queue)

    with chromium_page(chromium_path, width=1366, height=768) as page:
        page.goto(f"{simulated_meta.base_url}/admin/")
        page.fill("#id_username", "olga")
        page.fill("#id_password", PASSWORD)
        page.fill("#id_otp_token", totp_code(device))
        screenshot(page, "console-1-sign-in")
        page.click("input[type=submit]")

        page.locator("#first-screen").wait_for()
        assert page.locator("#site-name").inner_text() == "Tech Provider Portal"
        assert "Who breaks next" in page.content()
        states = page.locator("#clients-by-state").inner_text()
        assert "Access ending" in states and "Needs reauthorization" in states
        assert page.locator("#break-soonest tbody tr").count() >= 1  # the day each breaks, and why
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366  # fits the screen
        screenshot(page, "console-2-first-screen")

        in_three_days = (timezone.localdate() + timedelta(days=3)).isoformat()
        page.locator(f'svg.chart a[href*="ends_within=day:{in_three_days}"]').first.click()
        page.locator("#result_list").wait_for()
        assert "ends_within=day:" in page.url
        rows = page.locator("#result_list tbody tr")
        expected = AccessToken.objects.filter(
            status__in=AccessToken.LIVE_STATUSES, expires_at__date=in_three_days).count()
        assert rows.count() == expected >= 1
        screenshot(page, "console-3-chart-to-list")

        page.goto(f"{simulated_meta.base_url}/admin/onboarding/clientbusiness/?q=Acme")
        page.get_by_role("link", name="Acme Bakery").first.click()
        page.locator("#client-page").wait_for()
        assert "Acme Bakery" in page.locator("#client-page h2").first.inner_text()
        assert page.locator("#assets tbody tr").count() >= 1
        assert "The day it breaks" in page.locator("#breaks").inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        screenshot(page, "console-4-client-page")

        page.get_by_role("button", name="Check now with Meta").click()
        page.locator(".field-status_badge").wait_for()
        assert "/admin/staffjobs/staffjob/" in page.url
        screenshot(page, "console-5-job-started")
        page.locator("text=Checked 1:").wait_for(timeout=JOB_DEADLINE_MS)  # the page refreshes itself
        assert "Finished" in page.locator(".field-status_badge").inner_text()
        assert 'value="100"' in page.content()
        screenshot(page, "console-6-job-finished")

    token = AccessToken.objects.get(client=acme)
    assert token.last_checked_at is not None
