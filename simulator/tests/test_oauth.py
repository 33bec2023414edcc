"""Code exchange, long-lived exchange and debug_token, over real HTTP."""

import pytest

from simulator import api
from simulator.tests.conftest import debug, graph_call, live

pytestmark = live

PAGE_1 = api.asset_id_for("page", 1, 1)
AD_ACCOUNT_1 = api.asset_id_for("ad_account", 1, 1)


@pytest.fixture
def system_user_config(meta):
    return api.register_configuration(
        "5550001", "system_user", ["business_management", "pages_show_list", "ads_read"], ["page", "ad_account"]
    )


def exchange(meta, http, code, redirect_uri=None, secret=None):
    return http.post(
        meta.graph("oauth/access_token"),
        data={
            "client_id": meta.app_id,
            "client_secret": secret or meta.app_secret,
            "redirect_uri": redirect_uri or meta.redirect_uri,
            "code": code,
        },
    )


def test_a_code_exchanges_once_for_a_never_expiring_system_user_token(meta, http, system_user_config):
    code = api.create_code(redirect_uri=meta.redirect_uri, config_id="5550001", asset_ids=[PAGE_1, AD_ACCOUNT_1])
    first = exchange(meta, http, code)
    again = exchange(meta, http, code)
    assert first.status_code == 200
    assert first.json()["token_type"] == "bearer"
    assert "expires_in" not in first.json()
    assert again.status_code == 400
    assert (again.json()["error"]["code"], again.json()["error"]["error_subcode"]) == (100, 36009)


def test_a_code_expires_after_ten_minutes(meta, http, system_user_config):
    code = api.create_code(redirect_uri=meta.redirect_uri, config_id="5550001")
    api.advance_clock(601)
    error = exchange(meta, http, code).json()["error"]
    assert (error["code"], error["error_subcode"]) == (100, 36007)


def test_an_embedded_signup_code_lives_only_about_thirty_seconds(meta, http, system_user_config):
    code = api.create_code(redirect_uri=meta.redirect_uri, config_id="5550001", embedded_signup=True)
    api.advance_clock(31)
    assert exchange(meta, http, code).json()["error"]["error_subcode"] == 36007


def test_the_redirect_uri_must_be_identical_to_the_dialogs(meta, http, system_user_config):
    code = api.create_code(redirect_uri=meta.redirect_uri, config_id="5550001")
    error = exchange(meta, http, code, redirect_uri=meta.redirect_uri + "?x=1").json()["error"]
    assert error["error_subcode"] == 36008
    assert exchange(meta, http, code).status_code == 200, "a refused attempt must not use the code up"


def test_a_wrong_client_secret_is_refused(meta, http, system_user_config):
    code = api.create_code(redirect_uri=meta.redirect_uri, config_id="5550001")
    response = exchange(meta, http, code, secret="not-the-secret")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Error validating client secret."


def test_a_user_code_gives_a_short_lived_token_that_exchanges_for_sixty_days(meta, http):
    api.register_configuration("5550002", "user", ["pages_show_list"], ["page"])
    code = api.create_code(redirect_uri=meta.redirect_uri, config_id="5550002", asset_ids=[PAGE_1])
    short = exchange(meta, http, code).json()
    assert 3600 <= short["expires_in"] <= 2 * 3600
    long = http.post(
        meta.graph("oauth/access_token"),
        data={
            "grant_type": "fb_exchange_token",
            "client_id": meta.app_id,
            "client_secret": meta.app_secret,
            "fb_exchange_token": short["access_token"],
        },
    ).json()
    assert long["expires_in"] == 60 * 86400
    assert long["access_token"] != short["access_token"]


def test_an_expired_user_token_cannot_be_exchanged(meta, http):
    token = api.issue_token(token_type="user", expires_in=60)
    api.advance_clock(61)
    response = http.post(
        meta.graph("oauth/access_token"),
        data={
            "grant_type": "fb_exchange_token",
            "client_id": meta.app_id,
            "client_secret": meta.app_secret,
            "fb_exchange_token": token,
        },
    )
    assert (response.json()["error"]["code"], response.json()["error"]["error_subcode"]) == (190, 463)


def test_debug_token_describes_a_system_user_token_with_its_granular_scopes(meta, http, system_user_config):
    code = api.create_code(redirect_uri=meta.redirect_uri, config_id="5550001", asset_ids=[PAGE_1, AD_ACCOUNT_1])
    token = exchange(meta, http, code).json()["access_token"]
    data = debug(meta, http, token)
    assert data["app_id"] == meta.app_id
    assert data["type"] == "SYSTEM_USER"
    assert data["is_valid"] is True
    assert data["expires_at"] == 0
    assert data["data_access_expires_at"] - data["issued_at"] == 90 * 86400
    assert data["user_id"] == api.system_user_id("9100000000000001")
    assert data["scopes"] == ["business_management", "pages_show_list", "ads_read"]
    assert {"scope": "pages_show_list", "target_ids": [PAGE_1]} in data["granular_scopes"]
    assert {"scope": "ads_read", "target_ids": [AD_ACCOUNT_1]} in data["granular_scopes"]
    assert {"scope": "business_management", "target_ids": ["9100000000000001"]} in data["granular_scopes"]


def test_debug_token_reports_a_dead_token_as_invalid_with_the_error_inside_data(meta, http):
    token = api.issue_token(token_type="user")
    api.invalidate_token(token, 460)
    data = debug(meta, http, token)
    assert data["is_valid"] is False
    assert (data["error"]["code"], data["error"]["subcode"]) == (190, 460)
    assert data["type"] == "USER"
    assert "public_profile" in data["scopes"]


def test_debug_token_of_garbage_is_invalid_without_raising(meta, http):
    data = debug(meta, http, "EAAgarbage")
    assert data["is_valid"] is False
    assert data["error"]["code"] == 190


def test_a_sixty_day_system_user_configuration_gives_tokens_that_expire(meta, http):
    api.register_configuration("5550003", "system_user", ["business_management"], ["page"], "60_days")
    code = api.create_code(redirect_uri=meta.redirect_uri, config_id="5550003")
    body = exchange(meta, http, code).json()
    assert body["expires_in"] == 60 * 86400


def test_revoking_permissions_kills_the_token_with_subcode_458(meta, http):
    token = api.issue_token(token_type="user")
    revoked = graph_call(meta, http, "me/permissions", token, method="DELETE")
    assert revoked.json() == {"success": True}
    error = graph_call(meta, http, "me", token).json()["error"]
    assert (error["code"], error["error_subcode"]) == (190, 458)
