from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from graph.errors import OtherGraphError, TransientError
from onboarding.models import ClientBusiness, Contact, Invitation, LoginAttempt
from tokens.models import AccessToken, AssetGrant, TokenEvent

from .conftest import acme_token, open_and_start, snapshot

pytestmark = pytest.mark.django_db


def callback(browser, **params):
    return browser.get("/connect/callback/", params)


def test_continue_redirects_to_the_dialog_with_the_configuration_and_a_fresh_state(client, invitation_key, fake_graph):
    with time_machine.travel(timezone.now(), tick=False):
        page = client.get(f"/invite/{invitation_key}/")
        response = client.post("/connect/start/", {"invitation": page.context["invitation"].pk})
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["config_id"] == ["5550001"]
    assert query["redirect_uri"] == ["http://127.0.0.1:8000/connect/callback/"]
    assert query["response_type"] == ["code"] and query["override_default_response_type"] == ["true"]
    attempt = LoginAttempt.objects.get()
    assert attempt.state_hash != query["state"][0] and len(attempt.state_hash) == 64
    assert attempt.expires_at - attempt.created_at == timedelta(minutes=15)
    assert ClientBusiness.objects.get().status == "onboarding"


def test_continue_without_having_opened_the_invitation_in_this_browser_is_refused(client, invitation_key, fake_graph):
    Client().get(f"/invite/{invitation_key}/")
    response = client.post("/connect/start/", {"invitation": Invitation.objects.get().pk})
    assert response.status_code == 400
    assert LoginAttempt.objects.count() == 0


def test_a_successful_callback_stores_token_assets_and_grants_and_redirects_to_the_result(
    client, invitation_key, fake_graph, contact
):
    state = open_and_start(client, invitation_key)
    response = callback(client, code="the-code", state=state)
    attempt = LoginAttempt.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/connect/result/{attempt.pk}/"
    token = AccessToken.objects.get()
    assert token.value == fake_graph.token_value and token.kind == "system_user" and token.status == "active"
    assert token.granted_by == contact
    grants = {g.asset.meta_id: g for g in AssetGrant.objects.select_related("asset")}
    assert set(grants) == {"201", "202", "301"}
    assert grants["201"].asset.name == "Acme Bakery Page" and grants["201"].scopes == ["pages_read_engagement"]
    client_business = ClientBusiness.objects.get()
    assert client_business.status == "active" and client_business.meta_business_id == "7001"
    assert attempt.outcome == "succeeded" and attempt.token == token
    assert Invitation.objects.get().completed_at is not None
    assert TokenEvent.objects.filter(kind="installed", token=token).count() == 1

    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "Acme Bakery is connected" in page.content.decode()
    assert "Acme Cakes Page" in page.content.decode()
    assert fake_graph.token_value not in page.content.decode()


def test_a_user_token_is_made_long_lived_and_records_the_grantor(
    client, client_business, contact, user_config, fake_graph
):
    from onboarding.invitations import create_invitation

    _, key = create_invitation(client_business, user_config, contact=contact)
    fake_graph.answer(acme_token(type="USER", user_id="4242", scopes=["pages_show_list", "pages_read_engagement"]))
    fake_graph.token.assets = {
        "201": ("page", "Acme Bakery Page", None),
        "202": ("page", "Acme Cakes Page", None),
        "7001": ("business", "Acme", None),
    }
    state = open_and_start(client, key)
    callback(client, code="c", state=state)
    assert "exchange_long_lived" in fake_graph.calls
    assert AccessToken.objects.get().kind == "user"
    assert Contact.objects.get().meta_user_id == "4242"
    assert ClientBusiness.objects.get().meta_business_id == "7001"


