"""The lifecycle scenario against the simulator over real HTTP, time moved with time-machine.

A client onboarded with a user token; its business migrates to managed Meta accounts;
the sweep sees user_access_expire_time; reminders go out at each stage exactly once to
the grantor and the notification address, with a working reconnect link; the person
reconnects through it (onboarding's reconnect mode) with the work account and re-selects
some assets; the old token's grants are superseded (the one left out too: dropped on purpose) and
reminders stop. Token, client and grants tell the same story throughout (tokens.health, #13).
"""

import re
from collections import Counter
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from onboarding.invitations import create_invitation
from onboarding.models import ClientBusiness, Contact
from testsupport.factories import make_simulated_configuration
from tokens.models import AccessToken, AssetGrant, ClientHealth, Reminder
from tokens.reminders import plan_reminders, send_due_reminders
from tokens.sweep import check_tokens, start_sweep

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ACME = "9100000000000001"
ALICE = "1000000000000001"  # personal Facebook account
DANA = "1000000000000004"  # managed Meta (work) account
PAGE_1, PAGE_2, AD_1 = "2001000000000001", "2001000000000002", "3001000000000001"


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def through_dialog(browser, path: str, *, person: str, assets: list[str]):
    """Link -> Continue -> the simulator's dialog -> Allow with these assets -> callback -> result page."""
    page = browser.get(path)
    assert page.status_code == 200, page.content.decode()[:300]
    start = browser.post("/connect/start/", {"invitation": page.context["invitation"].pk})
    dialog = local(start["Location"])
    shown = browser.get(dialog)
    assert shown.status_code == 200, shown.content.decode()[:300]
    oauth = {k: v for k, v in shown.context["oauth"].items() if v}
    answer = browser.post(
        dialog.split("?")[0], oauth | {"person": person, "business": ACME, "asset": assets, "action": "allow"}
    )
    callback = browser.get(local(answer["Location"]))
    assert callback.status_code == 302, callback.content.decode()[:300]
    return browser.get(callback["Location"]).content.decode()


def sweep_plan_send() -> None:
    run, chunks = start_sweep()
    for chunk in chunks:
        check_tokens(chunk, run_id=run.pk)
    plan_reminders()
    send_due_reminders()
    # Every periodic job run twice: the second run changes nothing.
    run, chunks = start_sweep()
    assert chunks == []
    plan_reminders()
    assert send_due_reminders().claimed == 0


def sent_now(before: int) -> list:
    return mail.outbox[before:]


def test_managed_account_migration_reminders_reconnect_and_the_missing_asset(simulated_meta, client, settings):
    # business_management: /me/businesses needs it (the simulator enforces permissions on reads).
    config = make_simulated_configuration(
        simulated_meta, "user", name="Pages as a person", config_id="7770002",
        permissions=["pages_show_list", "ads_read", "business_management"], asset_types=["page", "ad_account"],
    )  # fmt: skip
    acme = ClientBusiness.objects.create(name="Acme Bakery", notification_emails="ops@acme.test")
    alice = Contact.objects.create(client=acme, name="Alice", email="alice@acme.example")
    _, key = create_invitation(acme, config, contact=alice)

    # Onboarded with Alice's personal account: a user token on two Pages and an ad account.
    page = through_dialog(client, f"/invite/{key}/", person=ALICE, assets=[PAGE_1, PAGE_2, AD_1])
    assert "Acme Bakery Page 2" in page
    old = AccessToken.objects.get(kind="user")  # with a Page token per Page it derived
    assert old.kind == "user"

    ends = simulated_meta.api.migrate_to_managed_accounts(ACME).replace(microsecond=0)
    start = timezone.now()
    sweep_plan_send()
    grants = {g.asset.meta_id: g for g in AssetGrant.objects.filter(token=old).select_related("asset")}
    # /me/businesses is an asset edge too: Acme (migrating) ends, Bistro Nord (not migrating) does not.
    ending = sorted(meta_id for meta_id, g in grants.items() if g.user_access_expire_time == ends)
    assert ending == sorted([AD_1, ACME, PAGE_1, PAGE_2])
    assert {grants[meta_id].status for meta_id in ending} == {"expiring"}
    assert not mail.outbox  # 30 days out: before the first stage

    def stage(moment, expected_stage, expected_grants):
        before = len(mail.outbox)
        with time_machine.travel(moment, tick=False):
            sweep_plan_send()
        messages = sent_now(before)
        ids = [int(pk) for m in messages for pk in m.extra_headers["X-Portal-Reminder"].split(",")]
        reminders = Reminder.objects.filter(pk__in=ids)
        assert len(ids) == len(set(ids)) == reminders.count()
        assert len(messages) == 2  # one email per person per stage, listing every asset whose access ends
        assert {r.stage for r in reminders} == {expected_stage}
        assert Counter((r.subject_key, r.recipient_email) for r in reminders) == Counter(
            (f"grant:{grants[meta_id].pk}", to)
            for meta_id in expected_grants
            for to in ("alice@acme.example", "ops@acme.test")
        )
        return messages

    health = ClientHealth.objects.get(client=acme)
    assert (health.state, health.cause) == ("connected", "asset_access_end") and health.breaks_at == ends
    stage(ends - timedelta(days=14), "14d", ending)
    # The soonest end wins: the grants' end makes the token and the client "access ending on <date>".
    old.refresh_from_db()
    health.refresh_from_db()
    assert old.status == "expiring" and f"Access ending on {ends:%Y-%m-%d}" in old.status_reason
    assert (health.state, health.breaks_on, health.fix) == ("expiring", ends.date(), "reconnect")
    assert ClientBusiness.objects.get(pk=acme.pk).status == "active"
    messages = stage(ends - timedelta(days=7), "7d", ending)
    assert start < ends - timedelta(days=14)

    # The person follows the link from a 7-day email, on the web, with the work account,
    # and re-selects only Page 1 and the ad account.
    with time_machine.travel(ends - timedelta(days=6), tick=False):
        link = re.search(r"https?://\S+/invite/\S+/", messages[0].body).group(0)
        assert old.value not in messages[0].body and old.value not in messages[0].alternatives[0][0]
        result = through_dialog(client, local(link), person=DANA, assets=[PAGE_1, AD_1])
    assert "Acme Bakery Page 1" in result
    old.refresh_from_db()
    new = AccessToken.objects.get(kind="user", status__in=["active", "expiring"])
    assert old.status == "superseded" and new.pk != old.pk
    assert {PAGE_1, AD_1, ACME} <= {g.asset.meta_id for g in new.grants.select_related("asset")}
    assert PAGE_2 not in {g.asset.meta_id for g in new.grants.select_related("asset")}

    # Every grant of the old token is superseded, Page 2 (left out) too: nothing more to remind.
    assert set(AssetGrant.objects.filter(token=old).values_list("status", flat=True)) == {"superseded"}
    for moment in (ends - timedelta(days=3), ends - timedelta(days=1), ends + timedelta(minutes=10)):
        before = len(mail.outbox)
        with time_machine.travel(moment, tick=False):
            sweep_plan_send()
        assert sent_now(before) == []

    # Each (asset, stage, recipient) went out once; nothing about the old grants after reconnecting.
    sent = Reminder.objects.filter(status="sent")
    assert sent.count() == 2 * len(ending) * 2
    assert len(mail.outbox) == 2 * 2
    assert not Reminder.objects.filter(status__in=["pending", "sending", "failed"]).exists()
    health.refresh_from_db()
    assert health.state in ("connected", "expiring") and health.token_id != old.pk
