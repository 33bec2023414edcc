"""A campaign's recipient in Debian's chromium: the emailed link -> the page -> Continue -> the simulator's dialog ->
Allow; the campaign's figures (opened, started, completed, still broken) follow each step, on its page too.
Screenshots: test-artifacts/screenshots/campaign-*.png (kept by CI)."""

import pytest
from django.core import mail

from campaigns import service
from campaigns.models import Campaign
from onboarding.models import Contact
from simulator.api import asset_id_for
from simulator.models import SimAsset
from testsupport.browser import chromium_page, screenshot
from testsupport.factories import make_client, make_simulated_configuration, make_token
from testsupport.staff import make_staff, run_queued_jobs, totp_code, totp_device

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ACME = "9100000000000001"
PAGE_1, AD_1 = asset_id_for(SimAsset.Kind.PAGE, 1, 1), asset_id_for(SimAsset.Kind.AD_ACCOUNT, 1, 1)


def figures(campaign) -> tuple[int, int, int, int, int]:
    totals, _ = service.progress(campaign)
    return totals.opened, totals.started, totals.completed, totals.failed, totals.still_broken


def test_a_recipient_goes_through_the_dialog_and_the_campaign_follows(chromium_path, simulated_meta, monkeypatch,
                                                                      settings):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    config = make_simulated_configuration(simulated_meta, name="Pages and ads", config_id="7770101",
                                          permissions=["ads_read", "pages_show_list"],
                                          asset_types=["page", "ad_account"])  # fmt: skip
    acme = make_client("Acme Bakery", meta_business_id=ACME, status="needs_reauth")
    make_token(acme, configuration=config, kind="system_user", status="invalid")
    Contact.objects.create(client=acme, email="alice@acme.example", name="Alice")
    service.create_campaign(name="Broken tokens", kind=Campaign.Kind.RECONNECT,
                            selection=Campaign.Selection.INVALID_TOKENS, params={},
                            message="Meta stopped accepting our access: please reconnect.")  # fmt: skip
    run_queued_jobs()
    campaign = Campaign.objects.get()
    (message,) = mail.outbox
    url = next(line for line in message.body.splitlines() if "/invite/" in line).strip()
    assert figures(campaign) == (0, 0, 0, 0, 1)

    with chromium_page(chromium_path) as page:
        page.goto(url)
        page.locator("h1", has_text="Reconnect Acme Bakery").wait_for()
        assert "Meta stopped accepting our access" in page.content()
        screenshot(page, "campaign-1-link")
        assert figures(campaign) == (1, 0, 0, 0, 1)

        page.get_by_role("button", name="Continue with Facebook").click()
        page.locator("#allow").wait_for()
        assert figures(campaign) == (1, 1, 0, 0, 1)
        page.check(f"input[name=asset][value='{PAGE_1}']")
        page.check(f"input[name=asset][value='{AD_1}']")
        screenshot(page, "campaign-2-dialog")
        page.click("#allow")
        page.locator("h1", has_text="Acme Bakery is connected").wait_for()
        screenshot(page, "campaign-3-connected")

        assert figures(campaign) == (1, 1, 1, 0, 0)
        acme.refresh_from_db()
        assert acme.status == "active"
        page.goto(url)  # the link worked once
        assert "already been used" in page.content()

        # Staff follow it on the campaign's page (an operator, signed in with both factors).
        settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
        operator = make_staff("olga", "Operator", password="a long staff password for the browser")
        page.goto(f"{simulated_meta.base_url}/admin/campaigns/campaign/{campaign.pk}/change/")
        page.fill("#id_username", "olga")
        page.fill("#id_password", "a long staff password for the browser")
        page.fill("#id_otp_token", totp_code(totp_device(operator)))
        page.click("input[type=submit]")
        page.locator("#campaign-page").wait_for()
        totals = page.locator("#campaign-totals tbody").inner_text().split()
        assert totals[:6] == ["1", "1", "1", "1", "1", "0"] and totals[6] == "0"  # recipients ... still broken
        assert "reconnected" in page.locator("#campaign-clients").inner_text()
        assert "Remind the 0 who haven" in page.content()
        screenshot(page, "campaign-4-staff-page")
