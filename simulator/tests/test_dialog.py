"""The login dialog: request validation, Allow and Cancel, over real HTTP (and one real browser)."""

from urllib.parse import parse_qs, urlparse

import pytest

from simulator import api
from simulator.tests.conftest import live

pytestmark = live

ACME = "9100000000000001"
PAGE_1 = api.asset_id_for("page", 1, 1)
BISTRO_PAGE = api.asset_id_for("page", 2, 1)
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"


@pytest.fixture
def configs(meta):
    api.register_configuration("7770001", "system_user", ["business_management", "pages_show_list"], ["page"])
    api.register_configuration("7770002", "user", ["pages_show_list"], ["page"])


def dialog_params(meta, **overrides):
    params = {
        "client_id": meta.app_id,
        "redirect_uri": meta.redirect_uri,
        "state": "st4te",
        "config_id": "7770001",
        "response_type": "code",
        "override_default_response_type": "true",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def redirect_query(response) -> dict:
    assert response.status_code == 302, response.text[:300]
    location = urlparse(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}".endswith("/connect/callback/")
    return {k: v[0] for k, v in parse_qs(location.query).items()}


def test_the_dialog_shows_people_businesses_and_assets_of_the_configured_types(meta, http, configs):
    page = http.get(meta.dialog, params=dialog_params(meta))
    assert page.status_code == 200
    assert 'id="person"' in page.text
    assert f'name="asset" value="{PAGE_1}"' in page.text
    assert 'id="allow"' in page.text and 'id="cancel"' in page.text
    assert "ad_account" not in page.text


def test_an_unknown_app_gets_an_error_page_and_no_redirect(meta, http, configs):
    response = http.get(meta.dialog, params=dialog_params(meta, client_id="42"), allow_redirects=False)
    assert response.status_code == 400
    assert "Invalid App ID" in response.text


def test_an_unregistered_redirect_uri_gets_an_error_page_and_no_redirect(meta, http, configs):
    response = http.get(
        meta.dialog, params=dialog_params(meta, redirect_uri=meta.redirect_uri + "x"), allow_redirects=False
    )
    assert response.status_code == 400
    assert "URL blocked" in response.text


def test_an_unknown_config_id_redirects_back_with_metas_error_parameters(meta, http, configs):
    response = http.get(meta.dialog, params=dialog_params(meta, config_id="404"), allow_redirects=False)
    query = redirect_query(response)
    assert query["error_reason"] == "invalid_config_id"
    assert query["state"] == "st4te"
    assert query["error_code"] == "100"
    assert "code" not in query


def test_a_system_user_configuration_needs_response_type_code(meta, http, configs):
    response = http.get(meta.dialog, params=dialog_params(meta, response_type=None), allow_redirects=False)
    assert redirect_query(response)["error_reason"] == "invalid_response_type"


def test_a_system_user_configuration_is_refused_on_a_phone(meta, http, configs):
    response = http.get(meta.dialog, params=dialog_params(meta), headers={"User-Agent": IPHONE}, allow_redirects=False)
    assert redirect_query(response)["error_reason"] == "system_user_token_unsupported_on_mobile"


def test_a_user_configuration_works_on_a_phone(meta, http, configs):
    response = http.get(meta.dialog, params=dialog_params(meta, config_id="7770002"), headers={"User-Agent": IPHONE})
    assert response.status_code == 200


def test_allow_redirects_back_with_a_code_and_the_state(meta, http, configs):
    form = {**dialog_params(meta), "person": "1000000000000001", "business": ACME, "asset": [PAGE_1]}
    response = http.post(meta.dialog, data={**form, "action": "allow"}, allow_redirects=False)
    query = redirect_query(response)
    assert query["state"] == "st4te"
    exchanged = http.post(
        meta.graph("oauth/access_token"),
        data={
            "client_id": meta.app_id,
            "client_secret": meta.app_secret,
            "redirect_uri": meta.redirect_uri,
            "code": query["code"],
        },
    )
    assert exchanged.status_code == 200


def test_an_embedded_signup_code_from_the_dialog_expires_after_thirty_seconds(meta, http, configs):
    extras = '{"setup":{},"featureType":"","sessionInfoVersion":"3"}'
    form = {**dialog_params(meta, extras=extras), "person": "1000000000000001", "business": ACME, "action": "allow"}
    code = redirect_query(http.post(meta.dialog, data=form, allow_redirects=False))["code"]
    api.advance_clock(31)
    exchanged = http.post(
        meta.graph("oauth/access_token"),
        data={
            "client_id": meta.app_id,
            "client_secret": meta.app_secret,
            "redirect_uri": meta.redirect_uri,
            "code": code,
        },
    )
    assert exchanged.json()["error"]["error_subcode"] == 36007


def test_cancel_redirects_back_with_access_denied(meta, http, configs):
    form = {**dialog_params(meta), "person": "1000000000000001", "action": "cancel"}
    query = redirect_query(http.post(meta.dialog, data=form, allow_redirects=False))
    assert query == {
        "error": "access_denied",
        "error_code": "200",
        "error_description": "Permissions error",
        "error_reason": "user_denied",
        "state": "st4te",
    }


def test_assets_of_another_business_are_refused_with_a_message(meta, http, configs):
    form = {**dialog_params(meta), "person": "1000000000000001", "business": ACME, "asset": [BISTRO_PAGE]}
    response = http.post(meta.dialog, data={**form, "action": "allow"}, allow_redirects=False)
    assert response.status_code == 400
    assert "don&#x27;t belong to Acme Bakery" in response.text


def is_callback(url: str) -> bool:
    return urlparse(url).path.endswith("/connect/callback/")


@pytest.mark.browser
def test_a_person_allows_in_a_real_browser(meta, configs, chromium_path):
    from playwright.sync_api import sync_playwright

    # A callback nobody listens on: the browser's request is seen, and the code goes no further.
    nowhere = "http://127.0.0.1:9/connect/callback/"
    api.register_app(meta.app_id, meta.app_secret, [meta.redirect_uri, nowhere])
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    args += ["--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=args)
        try:
            page = browser.new_page()
            query = "&".join(f"{k}={v}" for k, v in dialog_params(meta, redirect_uri=nowhere).items())
            page.goto(f"{meta.dialog}?{query}")
            page.select_option("#person", "1000000000000002")
            page.click("#switch-person")
            page.check(f"input[name=asset][value='{PAGE_1}']")
            with page.expect_request(lambda r: is_callback(r.url)) as request:
                page.click("button#allow")
            callback = parse_qs(urlparse(request.value.url).query)
        finally:
            browser.close()
    assert callback["state"] == ["st4te"]
    assert callback["code"][0] in api.issued_secrets()