def test_a_user_token_s_page_tokens_are_stored_after_the_callback(
    client, client_business, contact, user_config, fake_graph
):
    from onboarding.invitations import create_invitation
    from testsupport.fake_graph import FakeToken

    _, key = create_invitation(client_business, user_config, contact=contact)
    fake_graph.answer(acme_token(type="USER", user_id="4242", scopes=["pages_show_list", "pages_read_engagement"]))
    fake_graph.token.assets = {"201": ("page", "Acme Bakery Page", None), "202": ("page", "Acme Cakes Page", None)}
    fake_graph.token.pages = {"201": "EAAB-page-token-201", "202": "EAAB-page-token-202"}
    for page_id, value in fake_graph.token.pages.items():
        fake_graph.answer(FakeToken(type="PAGE", user_id="4242", profile_id=page_id), value=value)
    fake_graph.answer(FakeToken(type="PAGE", profile_id="999"), value="EAAB-page-token-202")  # not that Page's

    state = open_and_start(client, key)
    callback(client, code="c", state=state)

    user = AccessToken.objects.get(kind="user")
    (page,) = AccessToken.objects.filter(kind="page")
    assert (page.parent, page.value, page.granted_by) == (user, "EAAB-page-token-201", contact)
    assert list(page.grants.values_list("asset__meta_id", flat=True)) == ["201"]


def test_page_tokens_that_cannot_be_had_now_leave_the_connection_standing(
    client, client_business, contact, user_config, fake_graph
):
    from onboarding.invitations import create_invitation

    _, key = create_invitation(client_business, user_config, contact=contact)
    fake_graph.answer(acme_token(type="USER", user_id="4242", scopes=["pages_show_list", "pages_read_engagement"]))
    fake_graph.fail_on["page_tokens"] = TransientError("Service temporarily unavailable", code=2, http_status=503)

    state = open_and_start(client, key)
    callback(client, code="c", state=state)

    assert LoginAttempt.objects.get().outcome == "succeeded"
    assert list(AccessToken.objects.values_list("kind", flat=True)) == ["user"]


def test_replaying_a_completed_callback_shows_the_same_result_and_stores_nothing_twice(
    client, invitation_key, fake_graph
):
    state = open_and_start(client, invitation_key)
    first = callback(client, code="the-code", state=state)
    before = snapshot()
    replay = callback(client, code="the-code", state=state)
    assert replay.status_code == 302 and replay["Location"] == first["Location"]
    assert snapshot() == before
    assert fake_graph.calls.count("exchange_code") == 1


def test_a_forged_state_gets_the_expired_page_and_exchanges_nothing(client, invitation_key, fake_graph):
    open_and_start(client, invitation_key)
    before = snapshot()
    response = callback(client, code="the-code", state="forged-state")
    assert response.status_code == 400
    assert "This link has expired" in response.content.decode()
    assert "exchange_code" not in fake_graph.calls
    assert snapshot() == before


def test_a_missing_state_gets_the_expired_page(client, invitation_key, fake_graph):
    open_and_start(client, invitation_key)
    assert callback(client, code="the-code").status_code == 400
    assert fake_graph.calls == []


def test_a_state_from_another_browser_session_is_refused(client, invitation_key, fake_graph):
    state = open_and_start(client, invitation_key)
    before = snapshot()
    response = callback(Client(), code="the-code", state=state)
    assert response.status_code == 400 and "start again" in response.content.decode().lower()
    assert fake_graph.calls == []
    assert snapshot() == before
    assert LoginAttempt.objects.get().used_at is None  # the rightful browser may still finish


def test_an_expired_state_is_refused_and_the_attempt_marked_expired(client, invitation_key, fake_graph):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        state = open_and_start(client, invitation_key)
        traveller.shift(timedelta(minutes=15, seconds=1))
        before = snapshot()
        response = callback(client, code="the-code", state=state)
    assert response.status_code == 400
    assert fake_graph.calls == []
    assert snapshot() == before
    attempt = LoginAttempt.objects.get()
    assert attempt.outcome == "expired" and attempt.failure_kind == "state_expired"


def test_a_state_reused_after_a_failure_is_refused_without_a_second_exchange(client, invitation_key, fake_graph):
    state = open_and_start(client, invitation_key)
    callback(client, error="access_denied", error_reason="user_denied", state=state)
    response = callback(client, code="the-code", state=state)
    assert response.status_code == 400
    assert fake_graph.calls == []
    assert LoginAttempt.objects.get().outcome == "cancelled"


MINUTE = "Please try again"


