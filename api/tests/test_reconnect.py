"""POST /api/v1/reconnect through the live API, the new tokens issued and inspected by the simulator over HTTP.

Every refusal answers a 4xx or a per-asset status with a message and leaves the database as it was; a good
request moves exactly the covered grants, and the same request twice changes nothing the second time.
"""

from __future__ import annotations

import pytest

from api.models import Scope
from onboarding.models import ClientBusiness
from simulator.api import asset_id_for
from simulator.models import SimAsset
from testsupport.factories import install_simulated_token, make_contact
from tokens.models import AccessToken, AssetGrant, TokenEvent

from .conftest import assert_error

pytestmark = pytest.mark.django_db(transaction=True)

ACME, BISTRO = "9100000000000001", "9100000000000002"
ALICE = "1000000000000001"
PAGE_1, PAGE_2 = asset_id_for(SimAsset.Kind.PAGE, 1, 1), asset_id_for(SimAsset.Kind.PAGE, 1, 2)
AD_1 = asset_id_for(SimAsset.Kind.AD_ACCOUNT, 1, 1)
BISTRO_PAGE = asset_id_for(SimAsset.Kind.PAGE, 2, 1)
SCOPES = ["business_management", "pages_show_list", "pages_read_engagement", "ads_read"]


@pytest.fixture
def world(simulated_meta, caller, credential_factory):
    """Acme with a system-user token on two Pages and an ad account, Bistro with one on its Page."""
    acme = ClientBusiness.objects.create(name="Acme Bakery", meta_business_id=ACME, status="active")
    bistro = ClientBusiness.objects.create(name="Bistro Nord", meta_business_id=BISTRO, status="active")
    old = install_simulated_token(simulated_meta, acme, token_type="system_user", business_id=ACME,
                                  asset_ids=[PAGE_1, PAGE_2, AD_1], scopes=SCOPES)  # fmt: skip
    install_simulated_token(simulated_meta, bistro, token_type="system_user", business_id=BISTRO,
                            asset_ids=[BISTRO_PAGE], scopes=SCOPES)  # fmt: skip
    _, secret = credential_factory("Publisher", [Scope.RECONNECT_WRITE])
    return simulated_meta, caller.with_secret(secret), acme, old


def new_token(meta, **issue) -> str:
    issue.setdefault("token_type", "system_user")
    issue.setdefault("business_id", ACME)
    issue.setdefault("scopes", SCOPES)
    return meta.api.issue_token(**issue)


def post(api, body):
    return api.request("POST", "/api/v1/reconnect", json=body)


def snapshot() -> dict:
    return {
        "tokens": list(AccessToken.objects.order_by("pk").values_list("pk", "status", "superseded_by", "fingerprint")),
        "grants": list(AssetGrant.objects.order_by("pk").values_list("pk", "token", "asset", "status")),
        "events": TokenEvent.objects.count(),
        "clients": list(ClientBusiness.objects.order_by("pk").values_list("pk", "status")),
    }


def statuses(response) -> dict[str, str]:
    assert response.status_code == 200, response.text[:500]
    return {entry["asset_id"]: entry["status"] for entry in response.json()["assets"]}


def serving(asset_meta_id: str) -> AccessToken:
    """The live token holding the asset's grant."""
    return AssetGrant.objects.select_related("token").get(asset__meta_id=asset_meta_id, token__status="active").token


def test_a_good_request_moves_exactly_the_covered_grants_and_keeps_the_old_token(world):
    meta, api, acme, old = world
    value = new_token(meta, asset_ids=[PAGE_1, AD_1])

    response = post(api, {"access_token": value, "asset_ids": [PAGE_1, f"act_{AD_1}", PAGE_2]})

    assert statuses(response) == {PAGE_1: "moved", AD_1: "moved", PAGE_2: "not_covered"}
    body = response.json()
    new = AccessToken.objects.get(pk=body["token_id"])
    assert (body["client_id"], body["replaced_token_id"], body["moved"]) == (acme.pk, old.pk, 2)
    assert new.value == value and new.kind == "system_user" and new.configuration_id == old.configuration_id
    # What the token covers, as onboarding stores it: the two assets and Acme's business itself.
    assert set(new.grants.values_list("asset__meta_id", flat=True)) == {PAGE_1, AD_1, ACME}
    old.refresh_from_db()
    assert (old.status, old.superseded_by_id) == ("superseded", new.pk)
    assert old.grants.count() == 4  # the history stays (three assets and the business)
    names = {entry["asset_id"]: entry["name"] for entry in body["assets"]}
    assert names[PAGE_1] == "Acme Bakery Page 1"
    assert value not in response.text


