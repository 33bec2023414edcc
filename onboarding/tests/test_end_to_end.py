"""The whole flow against the Meta simulator over real HTTP (the portal's Graph calls go to the live server).

The person's browser is Django's test client here (the browser tests drive chromium):
invitation page -> Continue -> simulator dialog -> Allow/Cancel -> callback -> result.
"""

from urllib.parse import urlsplit

import pytest

from onboarding.invitations import create_invitation
from onboarding.links import reconnect_url
from onboarding.models import ClientBusiness, LoginAttempt, LoginConfiguration
from testsupport.factories import make_simulated_configuration
from tokens.models import AccessToken, AssetGrant

from .conftest import ACME, AD_1, ALICE, PAGE_1, PAGE_2, snapshot

pytestmark = [pytest.mark.django_db(transaction=True)]


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def run_dialog(
    browser, key, *, action="allow", assets=(), user_agent="Mozilla/5.0 (X11; Linux x86_64)", person=ALICE,
    business=ACME,
):
    """Invitation page -> Continue -> the simulator's dialog -> the callback; returns the callback response."""
    page = browser.get(f"/invite/{key}/", HTTP_USER_AGENT=user_agent)
    assert page.status_code == 200
    return retry_dialog(browser, page.context["invitation"].pk, action=action, assets=assets, user_agent=user_agent,
                        person=person, business=business)  # fmt: skip


def retry_dialog(
    browser, invitation_id, *, action="allow", assets=(), user_agent="Mozilla/5.0 (X11; Linux x86_64)", person=ALICE,
    business=ACME,
):
    """The result page's one-click retry (Continue again) -> the dialog -> the callback."""
    start = browser.post("/connect/start/", {"invitation": invitation_id}, HTTP_USER_AGENT=user_agent)
    dialog = local(start["Location"])
    shown = browser.get(dialog, HTTP_USER_AGENT=user_agent)
    if shown.status_code == 302:  # Meta refused before showing anything (config, response type, mobile)
        return browser.get(local(shown["Location"]), HTTP_USER_AGENT=user_agent)
    assert shown.status_code == 200, shown.content.decode()[:500]
    oauth = {k: v for k, v in shown.context["oauth"].items() if v}
    answer = browser.post(
        dialog.split("?")[0],
        oauth | {"person": person, "business": business, "asset": list(assets), "action": action},
        HTTP_USER_AGENT=user_agent,
    )
    assert answer.status_code == 302
    return browser.get(local(answer["Location"]), HTTP_USER_AGENT=user_agent)


def test_allow_stores_a_system_user_token_and_the_result_lists_the_named_assets(client, world):
    meta, config, client_business, contact = world
    _, key = create_invitation(client_business, config, contact=contact)
    response = run_dialog(client, key, assets=[PAGE_1, AD_1])
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Acme Bakery is connected" in page
    assert "Acme Bakery Page 1" in page and "Acme Bakery Ad account 1" in page
    token = AccessToken.objects.get()
    assert (token.kind, token.status, token.meta_app_id) == ("system_user", "active", meta.app_id)
    assert {g.asset.meta_id for g in token.grants.select_related("asset")} == {PAGE_1, AD_1}
    assert ClientBusiness.objects.get().meta_business_id == ACME
    assert token.value not in page


def test_cancel_in_the_dialog_shows_the_cancelled_page_and_stores_nothing(client, world):
    _, config, client_business, contact = world
    _, key = create_invitation(client_business, config, contact=contact)
    response = run_dialog(client, key, action="cancel")
    page = client.get(response["Location"]).content.decode()
    assert "You cancelled the connection" in page
    assert LoginAttempt.objects.get().failure_kind == "user_cancelled"
    assert AccessToken.objects.count() == 0


def test_a_configuration_meta_does_not_know_gets_the_set_up_wrongly_page(client, world):
    _, config, client_business, contact = world
    LoginConfiguration.objects.filter(pk=config.pk).update(config_id="0000")
    _, key = create_invitation(client_business, config, contact=contact)
    response = run_dialog(client, key)
    assert LoginAttempt.objects.get().failure_kind == "invalid_config"
    assert "set up wrongly" in client.get(response["Location"]).content.decode()


