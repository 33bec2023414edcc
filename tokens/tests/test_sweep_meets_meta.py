"""The token lifecycle against the simulator in the cases a faithful Meta produces (issue #16):

- a Page token whose user token expires (the user token is what the portal watches);
- a person removing one permission (shown as "permission removed" with a reconnect, not "invalid");
- one business throttled while the others are swept at full speed;
- a WhatsApp business migrating to managed Meta accounts, its contacts reminded.
"""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.db.models import BinaryField
from django.db.models.functions import Cast
from django.utils import timezone

from onboarding.models import ClientBusiness
from testsupport.factories import install_simulated_token, make_client, make_contact
from tokens.models import AccessToken, AssetGrant, Reminder, TokenEvent
from tokens.page_tokens import derive_page_tokens
from tokens.reminders import plan_reminders, send_due_reminders
from tokens.signals import reminder_stages_due
from tokens.sweep import check_tokens, start_sweep

pytestmark = pytest.mark.django_db(transaction=True)

ACME, BISTRO, COBALT = "9100000000000001", "9100000000000002", "9100000000000003"
BOB, CARLA = "1000000000000002", "1000000000000003"
PAGE_1, PAGE_2 = "2001000000000001", "2001000000000002"
AD_1 = "3001000000000001"
WABA_1 = "4001000000000001"
PAGE_SCOPES = ["pages_show_list", "pages_read_engagement"]


def onboard(meta, client, *, person_id=BOB, **issue):
    return install_simulated_token(meta, client, business_id=client.meta_business_id, person_id=person_id, **issue)


def sweep(**kwargs):
    run, chunks = start_sweep()
    return [check_tokens(chunk, run_id=run.pk, **kwargs) for chunk in chunks]


def remind() -> list:
    before = len(mail.outbox)
    plan_reminders()
    send_due_reminders()
    return mail.outbox[before:]


def grant_statuses(token) -> dict[str, str]:
    return dict(AssetGrant.objects.filter(token=token).values_list("asset__meta_id", "status"))


# --- Page tokens -----------------------------------------------------------------------------------


def test_page_tokens_are_derived_stored_encrypted_and_end_with_their_user_token(simulated_meta):
    client = make_client(meta_business_id=ACME)
    bob = make_contact(client, "bob@acme.example")
    user = onboard(
        simulated_meta, client, scopes=PAGE_SCOPES, asset_ids=[PAGE_1, PAGE_2], contact=bob, expires_in=10 * 86400
    )

    pages = derive_page_tokens(user)

    assert {page.grants.get().asset.meta_id for page in pages} == {PAGE_1, PAGE_2}
    assert {(page.kind, page.parent_id, page.expires_at) for page in pages} == {("page", user.pk, None)}
    stored = AccessToken.objects.filter(kind="page").annotate(raw=Cast("value", BinaryField()))
    for page in stored:
        assert page.value.startswith("EAA") and page.value.encode() not in bytes(page.raw)
    assert derive_page_tokens(user) == []  # the same Page tokens are not stored twice

    sweep()
    for page in AccessToken.objects.filter(kind="page"):
        assert page.status == "expiring"  # no expiry of its own, but its user token ends in 10 days
        assert page.ends_at() == user.expires_at
    emails = remind()
    assert sorted(m.to[0] for m in emails) == ["bob@acme.example", "ops@acme.test"]
    assert set(Reminder.objects.values_list("token__kind", "reason", "stage")) == {("user", "token_expiring", "14d")}
    assert "Acme Bakery Page 1" in emails[0].body and "Acme Bakery Page 2" in emails[0].body

    with time_machine.travel(user.expires_at + timedelta(minutes=1), tick=False):
        sweep()
        emails = remind()
    statuses = dict(AccessToken.objects.values_list("kind", "status").distinct())
    assert statuses == {"user": "invalid", "page": "invalid"}  # Meta: 190/463 for both
    assert set(AccessToken.objects.values_list("error_subcode", flat=True)) == {463}
    assert {r.token.kind for r in Reminder.objects.filter(reason="token_invalid")} == {"user"}
    assert len(emails) == 2  # one "stopped working" email per person, not one per Page token


