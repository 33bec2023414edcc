"""Permissions are enforced on reads: a revoked permission answers code 10 or 200 (Meta's
permission range), and revoking one permission (path or the SDK's `permission` parameter)
removes only that one."""

import json

import pytest

from simulator import api
from simulator.tests.conftest import debug, graph_call, live

pytestmark = live

ACME, BOB = "9100000000000001", "1000000000000002"
PAGE_1, AD_1 = api.asset_id_for("page", 1, 1), api.asset_id_for("ad_account", 1, 1)
WABA_1 = api.asset_id_for("whatsapp_business_account", 1, 1)
SCOPES = ["business_management", "pages_show_list", "ads_read", "whatsapp_business_management"]


def error_of(response):
    return response.json()["error"]


def scopes_of(meta, http, token):
    return debug(meta, http, token)["scopes"]


@pytest.fixture
def token(meta):
    return api.issue_token(token_type="user", person_id=BOB, scopes=SCOPES, asset_ids=[PAGE_1, AD_1, WABA_1])


def revoke(meta, http, token, permission, form):
    proof = meta.proof(token)
    headers = {"Authorization": f"OAuth {token}"}
    if form == "path":
        return http.delete(
            meta.graph(f"me/permissions/{permission}"), params={"appsecret_proof": proof}, headers=headers
        )
    if form == "query":  # Meta's Python SDK: DELETE /{user}/permissions?permission=...
        return http.delete(
            meta.graph("me/permissions"), params={"permission": permission, "appsecret_proof": proof}, headers=headers
        )
    return http.delete(
        meta.graph("me/permissions"), data={"permission": permission, "appsecret_proof": proof}, headers=headers
    )


@pytest.mark.parametrize("form", ["path", "query", "body"])
def test_revoking_one_permission_removes_only_that_one(meta, http, token, form):
    assert revoke(meta, http, token, "ads_read", form).json() == {"success": True}
    assert "ads_read" not in scopes_of(meta, http, token)
    assert {"business_management", "pages_show_list"} <= set(scopes_of(meta, http, token))
    assert graph_call(meta, http, "me", token).status_code == 200
    assert graph_call(meta, http, PAGE_1, token).status_code == 200


def test_an_ad_account_read_after_ads_read_is_revoked_answers_200(meta, http, token):
    assert graph_call(meta, http, f"act_{AD_1}", token).status_code == 200
    revoke(meta, http, token, "ads_read", "path")
    response = graph_call(meta, http, f"act_{AD_1}", token)
    error = error_of(response)
    assert response.status_code == 400
    assert (error["code"], error["type"]) == (200, "OAuthException")
    assert "ads_management or ads_read" in error["message"]
    assert "error_subcode" not in error
    assert error["fbtrace_id"] == response.headers["x-fb-trace-id"]


def test_a_page_read_without_any_page_permission_answers_10(meta, http, token):
    revoke(meta, http, token, "pages_show_list", "path")
    error = error_of(graph_call(meta, http, PAGE_1, token))
    assert error["code"] == 10
    assert error_of(graph_call(meta, http, "me/accounts", token))["code"] == 10


def test_edges_and_field_expansion_need_the_permission_too(meta, http, token):
    revoke(meta, http, token, "ads_read", "path")
    assert error_of(graph_call(meta, http, "me/adaccounts", token))["code"] == 200
    expansion = graph_call(meta, http, "me", token, data={"fields": "accounts{id},adaccounts{id}"})
    assert error_of(expansion)["code"] == 200  # a refused edge fails the whole expansion
    assert graph_call(meta, http, "me", token, data={"fields": "accounts{id}"}).status_code == 200


def test_whatsapp_and_business_reads_need_their_permissions(meta, http, token):
    api.revoke_permission("whatsapp_business_management", token=token)
    api.revoke_permission("business_management", person_id=BOB)
    assert error_of(graph_call(meta, http, WABA_1, token))["code"] == 200
    assert error_of(graph_call(meta, http, ACME, token))["code"] == 200
    assert error_of(graph_call(meta, http, "me/businesses", token))["code"] == 200


def test_a_revoked_permission_is_declined_in_me_permissions(meta, http, token):
    revoke(meta, http, token, "ads_read", "query")
    rows = graph_call(meta, http, "me/permissions", token).json()["data"]
    assert {"permission": "ads_read", "status": "declined"} in rows
    assert {"permission": "pages_show_list", "status": "granted"} in rows


def test_revoking_a_permission_reaches_every_token_of_the_person(meta, http, token):
    other = api.issue_token(token_type="user", person_id=BOB, scopes=SCOPES, asset_ids=[AD_1])
    revoke(meta, http, token, "ads_read", "path")
    assert error_of(graph_call(meta, http, f"act_{AD_1}", other))["code"] == 200


def test_deleting_every_permission_removes_the_app(meta, http, token):
    response = http.delete(
        meta.graph("me/permissions"),
        params={"appsecret_proof": meta.proof(token)},
        headers={"Authorization": f"OAuth {token}"},
    )
    assert json.loads(response.text) == {"success": True}
    error = error_of(graph_call(meta, http, "me", token))
    assert (error["code"], error["error_subcode"]) == (190, 458)


def test_a_system_user_token_is_held_to_its_permissions(meta, http):
    system_user = api.issue_token(business_id=ACME, scopes=["pages_show_list"], asset_ids=[PAGE_1, AD_1])
    assert graph_call(meta, http, PAGE_1, system_user).status_code == 200
    assert error_of(graph_call(meta, http, f"act_{AD_1}", system_user))["code"] == 200
