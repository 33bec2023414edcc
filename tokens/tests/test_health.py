"""The one rule for states (tokens.health): tokens, grants and a client's connection tell one story."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from onboarding.models import ClientBusiness
from testsupport.factories import make_asset, make_client, make_configuration, make_grant, make_token
from testsupport.fake_graph import FakeGraph, FakeToken
from tokens import health
from tokens.install import GrantedAsset, install_token, revoke_token, revoke_tokens_for_user
from tokens.models import AccessToken, AssetGrant, ClientHealth
from tokens.sweep import check_tokens, start_sweep

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def no_standing(monkeypatch):
    """No verification or upkeep cause: the tests of tokens and grants alone."""
    monkeypatch.setattr(health, "_standing_providers", [])


def stored(client) -> ClientHealth:
    return ClientHealth.objects.get(client=client)


def client_status(client) -> str:
    return ClientBusiness.objects.get(pk=client.pk).status


def info(**fields):
    defaults = {"app_id": "1", "user_id": "42", "scopes": ["pages_show_list"], "granular_scopes": [],
                "issued_at": None, "expires_at": None, "data_access_expires_at": None}
    return SimpleNamespace(**{**defaults, **fields})


def install(client, configuration, value, assets, **fields):
    return install_token(client=client, configuration=configuration, kind="user", value=value, info=info(**fields),
                         assets=[GrantedAsset("page", meta_id, f"Page {meta_id}") for meta_id in assets])


def sweep(meta):
    run, chunks = start_sweep()
    for chunk in chunks:
        check_tokens(chunk, run_id=run.pk, client=meta, sleep=lambda s: None)


def test_after_a_managed_accounts_migration_the_token_and_the_client_say_access_ending_on_the_date(
    frozen, no_standing, active_client
):
    meta = FakeGraph()
    token = make_token(active_client, value="user", expires_at=NOW + 60 * DAY, next_check_at=NOW)
    page = make_asset(active_client, "Acme Page", meta_id="101")
    make_grant(token, page)
    meta.tokens["user"] = FakeToken(expires_at=NOW + 60 * DAY, assets={"101": ("page", "Acme Page", NOW + 10 * DAY)})

    sweep(meta)

    token.refresh_from_db()
    grant = token.grants.get()
    assert grant.status == "expiring"
    assert token.status == "expiring"
    assert token.status_reason == "Access ending on 2026-03-12: access to page 101 ends (Meta's managed accounts)."
    row = stored(active_client)
    assert (row.state, row.breaks_at, row.cause, row.fix) == ("expiring", NOW + 10 * DAY, "asset_access_end",
                                                              "reconnect")
    assert row.breaks_on.isoformat() == "2026-03-12"
    assert row.breaks_reason == "Access to page “Acme Page” (101) ends on 2026-03-12 (Meta's managed accounts)."
    assert (row.token_id, row.asset_id) == (token.pk, page.pk)
    assert client_status(active_client) == "active"  # access ending is still connected


def test_the_soonest_end_wins_for_the_token_and_the_client(frozen, no_standing, active_client):
    token = make_token(active_client, expires_at=NOW + 9 * DAY, data_access_expires_at=NOW + 30 * DAY)
    make_grant(token, make_asset(active_client), NOW + 12 * DAY)

    health.refresh_clients([active_client.pk])
    row = stored(active_client)
    assert (row.state, row.cause, row.breaks_at) == ("expiring", "token_expiry", NOW + 9 * DAY)
    assert row.breaks_reason == "The user token expires on 2026-03-11."

    AccessToken.objects.filter(pk=token.pk).update(data_access_expires_at=NOW + 3 * DAY)
    health.refresh_clients([active_client.pk])
    row = stored(active_client)
    assert (row.cause, row.breaks_at) == ("data_access_expiry", NOW + 3 * DAY)

    end = health.token_soonest_end(token, [(NOW + 2 * DAY, "page 1")])
    assert (end.cause, end.at) == ("asset_access_end", NOW + 2 * DAY)
    assert health.token_status(token, end, NOW) == (
        "expiring", "Access ending on 2026-03-04: access to page 1 ends (Meta's managed accounts).")
    far = health.token_soonest_end(token, [(NOW + 40 * DAY, "page 1")])
    assert health.token_status(token, health.Ending(NOW + 40 * DAY, "token_expiry"), NOW) == ("active", "")
    assert far.cause == "token_expiry"


def test_nothing_ending_is_connected_with_no_day_and_a_client_without_tokens_is_not_connected(no_standing):
    connected, waiting = make_client(), make_client(status="invited")
    make_grant(make_token(connected), make_asset(connected))

    health.refresh_clients([connected.pk, waiting.pk])

    assert (stored(connected).state, stored(connected).breaks_at) == ("connected", None)
    assert health.compute([waiting.pk])[waiting.pk].state == "not_connected"
    assert not ClientHealth.objects.filter(client=waiting).exists()  # no row: never connected


def test_a_reconnect_supersedes_every_grant_of_the_old_token_even_a_dropped_asset(
    frozen, no_standing, active_client
):
    configuration = make_configuration()
    old = install(active_client, configuration, "EAAB-one", ["201", "202"]).token
    AssetGrant.objects.filter(token=old, asset__meta_id="202").update(user_access_expire_time=NOW + 5 * DAY,
                                                                      status="expiring")
    health.refresh_clients([active_client.pk])
    assert stored(active_client).cause == "asset_access_end"

    new = install(active_client, configuration, "EAAB-two", ["201"]).token  # Page 202 left out on purpose

    assert set(AssetGrant.objects.filter(token=old).values_list("status", flat=True)) == {"superseded"}
    assert set(new.grants.values_list("status", flat=True)) == {"active"}
    row = stored(active_client)
    assert (row.state, row.breaks_at, row.cause) == ("connected", None, "")


def test_an_expiry_that_passed_needs_reauthorization_and_the_client_follows_then_a_reconnect_mends_it(
    frozen, no_standing, active_client
):
    configuration = make_configuration()
    install(active_client, configuration, "EAAB-one", ["201"], expires_at=NOW + 20 * DAY)
    assert stored(active_client).state == "connected"

    with time_machine.travel(NOW + 20 * DAY + timedelta(minutes=1), tick=False):
        assert health.refresh_due()["state_changes"] == 1
    row = stored(active_client)
    assert (row.state, row.cause, row.fix) == ("needs_reauthorization", "token_expiry", "reconnect")
    assert client_status(active_client) == "needs_reauth"

    with time_machine.travel(NOW + 21 * DAY, tick=False):
        install(active_client, configuration, "EAAB-two", ["201"], expires_at=NOW + 80 * DAY)
    assert stored(active_client).state == "connected"
    assert client_status(active_client) == "active"


def test_an_asset_whose_access_ended_or_a_removed_permission_keeps_the_client_active_with_the_day_it_broke(
    frozen, no_standing, active_client
):
    token = make_token(active_client, expires_at=NOW + 50 * DAY)
    make_grant(token, make_asset(active_client, "Old Page"), NOW - DAY, status="ended")

    health.refresh_clients([active_client.pk])

    row = stored(active_client)
    assert (row.state, row.cause, row.breaks_at) == ("expiring", "asset_access_end", NOW - DAY)
    assert "ended on 2026-03-01" in row.breaks_reason
    assert client_status(active_client) == "active"  # the token works for the rest (D21)

    AssetGrant.objects.update(status="removed")
    AccessToken.objects.filter(pk=token.pk).update(missing_permissions=["ads_read"], permissions_removed_at=NOW)
    health.refresh_clients([active_client.pk])
    row = stored(active_client)
    assert (row.state, row.cause) == ("expiring", "permission_removed")
    assert row.breaks_reason == "The person removed ads_read on 2026-03-02."


def test_an_invalid_token_needs_reauthorization_through_the_sweep(frozen, no_standing, active_client):
    from graph.errors import InvalidTokenError

    meta = FakeGraph()
    make_token(active_client, value="dead", expires_at=NOW + 60 * DAY, next_check_at=NOW)
    meta.tokens["dead"] = FakeToken(is_valid=False, error=InvalidTokenError("Session has expired", code=190,
                                                                            subcode=463))
    sweep(meta)

    row = stored(active_client)
    assert (row.state, row.cause, row.breaks_at) == ("needs_reauthorization", "token_invalid", NOW)
    assert row.breaks_reason.startswith("Meta stopped accepting the user token on 2026-03-02")
    assert client_status(active_client) == "needs_reauth"


def test_revoked_tokens_disconnect_the_client_whoever_revokes(frozen, no_standing, active_client):
    token = make_token(active_client, meta_user_id="555")
    revoke_tokens_for_user("555")
    row = stored(active_client)
    assert (row.state, row.cause, row.breaks_at) == ("disconnected", "revoked", NOW)
    assert client_status(active_client) == "disconnected"

    other = make_client()
    staff_revoked = make_token(other)
    health.refresh_clients([other.pk])
    revoke_token(staff_revoked, graph=FakeGraph())  # staff's Revoke: the same rule, the same state
    assert stored(other).state == "disconnected" and client_status(other) == "disconnected"
    assert token.pk != staff_revoked.pk


def test_the_verification_deadline_breaks_gated_permissions_of_people_without_a_role(frozen, active_client):
    from testsupport.factories import make_verification_record
    from verification.models import AppRole, UpkeepRule

    UpkeepRule.objects.update(is_active=False)  # upkeep has its own test
    deadline = (NOW + 20 * DAY).date()
    make_verification_record("required", deadline=deadline)
    gated = make_token(active_client, expires_at=NOW + 50 * DAY, scopes=["pages_show_list", "ads_read"])
    plain = make_client()
    make_token(plain, expires_at=NOW + 50 * DAY, scopes=["whatsapp_business_management"])  # not gated

    health.refresh_clients([active_client.pk, plain.pk])

    row = stored(active_client)
    assert (row.state, row.cause, row.fix) == ("connected", "verification_deadline", "provider")
    assert row.breaks_at == datetime(2026, 3, 23, tzinfo=UTC)  # the day after the deadline, when Meta refuses
    assert "verification deadline 2026-03-22" in row.breaks_reason
    assert stored(plain).cause == "token_expiry"

    with time_machine.travel(NOW + 25 * DAY, tick=False):  # passed, still unverified: broken, not the client's to mend
        health.refresh_clients([active_client.pk])
    assert stored(active_client).state == "expiring" and client_status(active_client) == "active"

    # A role on the app: never refused.
    AppRole.objects.create(name="Ana", meta_user_id=gated.meta_user_id, role="tester")
    health.refresh_due()
    assert stored(active_client).cause == "token_expiry"


def test_upkeep_at_risk_breaks_the_clients_with_ads_permissions_today(frozen, active_client):
    from verification.models import UpkeepRule

    UpkeepRule.objects.update(is_active=False)
    UpkeepRule.objects.create(name="Meta 2025", min_calls=500, calls_window_days=15, max_error_rate=15,
                              error_window="days", error_window_days=15, is_active=True)
    make_token(active_client, expires_at=NOW + 50 * DAY, scopes=["ads_management"])

    health.refresh_clients([active_client.pk])

    row = stored(active_client)
    assert (row.state, row.cause, row.fix) == ("expiring", "upkeep_at_risk", "provider")
    assert row.breaks_at == datetime(2026, 3, 2, tzinfo=UTC)
    assert row.breaks_reason.startswith("Marketing API upkeep is not met now (rule: Meta 2025)")


def test_the_periodic_recompute_takes_what_time_changed_and_everything_when_the_standing_changed(
    no_standing, monkeypatch, active_client
):
    from django.core.cache import cache

    cache.delete(health.STANDING_KEY)
    with time_machine.travel(NOW, tick=False):
        make_token(active_client, expires_at=NOW + 20 * DAY)
        untouched = make_client()
        make_token(untouched, expires_at=NOW + 90 * DAY)
        assert health.refresh_due()["scope"] == "all"  # the first run: no signature known
        assert stored(active_client).state == "connected"
        assert health.refresh_due() == {"scope": "due", "clients": 0, "state_changes": 0}
    with time_machine.travel(NOW + 7 * DAY, tick=False):
        assert health.refresh_due() == {"scope": "due", "clients": 1, "state_changes": 1}
        assert stored(active_client).state == "expiring"

        cause = health.StandingCause("upkeep_at_risk", NOW, "Upkeep.", health.Q(pk__in=[]))
        monkeypatch.setattr(health, "_standing_providers", [lambda now: [cause]])
        assert health.refresh_due()["scope"] == "all"


def test_recomputing_many_clients_takes_the_same_number_of_queries_as_a_few(no_standing):
    def queries_for(count: int) -> int:
        clients = [make_client() for _ in range(count)]
        for client in clients:
            token = make_token(client, expires_at=NOW + 30 * DAY)
            make_grant(token, make_asset(client), NOW + 10 * DAY)
            make_token(client, status="invalid")
        with CaptureQueriesContext(connection) as queries:
            health.refresh_clients([client.pk for client in clients])
        return len(queries)

    assert queries_for(30) <= queries_for(3)