def test_a_page_token_does_not_hide_the_end_of_its_user_tokens_access_to_the_page(simulated_meta):
    client = make_client(meta_business_id=ACME)
    user = onboard(simulated_meta, client, scopes=PAGE_SCOPES, asset_ids=[PAGE_1])
    derive_page_tokens(user)
    ends = simulated_meta.api.migrate_to_managed_accounts(ACME).replace(microsecond=0)

    with time_machine.travel(ends - timedelta(days=3), tick=False):
        sweep()
        remind()

    # The Page token's grant never ends by itself, yet it is no cover: it dies with the user token's access.
    page_grant = AssetGrant.objects.get(token=user, asset__meta_id=PAGE_1)
    assert page_grant.user_access_expire_time == ends
    assert Reminder.objects.filter(grant=page_grant, stage="3d").count() == 1  # to the notification address


def test_reconnecting_derives_new_page_tokens_that_supersede_the_old(simulated_meta):
    client = make_client(meta_business_id=ACME)
    first = onboard(simulated_meta, client, scopes=PAGE_SCOPES, asset_ids=[PAGE_1])
    (old_page,) = derive_page_tokens(first)
    second = onboard(simulated_meta, client, scopes=PAGE_SCOPES, asset_ids=[PAGE_1])
    # A new configuration each time: the first user token stays live, its Page token is replaced.
    (new_page,) = derive_page_tokens(second)

    old_page.refresh_from_db()
    assert (old_page.status, old_page.superseded_by_id) == ("superseded", new_page.pk)
    assert new_page.parent_id == second.pk


def test_revoking_the_user_token_revokes_its_page_tokens(simulated_meta):
    from tokens.install import revoke_tokens_for_user

    client = make_client(meta_business_id=ACME)
    user = onboard(simulated_meta, client, scopes=PAGE_SCOPES, asset_ids=[PAGE_1])
    derive_page_tokens(user)

    revoke_tokens_for_user(BOB)

    assert set(AccessToken.objects.values_list("kind", "status")) == {("user", "revoked"), ("page", "revoked")}


# --- A permission removed --------------------------------------------------------------------------


def test_a_revoked_permission_is_shown_as_permission_removed_with_a_reconnect_not_as_invalid(
    simulated_meta, stub_reconnect_links
):
    client = make_client(meta_business_id=ACME)
    bob = make_contact(client, "bob@acme.example")
    token = onboard(
        simulated_meta, client, scopes=["pages_show_list", "ads_read", "business_management"],
        asset_ids=[PAGE_1, AD_1], contact=bob,
    )  # fmt: skip
    sweep()
    assert remind() == []

    simulated_meta.api.revoke_permission("ads_read", token=token.value)
    tomorrow = timezone.now() + timedelta(days=1)
    with time_machine.travel(tomorrow, tick=False):
        sweep()

    token.refresh_from_db()
    assert token.status == "active" and token.error_code is None
    assert token.missing_permissions == ["ads_read"]
    assert token.status_reason == "Permission removed: ads_read. Reconnect to grant it again."
    assert grant_statuses(token) == {PAGE_1: "active", AD_1: "permission_removed", ACME: "active"}
    assert TokenEvent.objects.filter(token=token, kind="permission_removed").count() == 1
    assert ClientBusiness.objects.get(pk=client.pk).status == "active"  # nothing to reauthorize wholesale

    announced = []
    reminder_stages_due.connect(lambda sender, stages, **kw: announced.extend(stages), weak=False, dispatch_uid="t")
    try:
        with time_machine.travel(tomorrow, tick=False):
            emails = remind()
    finally:
        reminder_stages_due.disconnect(dispatch_uid="t")
    assert sorted(m.to[0] for m in emails) == ["bob@acme.example", "ops@acme.test"]
    # Not a stage of an ending: receivers of reminder_stages_due would call the connection broken.
    assert [stage for stage in announced if stage.reason == "permission_removed"] == []
    assert "permission" in emails[0].subject
    assert "ads_read" in emails[0].body and "Acme Bakery Ad account 1" in emails[0].body
    assert "Acme Bakery Page 1" not in emails[0].body  # still working: not listed
    assert f"/invite/reconnect-{client.pk}-" in emails[0].body

    with time_machine.travel(tomorrow + timedelta(days=1), tick=False):
        sweep()  # the day after: nothing new to say
        assert remind() == []
    assert TokenEvent.objects.filter(token=token, kind="permission_removed").count() == 1