@pytest.mark.parametrize(
    ("params", "kind", "outcome"),
    [
        ({"error": "access_denied", "error_reason": "user_denied", "error_description": "Permissions error"},
         "user_cancelled", "cancelled"),
        ({"error": "access_denied", "error_reason": "user_denied", "error_code": "200",
          "error_description": "Permissions error"}, "user_cancelled", "cancelled"),
        ({"error": "access_denied", "error_description": "The user denied your request."}, "access_denied", "failed"),
        ({"error": "invalid_request", "error_reason": "invalid_config_id",
          "error_description": "Invalid config id"}, "invalid_config", "failed"),
        ({"error_code": "100", "error_message": "Invalid configuration ID"}, "invalid_config", "failed"),
        ({"error": "invalid_request", "error_reason": "system_user_mobile_unsupported",
          "error_description": "System user access tokens are not supported on mobile devices"},
         "mobile_not_supported", "failed"),
        ({"error": "invalid_request", "error_reason": "invalid_response_type",
          "error_description": "System user tokens require response_type=code"}, "wrong_response_type", "failed"),
        ({"error": "server_error", "error_description": "Something went wrong"}, "meta_error", "failed"),
        ({"error_code": "1"}, "meta_error", "failed"),
    ],
)  # fmt: skip
def test_every_meta_error_gets_its_own_recorded_kind_and_a_page(
    client, invitation_key, fake_graph, params, kind, outcome
):
    state = open_and_start(client, invitation_key)
    before = snapshot()
    response = callback(client, state=state, **params)
    attempt = LoginAttempt.objects.get()
    assert (attempt.failure_kind, attempt.outcome) == (kind, outcome)
    assert attempt.error_description == params.get("error_description", params.get("error_message", ""))
    assert snapshot() == before
    assert fake_graph.calls == []
    page = client.get(response["Location"])
    from onboarding.failures import failure_for

    assert str(failure_for(kind).title) in page.content.decode()
    assert "Help center" in page.content.decode() or "help center" in page.content.decode()


def test_a_callback_with_neither_code_nor_error_fails_cleanly(client, invitation_key, fake_graph):
    state = open_and_start(client, invitation_key)
    callback(client, state=state)
    assert LoginAttempt.objects.get().failure_kind == "missing_code"


@pytest.mark.parametrize(
    ("setup", "kind"),
    [
        (lambda g: g.fail_on.update(exchange_code=OtherGraphError("Invalid verification code", code=100)),
         "code_exchange_failed"),
        (lambda g: g.fail_on.update(debug_token=TransientError("Service unavailable", code=2)), "token_check_failed"),
        (lambda g: g.answer(acme_token(app_id="999999")), "wrong_app"),
        (lambda g: g.answer(acme_token(is_valid=False)), "token_invalid"),
        (lambda g: g.answer(acme_token(type="USER")), "wrong_token_type"),
        (lambda g: g.answer(acme_token(scopes=["pages_show_list"])), "missing_permissions"),
        (lambda g: g.fail_on.update(list_assets=TransientError("timeout")), "asset_listing_failed"),
        (lambda g: g.answer(acme_token(assets={}, granular_scopes=[])), "no_assets"),
    ],
)  # fmt: skip
def test_a_failed_step_after_meta_answers_records_why_and_stores_nothing(
    client, invitation_key, fake_graph, setup, kind
):
    setup(fake_graph)
    state = open_and_start(client, invitation_key)
    before = snapshot()
    response = callback(client, code="the-code", state=state)
    attempt = LoginAttempt.objects.get()
    assert attempt.outcome == "failed" and attempt.failure_kind == kind
    assert snapshot() == before
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert fake_graph.token_value not in page.content.decode()
    assert fake_graph.token_value not in attempt.error_description


def test_a_token_for_another_app_leaves_the_previous_token_untouched(
    client, client_business, system_user_config, invitation_key, fake_graph
):
    state = open_and_start(client, invitation_key)
    callback(client, code="first", state=state)
    fake_graph.token_value = "EAAB-second-token"
    fake_graph.answer(acme_token(app_id="31337"))
    before = snapshot()
    state = open_and_start_again(client)
    response = callback(client, code="second", state=state)
    assert LoginAttempt.objects.latest("pk").failure_kind == "wrong_app"
    assert snapshot() == before
    assert AccessToken.objects.get().status == "active"
    assert "different app" in client.get(response["Location"]).content.decode()


