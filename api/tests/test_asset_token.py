"""GET /api/v1/assets/{meta_id}/token through the live server: which token is chosen, and why none is."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from api.models import ApiUse, Scope
from onboarding.models import ClientBusiness, Invitation
from testsupport.factories import make_asset, make_client, make_configuration, make_grant, make_token
from tokens.models import AccessToken, AssetGrant

from .conftest import assert_error

pytestmark = pytest.mark.django_db(transaction=True)
PAGE_ID = "100200300"
SOON, LATER = timedelta(days=3), timedelta(days=50)


@pytest.fixture
def acme():
    return make_client()


@pytest.fixture
def page(acme):
    return make_asset(acme, "Acme Page", meta_id=PAGE_ID)


@pytest.fixture
def reader(caller, credential_factory):
    _, secret = credential_factory("Publisher", [Scope.TOKENS_READ])
    return caller.with_secret(secret)


def token_for(page, kind=AccessToken.Kind.USER, *, grant_status=AssetGrant.Status.ACTIVE, access_ends=None,
              **fields):
    client = page.client
    if kind in AccessToken.DERIVED_KINDS:
        fields.setdefault("parent", fields.get("parent") or token_for(page, AccessToken.Kind.SYSTEM_USER
                                                                     if kind != "page" else "user"))
        fields.setdefault("configuration", None)
    token = make_token(client, kind=kind, scopes=fields.pop("scopes", ["pages_show_list", "ads_read"]), **fields)
    make_grant(token, page, access_ends, status=grant_status)
    return token


def ask(reader, meta_id=PAGE_ID, **params):
    return reader.get(f"/api/v1/assets/{meta_id}/token", params=params)


def test_a_system_user_token_is_chosen_over_a_user_token(reader, page):
    token_for(page, "user", expires_at=timezone.now() + LATER)
    system = token_for(page, "system_user")

    answer = ask(reader)

    assert answer.status_code == 200
    body = answer.json()
    assert (body["token_id"], body["kind"], body["access_token"]) == (system.pk, "system_user", system.value)
    assert body["asset_id"] == PAGE_ID and body["client_id"] == page.client_id
    assert body["expires_at"] is None and body["access_ends_at"] is None and body["reconnect_url"] is None


def test_a_granular_token_is_chosen_by_its_purpose_and_the_system_user_token_otherwise(reader, page):
    system = token_for(page, "system_user")
    publishing = token_for(page, "granular_system_user", parent=system, purpose="publishing")
    token_for(page, "granular_system_user", parent=system, purpose="ads reporting")

    by_purpose = ask(reader, purpose="publishing").json()
    unknown_purpose = ask(reader, purpose="catalog sync").json()
    no_purpose = ask(reader).json()

    assert (by_purpose["token_id"], by_purpose["kind"], by_purpose["purpose"]) == (
        publishing.pk, "granular_system_user", "publishing")
    assert unknown_purpose["token_id"] == system.pk and no_purpose["token_id"] == system.pk


def test_an_ended_grant_is_skipped_for_a_token_whose_grant_still_runs(reader, page):
    now = timezone.now()
    token_for(page, "user", access_ends=now - timedelta(hours=1))  # the person's access to the page ended
    token_for(page, "user", grant_status=AssetGrant.Status.ENDED)
    still = token_for(page, "user", access_ends=now + LATER)

    body = ask(reader).json()

    assert body["token_id"] == still.pk
    assert body["access_ends_at"].startswith(str((now + LATER).date()))


def test_only_ended_grants_answer_409_needs_reauthorization_with_a_reconnect_link(reader, page):
    token_for(page, "user", access_ends=timezone.now() - timedelta(hours=1))

    refused = ask(reader)

    error = assert_error(refused, 409, "needs_reauthorization")
    assert error["reconnect_url"].startswith("http") and "/invite/" in error["reconnect_url"]
    assert Invitation.objects.filter(mode=Invitation.Mode.RECONNECT, client=page.client).count() == 1
    assert "access_token" not in refused.text


def test_an_offboarded_client_is_refused_without_a_link(reader, page, acme):
    token_for(page, "system_user")
    ClientBusiness.objects.filter(pk=acme.pk).update(status=ClientBusiness.Status.OFFBOARDED)

    error = assert_error(ask(reader), 409, "client_offboarded")

    assert error["reconnect_url"] is None
    assert Invitation.objects.count() == 0


def test_invalid_expired_and_revoked_tokens_need_reauthorization(reader, page):
    token_for(page, "system_user", status=AccessToken.Status.INVALID)
    token_for(page, "user", expires_at=timezone.now() - timedelta(minutes=1))
    token_for(page, "user", data_access_expires_at=timezone.now() - timedelta(minutes=1))

    assert_error(ask(reader), 409, "needs_reauthorization")


def test_a_removed_asset_or_a_reconnect_that_left_it_out_is_not_granted(reader, page):
    token_for(page, "user", grant_status=AssetGrant.Status.REMOVED)
    token_for(page, "user", status=AccessToken.Status.SUPERSEDED)

    assert_error(ask(reader), 409, "asset_not_granted")


def test_requested_scopes_must_be_granted_and_not_removed(reader, page):
    token = token_for(page, "user", scopes=["pages_show_list", "ads_read", "ads_management"],
                      missing_permissions=["ads_management"])

    ok = ask(reader, scopes="ads_read,pages_show_list")
    missing = ask(reader, scopes="ads_read,ads_management")

    assert ok.status_code == 200 and ok.json()["scopes"] == ["pages_show_list", "ads_read"]
    error = assert_error(missing, 409, "scope_missing")
    assert error["missing_scopes"] == ["ads_management"] and "ads_management" in error["message"]
    assert error["reconnect_url"]
    assert ask(reader).json()["token_id"] == token.pk


def test_a_page_token_is_chosen_over_the_user_token_it_came_from(reader, page):
    user = token_for(page, "user", expires_at=timezone.now() + LATER)
    page_token = token_for(page, "page", parent=user)

    body = ask(reader).json()

    assert (body["token_id"], body["kind"]) == (page_token.pk, "page")
    assert body["expires_at"] is None and body["access_ends_at"] is not None  # it ends with its user token


def test_access_ending_within_the_reminder_window_comes_with_a_reconnect_link(reader, page):
    soon = token_for(page, "user", expires_at=timezone.now() + SOON)

    body = ask(reader).json()

    assert body["token_id"] == soon.pk and body["reconnect_url"].startswith("http")


def test_the_answer_is_the_bytes_the_response_model_would_render(reader, page):
    # The endpoint renders its answer without validating it against TokenOut again (D95): the same
    # bytes as django-ninja's validated path, datetimes and nulls included.
    from api.main import api
    from api.routers.assets import TokenOut

    system = token_for(page, "system_user")
    token_for(page, "granular_system_user", parent=system, purpose="publishing",
              expires_at=timezone.now() + SOON, access_ends=timezone.now() + LATER)

    for purpose in ("publishing", ""):
        answer = ask(reader, purpose=purpose)
        validated = TokenOut.model_validate(answer.json()).model_dump()
        assert answer.content == api.renderer.render(None, validated, response_status=200).encode()
        assert answer.headers["Content-Type"] == "application/json; charset=utf-8"


def test_asking_again_hands_out_the_same_link_instead_of_a_new_invitation_each_time(reader, page):
    token_for(page, "user", expires_at=timezone.now() + SOON)
    links = {ask(reader).json()["reconnect_url"] for _ in range(3)}
    AccessToken.objects.update(status=AccessToken.Status.INVALID)
    refusals = {ask(reader).json()["error"]["reconnect_url"] for _ in range(3)}

    assert len(links) == 1 and links == refusals
    assert Invitation.objects.filter(mode=Invitation.Mode.RECONNECT).count() == 1


def test_an_unknown_or_malformed_asset_id_and_an_ad_account_by_its_path_id(reader, acme):
    ads = make_asset(acme, "Ads", kind="ad_account", meta_id="4455")
    token = make_token(acme, kind="system_user")
    make_grant(token, ads)

    assert_error(ask(reader, "999999"), 404, "asset_not_found")
    assert_error(ask(reader, "12ab"), 422, "invalid_request")
    assert ask(reader, "act_4455").json()["token_id"] == token.pk


def test_a_credential_limited_to_another_configuration_hears_asset_not_granted(caller, credential_factory, page):
    token_for(page, "user")
    _, secret = credential_factory("Other", [Scope.TOKENS_READ], configurations=[make_configuration()])

    assert_error(ask(caller.with_secret(secret)), 409, "asset_not_granted")


def test_each_answer_is_audited_with_the_client_and_asset_but_never_the_value(reader, page):
    token = token_for(page, "system_user")

    ask(reader)
    ask(reader, "999999")

    uses = list(ApiUse.objects.order_by("pk").values("action", "client_id", "asset_meta_id", "status_code",
                                                     "outcome"))
    assert uses == [
        {"action": "asset_token", "client_id": page.client_id, "asset_meta_id": PAGE_ID, "status_code": 200,
         "outcome": "ok"},
        {"action": "asset_token", "client_id": None, "asset_meta_id": "999999", "status_code": 404,
         "outcome": "asset_not_found"},
    ]
    for row in ApiUse.objects.values():
        assert token.value not in str(row)