# --- One business throttled -------------------------------------------------------------------------


def test_one_throttled_business_waits_while_the_others_are_swept_at_full_speed(simulated_meta, monkeypatch):
    monkeypatch.setattr("tokens.sweep.chunk.META_BATCH", 2)  # several Graph batches in one chunk
    clients = {business: make_client(meta_business_id=business) for business in (ACME, BISTRO, COBALT)}
    order = [ACME, BISTRO, ACME, COBALT, ACME, BISTRO]
    tokens = [
        onboard(
            simulated_meta, clients[business], token_type="system_user", scopes=["pages_show_list", "ads_read"],
            asset_ids=[f"20{n:02d}000000000001", f"30{n:02d}000000000001"],
        )
        for business, n in zip(order, [1, 2, 1, 3, 1, 2], strict=True)
    ]  # fmt: skip
    simulated_meta.api.throttle_business(ACME, minutes=30)
    calls_before = simulated_meta.api.call_count()
    pauses = []
    now = timezone.now()

    (result,) = sweep(sleep=pauses.append)

    assert pauses == [] and result.requests_paused == 0  # nobody slowed down for Acme
    # Batches of two: (Acme 1, Bistro 1) asked; Acme 2 and Acme 3 held back without a call.
    assert simulated_meta.api.call_count() - calls_before == 4 + 2 + 2
    assert result.business_throttled == 3 and result.checked == 4 and result.invalid == 0
    for token, business in zip(tokens, order, strict=True):
        token.refresh_from_db()
        assert token.status == "active"
        assert set(grant_statuses(token).values()) == {"active"}
        wait = token.next_check_at - now
        if business == ACME:
            assert timedelta(minutes=29) < wait <= timedelta(minutes=31), "Meta said 30 minutes"
        else:
            assert wait > timedelta(hours=20), "checked: next look the day after"

    with time_machine.travel(now + timedelta(minutes=31), tick=False):
        (later,) = sweep(sleep=pauses.append)
    assert (later.checked, later.business_throttled) == (3, 0)


# --- WhatsApp and managed accounts ---------------------------------------------------------------


def test_a_whatsapp_business_migrating_to_managed_accounts_gets_its_contacts_reminded(
    simulated_meta, stub_reconnect_links
):
    client = make_client(meta_business_id=ACME)
    bob = make_contact(client, "bob@acme.example")
    token = onboard(
        simulated_meta, client, scopes=["whatsapp_business_management", "whatsapp_business_messaging"],
        asset_ids=[WABA_1], contact=bob,
    )  # fmt: skip
    assert grant_statuses(token) == {WABA_1: "active"}

    ends = simulated_meta.api.migrate_to_managed_accounts(ACME).replace(microsecond=0)
    sweep()

    waba = AssetGrant.objects.get(token=token, asset__meta_id=WABA_1)
    assert (waba.status, waba.user_access_expire_time) == ("expiring", ends)
    assert remind() == []  # 30 days out: before the first stage

    with time_machine.travel(ends - timedelta(days=7), tick=False):
        sweep()
        emails = remind()
    assert sorted(m.to[0] for m in emails) == ["bob@acme.example", "ops@acme.test"]
    reminder = Reminder.objects.get(recipient_email="bob@acme.example")
    assert (reminder.reason, reminder.stage, reminder.grant_id) == ("asset_access_ending", "7d", waba.pk)
    assert WABA_1 in emails[0].body  # granted through granular_scopes: Meta gave no name for it
    assert "managed Meta (work) account" in emails[0].body
    assert f"/invite/reconnect-{client.pk}-" in emails[0].body
