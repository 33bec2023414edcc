"""Nodes, edges, field expansion, ?ids= and cursor pagination, over real HTTP."""

import json
from urllib.parse import parse_qs, urlparse

from simulator import api
from simulator.tests.conftest import graph_call, live

pytestmark = live

ACME, BISTRO, GLOBEX = "9100000000000001", "9100000000000002", "9100000000000004"
PAGE_1, PAGE_2 = api.asset_id_for("page", 1, 1), api.asset_id_for("page", 1, 2)
AD_1 = api.asset_id_for("ad_account", 1, 1)
BISTRO_AD = api.asset_id_for("ad_account", 2, 1)


def get(meta, http, path, token, **params):
    return graph_call(meta, http, path, token, data=params)


def test_me_with_a_user_token_lists_pages_ad_accounts_and_businesses(meta, http):
    token = api.issue_token(token_type="user", person_id="1000000000000001", asset_ids=[PAGE_1, AD_1])
    me = get(meta, http, "me", token).json()
    assert me == {"id": "1000000000000001", "name": "Alice Admin"}
    pages = get(meta, http, "me/accounts", token, fields="id,name,user_access_expire_time").json()
    assert [p["id"] for p in pages["data"]] == [PAGE_1]
    assert "user_access_expire_time" not in pages["data"][0]
    ad_accounts = get(meta, http, "me/adaccounts", token).json()["data"]
    assert ad_accounts == [{"account_id": AD_1, "id": f"act_{AD_1}"}]
    businesses = get(meta, http, "me/businesses", token).json()["data"]
    assert {b["id"] for b in businesses} == {ACME, BISTRO}


def test_a_system_user_token_reads_its_assigned_assets(meta, http):
    token = api.issue_token(
        scopes=["pages_show_list", "ads_read", "whatsapp_business_management"],
        asset_ids=[PAGE_1, AD_1, api.asset_id_for("whatsapp_business_account", 1, 1)],
    )
    system_user = api.system_user_id(ACME)
    pages = get(meta, http, f"{system_user}/assigned_pages", token).json()["data"]
    ad_accounts = get(meta, http, f"{system_user}/assigned_ad_accounts", token, fields="id,name").json()["data"]
    wabas = get(meta, http, f"{system_user}/assigned_whatsapp_business_accounts", token).json()["data"]
    assert [p["id"] for p in pages] == [PAGE_1]
    assert [a["id"] for a in ad_accounts] == [f"act_{AD_1}"]
    assert len(wabas) == 1


def test_business_edges_list_owned_and_client_assets(meta, http):
    token = api.issue_token(business_id=ACME)
    owned = get(meta, http, f"{ACME}/owned_ad_accounts", token).json()["data"]
    client = get(meta, http, f"{ACME}/client_ad_accounts", token).json()["data"]
    owned_wabas = get(meta, http, f"{ACME}/owned_whatsapp_business_accounts", token).json()["data"]
    assert len(owned) == 2
    assert [a["id"] for a in client] == [f"act_{BISTRO_AD}"]
    assert len(owned_wabas) == 1


def test_fields_expand_edges_and_nested_nodes(meta, http):
    token = api.issue_token(business_id=ACME)
    body = get(meta, http, f"{ACME}", token, fields="id,name,owned_pages.limit(1){id,name,business{id}}").json()
    assert body["id"] == ACME
    assert len(body["owned_pages"]["data"]) == 1
    assert body["owned_pages"]["data"][0]["business"] == {"id": ACME}
    assert "after" in body["owned_pages"]["paging"]["cursors"]


def test_an_unknown_field_is_metas_nonexisting_field_error(meta, http):
    token = api.issue_token()
    error = get(meta, http, PAGE_1, token, fields="id,nonsense").json()["error"]
    assert error["code"] == 100
    assert "Tried accessing nonexisting field (nonsense) on node type (Page)" in error["message"]


def test_an_asset_outside_the_grant_cannot_be_loaded(meta, http):
    token = api.issue_token(asset_ids=[PAGE_1])
    response = get(meta, http, PAGE_2, token)
    assert response.status_code == 400
    assert (response.json()["error"]["code"], response.json()["error"]["error_subcode"]) == (100, 33)


def test_ids_reads_several_nodes_at_once_and_counts_each_as_a_call(meta, http):
    token = api.issue_token(asset_ids=[PAGE_1, PAGE_2, AD_1])
    before = api.call_count()
    body = get(meta, http, "", token, ids=f"{PAGE_1},{PAGE_2},act_{AD_1}", fields="id,user_access_expire_time").json()
    assert set(body) == {PAGE_1, PAGE_2, f"act_{AD_1}"}
    assert body[PAGE_1] == {"id": PAGE_1}
    assert api.call_count() - before == 3


def test_edges_paginate_with_cursors_and_a_next_link(meta, http):
    token = api.issue_token(business_id=GLOBEX)
    first = get(meta, http, f"{GLOBEX}/owned_pages", token).json()
    assert len(first["data"]) == 25
    next_query = parse_qs(urlparse(first["paging"]["next"]).query)
    assert next_query["after"] == [first["paging"]["cursors"]["after"]]
    second = get(meta, http, f"{GLOBEX}/owned_pages", token, after=first["paging"]["cursors"]["after"]).json()
    assert len(second["data"]) == 5
    assert "next" not in second["paging"]
    ids = [p["id"] for p in first["data"] + second["data"]]
    assert len(set(ids)) == 30


def test_the_page_size_follows_limit(meta, http):
    token = api.issue_token(business_id=GLOBEX)
    seen, after, pages = [], None, 0
    while True:
        params = {"limit": 7, **({"after": after} if after else {})}
        body = get(meta, http, f"{GLOBEX}/owned_pages", token, **params).json()
        seen += [p["id"] for p in body["data"]]
        pages += 1
        if "next" not in body.get("paging", {}):
            break
        after = body["paging"]["cursors"]["after"]
    assert pages == 5
    assert len(seen) == len(set(seen)) == 30


def test_ad_account_calls_carry_the_usage_headers(meta, http):
    api.set_usage(42)
    token = api.issue_token(business_id=ACME)
    response = get(meta, http, f"act_{AD_1}", token)
    assert response.status_code == 200
    assert response.headers["X-App-Usage"] == '{"call_count":42,"total_cputime":21,"total_time":21}'
    business_usage = json.loads(response.headers["X-Business-Use-Case-Usage"])
    assert business_usage[ACME][0]["type"] == "ads_management"
    assert business_usage[ACME][0]["estimated_time_to_regain_access"] == 0
    assert '"acc_id_util_pct":42' in response.headers["X-Ad-Account-Usage"]


def test_the_app_usage_counts_calls_in_a_window_of_an_hour(meta, http, settings):
    settings.SIMULATOR_APP_CALLS_PER_HOUR = 10
    token = api.issue_token(business_id=ACME)

    def app_usage() -> int:
        return json.loads(get(meta, http, "me", token).headers["X-App-Usage"])["call_count"]

    assert [app_usage() for _ in range(3)] == [10, 20, 30]
    api.advance_clock(59 * 60)
    assert app_usage() == 40  # the same window
    api.advance_clock(60)
    assert app_usage() == 10  # an hour after the window opened: a new one, this call its first
