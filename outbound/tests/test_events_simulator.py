"""Events from their real causes against the Meta simulator over HTTP, delivered to a real receiver.

The sweep, Meta's signed callbacks and the onboarding dialog run as in production; the receiver
verifies every request with the README's recipe and answers 2xx only then.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import time_machine

from onboarding.invitations import create_invitation
from onboarding.links import reconnect_url
from onboarding.models import ClientBusiness, Contact
from outbound import outbox
from outbound.models import Event
from testsupport.factories import make_client, make_simulated_configuration
from tokens.models import AccessToken
from tokens.reminders import plan_reminders
from tokens.sweep import check_tokens, start_sweep
from tokens.tests.test_sweep_simulator import ACME, onboard

from .conftest import deliver_all

pytestmark = [pytest.mark.django_db(transaction=True)]

PAGE_1, PAGE_2, AD_1 = "2001000000000001", "2001000000000002", "3001000000000001"


@pytest.fixture(autouse=True)
def deliver_by_hand(monkeypatch):
    """The commit asks Celery for delivery; here the test delivers, so count the asks instead."""
    asked = []
    monkeypatch.setattr(outbox, "ask_for_delivery", lambda: asked.append(1))
    return asked


def test_a_sweep_that_finds_a_token_invalid_emits_connection_broken_once_even_when_its_chunk_runs_twice(
    simulated_meta, receiver, endpoint, deliver_by_hand
):
    token = onboard(simulated_meta, make_client(meta_business_id=None))
    deliver_all()  # connection.created
    simulated_meta.api.invalidate_token(token.value, subcode=460)

    run, chunks = start_sweep()
    for chunk in chunks:
        check_tokens(chunk, run_id=run.pk)
        check_tokens(chunk, run_id=run.pk)  # redelivered by the broker
    assert Event.objects.filter(type="connection.broken").count() == 1  # recorded with the sweep's write
    plan_reminders()  # the invalid token's "ended" stage: the same cause
    deliver_all()
    deliver_all()

    token.refresh_from_db()
    assert token.status == "invalid"
    (broken,) = receiver.events("connection.broken")
    assert broken["data"]["token"]["id"] == token.pk
    assert broken["data"]["reason"] == "invalid" and broken["data"]["error"]["code"] == 190
    assert receiver.delivered() == {event.event_id: 1 for event in Event.objects.all()}
    assert all(item.verified for item in receiver.received)
    assert all(token.value not in item.body.decode() for item in receiver.received)
    assert deliver_by_hand  # each recording transaction asked for delivery after its commit


def test_a_managed_account_migration_emits_asset_access_ending_for_each_asset(simulated_meta, receiver, endpoint):
    token = onboard(simulated_meta, make_client(meta_business_id=None), asset_ids=[PAGE_1, AD_1])
    ends = simulated_meta.api.migrate_to_managed_accounts(ACME)

    run, chunks = start_sweep()
    for chunk in chunks:
        check_tokens(chunk, run_id=run.pk)  # reads user_access_expire_time: 30 days away
    with time_machine.travel(ends - timedelta(days=10), tick=False):
        plan_reminders()
        plan_reminders()
        deliver_all()

    ending = receiver.events("asset.access_ending")
    grants = token.grants.filter(user_access_expire_time=ends.replace(microsecond=0))
    assert {PAGE_1, AD_1} <= set(grants.values_list("asset__meta_id", flat=True))  # (and the business itself)
    assert sorted(event["data"]["asset"]["meta_id"] for event in ending) == sorted(
        grants.values_list("asset__meta_id", flat=True)
    )
    assert {(event["data"]["stage"], event["data"]["breaks_on"]) for event in ending} == {
        ("14d", ends.date().isoformat())
    }
    assert {event["data"]["token"]["id"] for event in ending} == {token.pk}


def run_dialog(browser, key: str, assets) -> None:
    from onboarding.tests.test_end_to_end import run_dialog as through_the_dialog

    response = through_the_dialog(browser, key, assets=assets)
    assert response.status_code == 302


def test_onboarding_emits_connection_created_and_a_reconnect_connection_reconnected(
    simulated_meta, receiver, endpoint, client
):
    config = make_simulated_configuration(
        simulated_meta, permissions=["ads_read", "pages_show_list"], asset_types=["page", "ad_account"]
    )
    business = ClientBusiness.objects.create(name="Acme Bakery")
    contact = Contact.objects.create(client=business, email="alice@acme.example", name="Alice")
    _, key = create_invitation(business, config, contact=contact)

    run_dialog(client, key, [PAGE_1, PAGE_2, AD_1])
    first = AccessToken.objects.get()
    run_dialog(client, reconnect_url(first).split("/invite/")[1].strip("/"), [PAGE_1, AD_1])
    deliver_all()

    created, reconnected = receiver.events()
    assert (created["type"], reconnected["type"]) == ("connection.created", "connection.reconnected")
    assert sorted(asset["meta_id"] for asset in created["data"]["assets"]) == sorted([PAGE_1, PAGE_2, AD_1])
    assert reconnected["data"]["replaces_token_id"] == first.pk
    assert sorted(a["meta_id"] for a in reconnected["data"]["assets"]["covered"]) == sorted([PAGE_1, AD_1])
    assert [a["meta_id"] for a in reconnected["data"]["assets"]["missing"]] == [PAGE_2]
    body = json.dumps(receiver.events())
    assert "alice@acme.example" not in body and first.value not in body


def test_the_business_removing_the_app_emits_connection_broken_through_meta_s_signed_callbacks(
    simulated_meta, receiver, endpoint
):
    token = onboard(simulated_meta, make_client(meta_business_id=ACME))

    simulated_meta.api.remove_app(ACME, simulated_meta.app_id)
    simulated_meta.api.remove_app(ACME, simulated_meta.app_id)  # Meta retries its callbacks
    deliver_all()

    (broken,) = receiver.events("connection.broken")
    assert broken["data"]["token"]["id"] == token.pk
    assert broken["data"]["reason"] in ("revoked", "app_removed")
    assert broken["data"]["token"]["status"] == "revoked"
