"""Each event type from its real cause, once per cause, with nothing secret or personal in it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from onboarding import meta_callbacks
from outbound.models import Event, EventType
from testsupport.factories import make_asset, make_client, make_configuration, make_contact, make_grant, make_token
from testsupport.fake_graph import FakeToken
from tokens.install import GrantedAsset, install_token
from tokens.models import AccessToken
from tokens.reminders import plan_reminders
from tokens.signals import tokens_invalidated

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def events(type_: str | None = None) -> list[Event]:
    found = Event.objects.order_by("id")
    return list(found.filter(type=type_) if type_ else found)


def assert_nothing_secret(token: AccessToken, event: Event) -> None:
    body = json.dumps(event.envelope())
    assert token.value and token.value not in body
    assert token.meta_user_id not in body


def install(client, configuration, value: str, assets: list[GrantedAsset], contact=None):
    info = FakeToken(user_id="1000000000007001").info()
    return install_token(
        client=client, configuration=configuration, kind=AccessToken.Kind.USER, value=value, info=info,
        assets=assets, granted_by=contact,
    )  # fmt: skip


PAGE_A = GrantedAsset("page", "2001", "Page A")
PAGE_B = GrantedAsset("page", "2002", "Page B")
ADS = GrantedAsset("ad_account", "3001", "Ads")


def test_a_first_token_is_connection_created_and_the_same_token_again_records_nothing():
    client, configuration = make_client(), make_configuration()

    result = install(client, configuration, "EAAB-first-token-value", [PAGE_A, ADS])
    install(client, configuration, "EAAB-first-token-value", [PAGE_A, ADS])

    (event,) = events()
    assert event.type == "connection.created" and event.client == client
    assert event.data["token"]["id"] == result.token.pk
    assert event.data["client"] == {"id": client.pk, "name": client.name, "meta_business_id": client.meta_business_id}
    assert event.data["configuration"]["config_id"] == configuration.config_id
    assert sorted(asset["meta_id"] for asset in event.data["assets"]) == ["2001", "3001"]
    assert_nothing_secret(result.token, event)


def test_a_later_token_of_the_pair_is_connection_reconnected_with_covered_and_missing_assets():
    client, configuration = make_client(), make_configuration()
    first = install(client, configuration, "EAAB-first-token-value", [PAGE_A, PAGE_B, ADS]).token

    second = install(client, configuration, "EAAB-second-token-value", [PAGE_A, ADS, GrantedAsset("page", "2003")])

    created, reconnected = events()
    assert (created.type, reconnected.type) == ("connection.created", "connection.reconnected")
    assert reconnected.data["replaces_token_id"] == first.pk
    assert reconnected.data["token"]["id"] == second.token.pk
    assets = reconnected.data["assets"]
    assert [a["meta_id"] for a in assets["covered"]] == ["3001", "2001"]
    assert [a["meta_id"] for a in assets["missing"]] == ["2002"]
    assert [a["meta_id"] for a in assets["new"]] == ["2003"]


def test_a_token_that_died_is_followed_by_connection_reconnected_too():
    client, configuration = make_client(), make_configuration()
    first = make_token(client, configuration=configuration, status="invalid")

    install(client, configuration, "EAAB-fresh-token-value", [PAGE_A])

    (event,) = events()
    assert event.type == "connection.reconnected" and event.data["replaces_token_id"] == first.pk


def test_a_token_reaching_a_stage_is_connection_expiring_once_per_stage_with_the_day_it_breaks():
    ends = NOW + timedelta(days=6, hours=3)
    token = make_token(make_client(), expires_at=ends)

    with time_machine.travel(NOW, tick=False) as clock:
        plan_reminders()
        plan_reminders()  # every 15 minutes: nothing new
        (seven,) = events()
        clock.shift(timedelta(days=4))
        plan_reminders()
        plan_reminders()

    three = events()[1]
    assert [e.type for e in events()] == ["connection.expiring"] * 2
    assert (seven.data["stage"], three.data["stage"]) == ("7d", "3d")
    assert seven.data["reason"] == "token_expiring"
    assert seven.data["ends_at"] == "2026-05-10T12:00:00Z" and seven.data["breaks_on"] == "2026-05-10"
    assert seven.data["token"]["expires_at"] == "2026-05-10T12:00:00Z"
    assert_nothing_secret(token, seven)


def test_a_token_nobody_can_be_emailed_about_still_gets_its_event():
    make_token(make_client(notification_emails=""), expires_at=NOW + timedelta(days=2))

    with time_machine.travel(NOW, tick=False):
        plan_reminders()

    assert [e.data["stage"] for e in events("connection.expiring")] == ["3d"]


def test_data_access_ending_first_is_the_reason_given():
    make_token(make_client(), expires_at=NOW + timedelta(days=50), data_access_expires_at=NOW + timedelta(days=1))

    with time_machine.travel(NOW, tick=False):
        plan_reminders()

    (event,) = events()
    assert (event.data["reason"], event.data["stage"]) == ("data_access_expiring", "1d")


def test_connection_expiring_carries_the_client_s_day_it_breaks_the_earliest_of_every_end():
    client = make_client()
    token = make_token(client, expires_at=NOW + timedelta(days=6))
    make_grant(make_token(client), make_asset(client, "Acme Ads", kind="ad_account", meta_id="301"),
               NOW + timedelta(days=4))

    with time_machine.travel(NOW, tick=False):
        plan_reminders()

    (expiring,) = [event for event in events() if event.type == "connection.expiring"]
    assert expiring.data["token"]["id"] == token.pk and expiring.data["ends_at"] == "2026-05-10T09:00:00Z"
    assert expiring.data["breaks_on"] == "2026-05-08"  # the ad account's end, as the console and the API say
    assert expiring.data["breaks_cause"] == "asset_access_end"
    assert expiring.data["breaks_reason"].startswith("Access to ad account “Acme Ads” (301) ends on 2026-05-08")


def test_a_token_whose_access_ended_is_connection_broken_once():
    token = make_token(make_client(), expires_at=NOW - timedelta(hours=5))

    with time_machine.travel(NOW, tick=False):
        plan_reminders()
        plan_reminders()

    (event,) = events()
    assert event.type == "connection.broken" and event.key == f"connection.broken:token:{token.pk}"
    assert (event.data["reason"], event.data["detail"]) == ("access_ended", "token_expiring")
    assert event.data["ended_at"] == "2026-05-04T04:00:00Z"


def test_an_asset_whose_access_ends_is_asset_access_ending_per_stage_unless_a_newer_token_covers_it():
    client = make_client()
    old = make_token(client)
    page, ads = make_asset(client, "Acme Page"), make_asset(client, "Acme Ads", kind="ad_account")
    make_grant(old, page, NOW + timedelta(days=10))
    make_grant(old, ads, NOW + timedelta(days=10))
    # Another configuration's token has the ad account: its access no longer ends.
    make_grant(make_token(client), ads)

    with time_machine.travel(NOW, tick=False):
        plan_reminders()
        plan_reminders()

    (event,) = events()
    assert event.type == "asset.access_ending"
    assert event.data["asset"] == {"kind": "page", "meta_id": page.meta_id, "name": "Acme Page"}
    assert (event.data["stage"], event.data["breaks_on"]) == ("14d", "2026-05-14")
    assert event.data["token"]["id"] == old.pk


def test_an_invalid_token_is_connection_broken_once_whoever_reports_it():
    token = make_token(make_client(), status="invalid", error_code=190, error_subcode=460)

    tokens_invalidated.send(sender=AccessToken, token_ids=[token.pk])
    tokens_invalidated.send(sender=AccessToken, token_ids=[token.pk])  # the API's proxy sees a 190 too
    assert len(events()) == 1
    with time_machine.travel(token.updated_at + timedelta(minutes=1), tick=False):
        plan_reminders()  # the "ended" stage of an invalid token: the same cause

    (event,) = events()
    assert (event.data["reason"], event.data["error"]) == ("invalid", {"code": 190, "subcode": 460})


def test_a_token_revoked_meanwhile_is_not_reported_invalid():
    token = make_token(make_client(), status="revoked")

    tokens_invalidated.send(sender=AccessToken, token_ids=[token.pk])

    assert events() == []


def test_deauthorize_is_connection_broken_revoked_for_the_token_and_its_granular_children():
    client = make_client()
    parent = make_token(client, kind="system_user", meta_user_id="9001")
    child = make_token(client, kind="granular_system_user", configuration=None, parent=parent, purpose="ads")

    meta_callbacks.deauthorize("9001")
    meta_callbacks.deauthorize("9001")

    reported = {e.data["token"]["id"]: e for e in events()}
    assert set(reported) == {parent.pk, child.pk}
    assert {(e.type, e.data["reason"], e.data["detail"]) for e in reported.values()} == {
        ("connection.broken", "revoked", "deauthorized")
    }
    assert reported[child.pk].data["token"]["purpose"] == "ads"
    assert reported[child.pk].data["token"]["parent_id"] == parent.pk


def test_a_data_deletion_is_connection_broken_without_the_person_s_identifiers():
    client = make_client()
    contact = make_contact(client, email="ada@acme.test", meta_user_id="7777001")
    token = make_token(client, granted_by=contact, meta_user_id="7777001")

    meta_callbacks.delete_user_data("7777001")

    (event,) = events()
    assert (event.data["reason"], event.data["detail"]) == ("revoked", "data_deletion")
    body = json.dumps(event.envelope())
    assert "7777001" not in body and "ada@acme.test" not in body
    assert str(token.pk) in body


def test_the_business_uninstalling_is_connection_broken_app_removed():
    client = make_client(meta_business_id="9100000000000042")
    token = make_token(client, kind="system_user")
    body = {
        "object": "application",
        "entry": [{"id": "1", "time": 0, "changes": [
            {"field": "business_integration_uninstall", "value": {"business_manager_id": "9100000000000042"}},
        ]}],
    }  # fmt: skip

    meta_callbacks.receive_webhook(json.dumps(body).encode())

    (event,) = events()
    assert event.data["token"]["id"] == token.pk
    assert (event.type, event.data["reason"]) == ("connection.broken", "app_removed")


def test_every_event_type_listed_has_a_cause():
    assert set(EventType.values) == {
        "connection.created", "connection.expiring", "connection.broken", "connection.reconnected",
        "asset.access_ending",
    }  # fmt: skip
