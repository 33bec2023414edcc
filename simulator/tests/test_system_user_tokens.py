"""POST /{business}/system_user_access_tokens: fetch, granular subsets, 60-day expiry, errors."""

import pytest

from simulator import api
from simulator.tests.conftest import debug, graph_call, live

pytestmark = live

ACME = "9100000000000001"
PAGE_1, PAGE_2 = api.asset_id_for("page", 1, 1), api.asset_id_for("page", 1, 2)
SCOPES = ["business_management", "pages_show_list", "pages_read_engagement"]


@pytest.fixture
def bisu_token(meta):
    return api.issue_token(business_id=ACME, scopes=SCOPES, asset_ids=[PAGE_1, PAGE_2])


def manage(meta, http, token, **data):
    return graph_call(meta, http, f"{ACME}/system_user_access_tokens", token, method="POST", data=data)


def test_fetch_only_returns_the_existing_token(meta, http, bisu_token):
    body = manage(meta, http, bisu_token, fetch_only="true", system_user_id=api.system_user_id(ACME)).json()
    assert body == {"access_token": bisu_token}


def test_a_granular_token_gets_a_subset_of_assets_and_scopes(meta, http, bisu_token):
    body = manage(meta, http, bisu_token, asset=PAGE_1, scope="pages_show_list").json()
    data = debug(meta, http, body["access_token"])
    assert data["scopes"] == ["pages_show_list"]
    assert data["granular_scopes"] == [{"scope": "pages_show_list", "target_ids": [PAGE_1]}]
    assert data["expires_at"] == 0


def test_set_token_expires_in_60_days_makes_the_new_token_expire(meta, http, bisu_token):
    body = manage(meta, http, bisu_token, asset=PAGE_1, set_token_expires_in_60_days="true").json()
    data = debug(meta, http, body["access_token"])
    assert data["expires_at"] - data["issued_at"] == 60 * 86400


def test_assets_outside_the_original_grant_are_refused_with_3962(meta, http, bisu_token):
    other = api.asset_id_for("page", 2, 1)
    response = manage(meta, http, bisu_token, asset=f"{PAGE_1},{other}")
    assert response.json()["error"]["code"] == 3962


def test_a_token_without_business_management_is_refused_with_200(meta, http):
    token = api.issue_token(business_id=ACME, scopes=["pages_show_list"])
    response = manage(meta, http, token, fetch_only="true")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == 200


def test_a_revoked_installation_is_refused_with_452(meta, http, bisu_token):
    helper = api.issue_token(business_id=ACME, scopes=SCOPES)  # becomes the primary token
    api.invalidate_token(helper, 458)
    assert manage(meta, http, bisu_token, fetch_only="true").json()["error"]["code"] == 452


def test_the_proof_is_required_even_when_the_app_does_not_require_it(meta, http, bisu_token):
    api.register_app(meta.app_id, meta.app_secret, [meta.redirect_uri], require_proof=False)
    response = graph_call(
        meta,
        http,
        f"{ACME}/system_user_access_tokens",
        bisu_token,
        method="POST",
        proof=False,
        data={"fetch_only": "1"},
    )
    assert response.json()["error"]["message"] == "API calls from the server require an appsecret_proof argument"