def test_the_same_request_twice_changes_nothing_the_second_time(world):
    meta, api, acme, old = world
    value = new_token(meta, asset_ids=[PAGE_1, PAGE_2, AD_1])
    first = post(api, {"access_token": value, "asset_ids": [PAGE_1, PAGE_2]})
    assert statuses(first) == {PAGE_1: "moved", PAGE_2: "moved"}
    before = snapshot()

    again = post(api, {"access_token": value, "asset_ids": [PAGE_1, PAGE_2]})

    assert statuses(again) == {PAGE_1: "already_current", PAGE_2: "already_current"}
    assert again.json()["moved"] == 0 and again.json()["token_id"] == first.json()["token_id"]
    assert snapshot() == before


def test_a_short_lived_user_token_is_exchanged_for_a_long_lived_one(world, settings):
    meta, api, acme, old = world
    person = install_simulated_token(meta, acme, token_type="user", person_id=ALICE, business_id=ACME,
                                     asset_ids=[PAGE_1], scopes=["pages_show_list"])  # fmt: skip
    value = new_token(meta, token_type="user", person_id=ALICE, asset_ids=[PAGE_1], scopes=["pages_show_list"],
                      expires_in=3600)  # fmt: skip

    assert statuses(post(api, {"access_token": value, "asset_ids": [PAGE_1]})) == {PAGE_1: "moved"}

    stored = AccessToken.objects.get(kind="user", status="active")
    assert stored.configuration_id == person.configuration_id and stored.value != value  # the long-lived one
    assert stored.expires_at - stored.issued_at > __import__("datetime").timedelta(days=50)


def test_an_asset_of_another_client_and_an_unknown_id_are_named_and_not_moved(world):
    meta, api, acme, old = world
    value = new_token(meta, asset_ids=[PAGE_1])
    response = post(api, {"access_token": value, "asset_ids": [PAGE_1, BISTRO_PAGE, "123456789"]})
    assert statuses(response) == {PAGE_1: "moved", BISTRO_PAGE: "other_client", "123456789": "unknown"}
    by_id = {entry["asset_id"]: entry for entry in response.json()["assets"]}
    assert by_id[BISTRO_PAGE]["name"] is None and "different client" in by_id[BISTRO_PAGE]["message"]
    assert by_id["123456789"]["message"]
    assert serving(BISTRO_PAGE).client.name == "Bistro Nord"


def test_a_request_in_which_nothing_can_move_changes_nothing(world):
    meta, api, acme, old = world
    value = new_token(meta, asset_ids=[PAGE_1])
    before = snapshot()
    response = post(api, {"access_token": value, "asset_ids": [PAGE_2, BISTRO_PAGE, "987654321"]})
    assert statuses(response) == {PAGE_2: "not_covered", BISTRO_PAGE: "other_client", "987654321": "unknown"}
    assert response.json()["moved"] == 0 and response.json()["token_id"] is None
    assert snapshot() == before


def test_a_credential_limited_to_another_client_sees_these_assets_as_unknown(world, credential_factory):
    meta, api, acme, old = world
    bistro = ClientBusiness.objects.get(name="Bistro Nord")
    _, secret = credential_factory("Bistro only", [Scope.RECONNECT_WRITE], clients=[bistro])
    before = snapshot()
    response = post(api.with_secret(secret), {"access_token": new_token(meta), "asset_ids": [PAGE_1]})
    assert statuses(response) == {PAGE_1: "unknown"} and snapshot() == before


@pytest.mark.parametrize("problem", ["other_app", "invalid", "expired"])
def test_a_bad_token_is_refused_and_nothing_moves(world, problem):
    meta, api, acme, old = world
    if problem == "other_app":
        meta.api.register_app("200000000000002", "other-secret", ["https://other.example/cb"])
        value = new_token(meta, app_id="200000000000002")
    else:
        value = new_token(meta)
        (meta.api.invalidate_token if problem == "invalid" else meta.api.expire_token)(value)
    before = snapshot()

    response = post(api, {"access_token": value, "asset_ids": [PAGE_1, AD_1]})

    code = {"other_app": "wrong_app", "invalid": "token_invalid", "expired": "token_expired"}[problem]
    error = assert_error(response, 422, code)
    assert "nothing was moved" in error["message"].lower()
    assert snapshot() == before and value not in response.text


