"""A batch's items share what they read (one query for all their tokens) yet see each other's writes."""

import json
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from simulator import api, endpoints, serving
from simulator.testing import start

pytestmark = pytest.mark.django_db

ACME, ALICE = "9100000000000001", "1000000000000001"
EXPANSION = "accounts{id,name,user_access_expire_time},adaccounts{id,account_id,name},businesses{id,name}"


@pytest.fixture
def meta():
    return start("http://testserver")


def batch(meta, items, token=None):
    token = token or f"{meta.app_id}|{meta.app_secret}"
    call = endpoints.Call("POST", "", {"batch": json.dumps(items)}, token=token, base_url="http://testserver/")
    with CaptureQueriesContext(connection) as queries:
        reply = serving.serve(call)
    return [json.loads(entry["body"]) if entry else None for entry in reply.body], len(queries)


def coverage_item(meta, token):
    body = urlencode({"access_token": token, "appsecret_proof": meta.proof(token)})
    return {"method": "GET", "relative_url": f"me?fields={EXPANSION}", "body": body}


def user_tokens(n):
    return [api.issue_token(token_type="user", business_id=ACME, person_id=ALICE) for _ in range(n)]


def test_inspecting_fifty_tokens_takes_as_many_queries_as_inspecting_two(meta):
    tokens = user_tokens(50)
    items = [{"method": "GET", "relative_url": f"debug_token?input_token={t}"} for t in tokens]
    bodies, fifty = batch(meta, items)
    _, two = batch(meta, items[:2])
    assert fifty == two
    assert all(body["data"]["is_valid"] for body in bodies)
    assert bodies[0]["data"]["granular_scopes"] == bodies[-1]["data"]["granular_scopes"]


def test_reading_what_fifty_tokens_cover_takes_as_many_queries_as_for_two(meta):
    tokens = user_tokens(50)
    items = [coverage_item(meta, t) for t in tokens]
    bodies, fifty = batch(meta, items)
    _, two = batch(meta, items[:2])
    assert fifty == two
    assert [p["id"] for p in bodies[-1]["accounts"]["data"]] == [p["id"] for p in bodies[0]["accounts"]["data"]]
    assert bodies[-1]["businesses"]["data"][0]["id"] == ACME


def test_an_item_after_a_revoke_in_the_same_batch_sees_the_token_revoked(meta):
    (token,) = user_tokens(1)
    body = urlencode({"access_token": token, "appsecret_proof": meta.proof(token)})
    items = [
        {"method": "GET", "relative_url": "me?fields=id", "body": body},
        {"method": "DELETE", "relative_url": "me/permissions", "body": body},
        {"method": "GET", "relative_url": "me?fields=id", "body": body},
        {"method": "GET", "relative_url": f"debug_token?input_token={token}"},
    ]
    before, revoked, after, inspected = batch(meta, items, token=f"{meta.app_id}|{meta.app_secret}")[0]
    assert before == {"id": ALICE}
    assert revoked == {"success": True}
    assert after["error"]["code"] == 190 and after["error"]["error_subcode"] == 458
    assert inspected["data"]["is_valid"] is False


def test_an_item_after_a_scope_is_revoked_in_the_same_batch_no_longer_sees_it(meta):
    (token,) = user_tokens(1)
    body = urlencode({"access_token": token, "appsecret_proof": meta.proof(token)})
    items = [
        {"method": "GET", "relative_url": f"debug_token?input_token={token}"},
        {"method": "DELETE", "relative_url": "me/permissions/ads_read", "body": body},
        {"method": "GET", "relative_url": f"debug_token?input_token={token}"},
    ]
    first, _, second = batch(meta, items)[0]
    assert "ads_read" in first["data"]["scopes"]
    assert "ads_read" not in second["data"]["scopes"]