def open_and_start_again(browser) -> str:
    from .conftest import state_from

    invitation = Invitation.objects.get()
    return state_from(browser.post("/connect/start/", {"invitation": invitation.pk})["Location"])


def test_a_business_already_linked_to_another_client_is_refused(client, invitation_key, fake_graph):
    ClientBusiness.objects.create(name="Other", meta_business_id="7001")
    state = open_and_start(client, invitation_key)
    before = snapshot()
    callback(client, code="c", state=state)
    assert LoginAttempt.objects.get().failure_kind == "business_taken"
    assert snapshot() == before


def test_the_result_page_is_not_shown_to_another_browser(client, invitation_key, fake_graph):
    state = open_and_start(client, invitation_key)
    location = callback(client, code="c", state=state)["Location"]
    other = Client().get(location)
    assert other.status_code == 404
    assert "Acme Bakery Page" not in other.content.decode()


def test_the_retry_button_starts_a_new_attempt_after_a_cancel(client, invitation_key, fake_graph):
    state = open_and_start(client, invitation_key)
    location = callback(client, error="access_denied", error_reason="user_denied", state=state)["Location"]
    page = client.get(location).content.decode()
    assert "Try again" in page
    assert client.post("/connect/start/", {"invitation": Invitation.objects.get().pk}).status_code == 302
    assert LoginAttempt.objects.count() == 2


def test_the_mobile_warning_shows_for_system_user_configurations_on_a_phone(client, invitation_key):
    iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Mobile/15E148"
    page = client.get(f"/invite/{invitation_key}/", HTTP_USER_AGENT=iphone).content.decode()
    assert "Please switch to a computer" in page
    desktop = client.get(f"/invite/{invitation_key}/", HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64)")
    assert "Please switch to a computer" not in desktop.content.decode()


@pytest.mark.parametrize(
    ("variant", "token_type", "extras"),
    [
        ("whatsapp_embedded_signup", "system_user", {"setup": {}, "featureType": "", "sessionInfoVersion": "3"}),
        ("instagram", "user", {"setup": {"channel": "IG_API_ONBOARDING"}}),
    ],
)
def test_the_dialog_url_carries_the_variant_s_extras_and_never_a_scope(
    client_business, system_user_config, variant, token_type, extras
):
    import json

    from common.meta import graph_client
    from onboarding.flow import dialog_url, start_login
    from onboarding.invitations import create_invitation

    system_user_config.variant, system_user_config.token_type = variant, token_type
    system_user_config.save()
    invitation, _ = create_invitation(client_business, system_user_config)
    attempt, state = start_login(invitation, binding="b" * 64)
    query = parse_qs(urlsplit(dialog_url(attempt, state, graph_client())).query)
    assert json.loads(query["extras"][0]) == extras
    assert "scope" not in query
    assert ("response_type" in query) == (token_type == "system_user")


def test_an_expired_state_in_the_browser_that_opened_the_invitation_offers_to_start_again(
    client, invitation_key, fake_graph
):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        state = open_and_start(client, invitation_key)
        traveller.shift(timedelta(minutes=16))
        page = callback(client, code="c", state=state).content.decode()
    button = '<button type="submit" class="button">Start again</button>'
    assert button in page
    assert button not in callback(Client(), code="c", state=state).content.decode()


def test_a_result_still_being_finished_refreshes_itself(client, invitation_key, fake_graph):
    open_and_start(client, invitation_key)
    response = client.get(f"/connect/result/{LoginAttempt.objects.get().pk}/")
    assert response["Refresh"] == "3" and "Finishing your connection" in response.content.decode()


def test_an_unexpected_error_while_storing_gets_a_page_and_leaves_everything_as_it_was(
    client, invitation_key, fake_graph, monkeypatch
):
    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("onboarding.flow.install_token", broken)
    state = open_and_start(client, invitation_key)
    before = snapshot()
    response = callback(client, code="c", state=state)
    assert LoginAttempt.objects.get().failure_kind == "internal_error"
    assert snapshot() == before
    assert "Something went wrong on our side" in client.get(response["Location"]).content.decode()