def test_a_token_without_the_configuration_s_permissions_is_refused(world):
    meta, api, acme, old = world
    value = new_token(meta, scopes=["pages_show_list"])
    before = snapshot()
    error = assert_error(post(api, {"access_token": value, "asset_ids": [PAGE_1]}), 422, "missing_permissions")
    assert "ads_read" in error["message"] and snapshot() == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"asset_ids": [PAGE_1]}, 422, "invalid_request"),  # no token
        ({"access_token": "", "asset_ids": [PAGE_1]}, 422, "missing_token"),
        ({"access_token": "EAAB", "asset_ids": []}, 422, "no_assets"),
        ({"access_token": "EAAB"}, 422, "invalid_request"),
        ({"access_token": "EAAB", "asset_ids": [PAGE_1, PAGE_1]}, 422, "duplicate_asset_ids"),
        ({"access_token": "EAAB", "asset_ids": [AD_1, f"act_{AD_1}"]}, 422, "duplicate_asset_ids"),
        ({"access_token": "EAAB", "asset_ids": ["page-one"]}, 422, "malformed_asset_id"),
        ({"access_token": "EAAB", "asset_ids": [str(10**12 + n) for n in range(101)]}, 422, "too_many_assets"),
        ({"access_token": "EAAB", "asset_ids": "123"}, 422, "invalid_request"),
        ({"access_token": 7, "asset_ids": [PAGE_1]}, 422, "invalid_request"),
    ],
    ids=["missing-token", "empty-token", "no-ids", "no-ids-field", "duplicates", "duplicates-act", "malformed-id",
         "too-many", "ids-not-a-list", "token-not-a-string"],
)
def test_a_malformed_request_is_refused_with_a_message_before_asking_meta(world, body, status, code):
    meta, api, acme, old = world
    before, calls = snapshot(), meta.api.request_count()
    error = assert_error(post(api, body), status, code)
    assert error["message"] and snapshot() == before
    assert meta.api.request_count() == calls  # refused before any call to Meta


def test_a_body_that_is_not_json_is_refused(world):
    meta, api, acme, old = world
    response = api.request("POST", "/api/v1/reconnect", data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422) and response.json()["error"]["message"]


def test_the_limit_on_asset_ids_is_a_setting(world, settings):
    meta, api, acme, old = world
    settings.RECONNECT_MAX_ASSETS = 2
    error = assert_error(post(api, {"access_token": "EAAB", "asset_ids": [PAGE_1, PAGE_2, AD_1]}), 422,
                         "too_many_assets")  # fmt: skip
    assert "At most 2" in error["message"]


def test_reconnecting_a_client_that_needed_it_makes_it_active_and_is_audited(world):
    meta, api, acme, old = world
    ClientBusiness.objects.filter(pk=acme.pk).update(status="needs_reauth")
    make_contact(acme)
    response = post(api, {"access_token": new_token(meta, asset_ids=[PAGE_1]), "asset_ids": [PAGE_1]})
    assert statuses(response) == {PAGE_1: "moved"}
    assert ClientBusiness.objects.get(pk=acme.pk).status == "active"
    from api.models import ApiUse

    use = ApiUse.objects.get(action="reconnect")
    assert (use.client_id, use.status_code) == (acme.pk, 200)
    assert TokenEvent.objects.filter(kind="reconnected", actor="api:Publisher").exists()


def test_a_token_the_portal_already_replaced_is_refused(world):
    meta, api, acme, old = world
    newer = new_token(meta, asset_ids=[PAGE_1])
    assert statuses(post(api, {"access_token": newer, "asset_ids": [PAGE_1]})) == {PAGE_1: "moved"}
    before = snapshot()
    # The old token (superseded now) is still valid at Meta: sending it again moves nothing back.
    error = assert_error(post(api, {"access_token": old.value, "asset_ids": [PAGE_1]}), 422, "token_replaced")
    assert "superseded" in error["message"] and snapshot() == before


def test_a_token_stored_for_another_client_gives_this_client_nothing(world):
    meta, api, acme, old = world
    bistro_token = AccessToken.objects.get(client__name="Bistro Nord")
    before = snapshot()
    response = post(api, {"access_token": bistro_token.value, "asset_ids": [PAGE_1, BISTRO_PAGE]})
    # The token covers Bistro's Page only: Acme's asset is another client's for it, nothing moves.
    assert statuses(response) == {PAGE_1: "other_client", BISTRO_PAGE: "already_current"}
    assert snapshot() == before