def test_a_phone_gets_the_use_a_computer_page_for_system_user_configurations(client, world):
    _, config, client_business, contact = world
    _, key = create_invitation(client_business, config, contact=contact)
    run_dialog(client, key, user_agent="Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile Safari/537.36")
    assert LoginAttempt.objects.get().failure_kind == "mobile_not_supported"


def test_reconnect_covering_some_assets_lists_the_missing_one_and_offers_the_dialog_again(client, world):
    _, config, client_business, contact = world
    _, key = create_invitation(client_business, config, contact=contact)
    run_dialog(client, key, assets=[PAGE_1, PAGE_2, AD_1])
    first = AccessToken.objects.get()

    reconnect_key = reconnect_url(first).split("/invite/")[1].strip("/")
    invitation_page = client.get(f"/invite/{reconnect_key}/").content.decode()
    assert "Select these again" in invitation_page and "Acme Bakery Page 2" in invitation_page
    response = run_dialog(client, reconnect_key, assets=[PAGE_1, AD_1])
    page = client.get(response["Location"]).content.decode()
    second = AccessToken.objects.exclude(pk=first.pk).get()
    first.refresh_from_db()
    assert (first.status, first.superseded_by_id, second.status) == ("superseded", second.pk, "active")
    missing, covered = page.split("Compared with your previous connection")
    assert "Acme Bakery is partially connected" in missing and "Not included this time" in missing
    assert "Acme Bakery Page 2" in missing and "Add what is missing" in missing
    covered = covered.split("Connected assets")[0]
    assert "Acme Bakery Page 1" in covered and "Acme Bakery Ad account 1" in covered
    assert "Acme Bakery Page 2" not in covered
    assert AssetGrant.objects.filter(token=first).count() == 3  # the old grants are kept, never deleted


def test_the_business_removing_the_app_revokes_its_tokens_through_meta_s_callbacks(client, world):
    meta, config, client_business, contact = world
    _, key = create_invitation(client_business, config, contact=contact)
    run_dialog(client, key, assets=[PAGE_1])
    deliveries = meta.api.remove_app(ACME, meta.app_id)
    assert {d.kind: d.status_code for d in deliveries}["webhook"] == 200
    token = AccessToken.objects.get()
    assert token.status == "revoked"
    assert ClientBusiness.objects.get().status == "disconnected"


def test_a_code_that_was_already_exchanged_fails_the_second_attempt_and_keeps_the_first_token(client, world):
    meta, config, client_business, contact = world
    _, key = create_invitation(client_business, config, contact=contact)
    run_dialog(client, key, assets=[PAGE_1])
    code = meta.api.create_code(
        app_id=meta.app_id, redirect_uri=meta.redirect_uri, config_id="7770001", business_id=ACME, asset_ids=[PAGE_1]
    )
    # Spend the code once through the portal's own client, then replay it in a new attempt.
    from common.meta import graph_client

    graph_client().exchange_code(code, meta.redirect_uri)
    from .conftest import state_from

    invitation_id = LoginAttempt.objects.get().invitation_id
    state = state_from(client.post("/connect/start/", {"invitation": invitation_id})["Location"])
    before = snapshot()
    client.get("/connect/callback/", {"code": code, "state": state})
    assert LoginAttempt.objects.latest("pk").failure_kind == "code_exchange_failed"
    assert snapshot() == before


def test_whatsapp_embedded_signup_connects_the_chosen_whatsapp_business_account(client, world):
    meta, _, client_business, contact = world
    config = make_simulated_configuration(
        meta, name="WhatsApp", config_id="7770002", variant="whatsapp_embedded_signup",
        permissions=["whatsapp_business_management", "whatsapp_business_messaging"],
        asset_types=["whatsapp_business_account"], token_expiry="60_days",
    )  # fmt: skip
    _, key = create_invitation(client_business, config, contact=contact)
    response = run_dialog(client, key, assets=["4001000000000001"])
    page = client.get(response["Location"]).content.decode()
    assert "Acme Bakery WhatsApp Business account 1" in page
    token = AccessToken.objects.get()
    assert token.expires_at is not None  # the configuration's 60-day expiry, as Meta reports it
