"""GET /api/v1/clients/{id}/health and /api/v1/clients/health through the live server on PostgreSQL: the figure
the console shows (tokens.health), the credential's limits (404 for other clients), filters, constant queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from api.credentials import create_credential
from api.models import ApiUse, Scope
from testsupport.factories import make_asset, make_client, make_configuration, make_grant, make_token
from tokens import health
from tokens.models import AccessToken

from .conftest import assert_error

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(monkeypatch):
    """Acme: access to its ad account ends in 3 days (token in 20); Bistro: Meta invalidated its token;
    Calm Cafe: nothing ends; Waiting Co: never connected."""
    monkeypatch.setattr(health, "_standing_providers", [])  # no verification or upkeep cause here
    now = timezone.now()
    pages_and_ads, whatsapp = make_configuration(name="Pages and ads"), make_configuration(name="WhatsApp")
    acme, bistro, calm = make_client("Acme Bakery"), make_client("Bistro Nord"), make_client("Calm Cafe")
    waiting = make_client("Waiting Co", status="invited")
    token = make_token(acme, configuration=pages_and_ads, expires_at=now + timedelta(days=20))
    make_grant(token, make_asset(acme, "Acme Ads", kind="ad_account", meta_id="301"), now + timedelta(days=3))
    make_token(bistro, configuration=pages_and_ads, status=AccessToken.Status.INVALID, last_checked_at=now)
    make_token(calm, configuration=whatsapp)
    health.refresh_clients([acme.pk, bistro.pk, calm.pk, waiting.pk])
    return {"acme": acme, "bistro": bistro, "calm": calm, "waiting": waiting, "pages_and_ads": pages_and_ads,
            "whatsapp": whatsapp, "now": now}


@pytest.fixture
def api(caller, credential_factory):
    _, secret = credential_factory("Publisher", [Scope.HEALTH_READ])
    return caller.with_secret(secret)


def test_a_client_s_health_is_its_state_the_day_it_breaks_and_why(api, world):
    acme = world["acme"]

    answer = api.get(f"/api/v1/clients/{acme.pk}/health")

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["client_id"], body["client_name"], body["offboarded"]) == (acme.pk, "Acme Bakery", False)
    assert (body["state"], body["reason_code"], body["fix"]) == ("expiring", "asset_access_end", "reconnect")
    assert body["breaks_on"] == (world["now"] + timedelta(days=3)).date().isoformat()
    assert body["reason"].startswith("Access to ad account “Acme Ads” (301) ends on")
    assert body["asset"] == {"kind": "ad_account", "meta_id": "301", "name": "Acme Ads"}
    assert list(ApiUse.objects.values_list("client_id", "status_code")) == [(acme.pk, 200)]

    broken = api.get(f"/api/v1/clients/{world['bistro'].pk}/health").json()
    assert (broken["state"], broken["reason_code"]) == ("needs_reauthorization", "token_invalid")
    calm = api.get(f"/api/v1/clients/{world['calm'].pk}/health").json()
    assert (calm["state"], calm["breaks_on"], calm["reason_code"]) == ("connected", None, None)
    waiting = api.get(f"/api/v1/clients/{world['waiting'].pk}/health").json()
    assert (waiting["state"], waiting["reason"]) == ("not_connected", "Never connected.")
    assert_error(api.get("/api/v1/clients/999999/health"), 404, "client_not_found")


def test_a_credential_limited_to_some_clients_gets_404_for_the_others(caller, world, credential_factory):
    _, secret = credential_factory("Acme's service", [Scope.HEALTH_READ], clients=[world["acme"]])
    limited = caller.with_secret(secret)

    assert limited.get(f"/api/v1/clients/{world['acme'].pk}/health").status_code == 200
    hidden = assert_error(limited.get(f"/api/v1/clients/{world['bistro'].pk}/health"), 404, "client_not_found")
    unknown = assert_error(limited.get("/api/v1/clients/999999/health"), 404, "client_not_found")
    assert hidden == unknown  # the same answer: nothing learnt about other clients
    listed = limited.get("/api/v1/clients/health").json()["clients"]
    assert [row["client_id"] for row in listed] == [world["acme"].pk]


def test_a_credential_limited_to_a_configuration_sees_only_its_clients(caller, world, credential_factory):
    _, secret = credential_factory("WhatsApp service", [Scope.HEALTH_READ], configurations=[world["whatsapp"]])
    limited = caller.with_secret(secret)

    assert [row["client_id"] for row in limited.get("/api/v1/clients/health").json()["clients"]] == [
        world["calm"].pk]
    assert limited.get(f"/api/v1/clients/{world['calm'].pk}/health").status_code == 200
    assert_error(limited.get(f"/api/v1/clients/{world['acme'].pk}/health"), 404, "client_not_found")
    assert_error(limited.get(f"/api/v1/clients/{world['waiting'].pk}/health"), 404, "client_not_found")


def test_the_list_filters_by_state_how_soon_and_configuration_soonest_first(api, world):
    def ids(query: str) -> list[int]:
        answer = api.get(f"/api/v1/clients/health{query}")
        assert answer.status_code == 200, answer.text
        return [row["client_id"] for row in answer.json()["clients"]]

    acme, bistro, calm = world["acme"].pk, world["bistro"].pk, world["calm"].pk
    assert ids("") == [bistro, acme, calm]  # broke already, breaks in 3 days, never breaks
    assert ids("?state=needs_reauthorization") == [bistro]
    assert ids("?state=expiring,connected") == [acme, calm]
    assert ids("?breaks_within_days=2") == [bistro]
    assert ids("?breaks_within_days=4") == [bistro, acme]
    assert ids(f"?configuration={world['pages_and_ads'].pk}") == [acme]  # Bistro's token is not live
    first = api.get("/api/v1/clients/health?limit=2").json()
    assert [row["client_id"] for row in first["clients"]] == [bistro, acme] and first["next_offset"] == 2
    last = api.get("/api/v1/clients/health?limit=2&offset=2").json()
    assert [row["client_id"] for row in last["clients"]] == [calm] and last["next_offset"] is None


def test_bad_filters_are_refused_in_words(api, world):
    error = assert_error(api.get("/api/v1/clients/health?state=broken"), 422, "invalid_request")
    assert "broken" in error["message"]
    assert_error(api.get("/api/v1/clients/health?limit=0"), 422, "invalid_request")
    assert_error(api.get("/api/v1/clients/health?breaks_within_days=-1"), 422, "invalid_request")
    assert_error(api.get("/api/v1/clients/0/health"), 422, "invalid_request")


@pytest.mark.parametrize("clients", [2, 40])
def test_a_page_of_health_costs_the_same_queries_whatever_the_number_of_clients(
    clients, monkeypatch, django_assert_max_num_queries
):
    monkeypatch.setattr(health, "_standing_providers", [])
    made = []
    for n in range(clients):
        client = make_client(f"Client {n}")
        make_grant(make_token(client, expires_at=timezone.now() + timedelta(days=n + 1)), make_asset(client))
        made.append(client)
    health.refresh_clients([client.pk for client in made])
    _, secret = create_credential("Publisher", [Scope.HEALTH_READ])
    http = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")

    # The credential, its client and configuration limits, the rows (with their client and asset), the audit
    # row and last_used_at.
    with django_assert_max_num_queries(6):
        listed = http.get("/api/v1/clients/health?limit=500")
    with django_assert_max_num_queries(6):
        one = http.get(f"/api/v1/clients/{made[-1].pk}/health")
    assert listed.status_code == one.status_code == 200
    assert len(listed.json()["clients"]) == clients
