"""Batch requests: shape, the 50-item limit, item tokens, partial failure and unfinished items."""

import json

from simulator import api
from simulator.tests.conftest import live

pytestmark = live

PAGE_1 = api.asset_id_for("page", 1, 1)


def post_batch(meta, http, token, items, **extra):
    return http.post(
        meta.graph(""),
        data={"batch": json.dumps(items), "appsecret_proof": meta.proof(token), **extra},
        headers={"Authorization": f"OAuth {token}"},
    )


def test_each_item_comes_back_with_code_headers_and_a_json_string_body(meta, http):
    token = api.issue_token()
    items = [{"method": "GET", "relative_url": "me?fields=id"}, {"method": "GET", "relative_url": f"v26.0/{PAGE_1}"}]
    response = post_batch(meta, http, token, items)
    assert response.status_code == 200
    first, second = response.json()
    assert first["code"] == 200
    assert {"name": "Content-Type", "value": "text/javascript; charset=UTF-8"} in first["headers"]
    assert json.loads(first["body"]) == {"id": api.system_user_id("9100000000000001")}
    assert json.loads(second["body"])["id"] == PAGE_1


def test_one_failing_item_does_not_fail_the_others(meta, http):
    token = api.issue_token(asset_ids=[PAGE_1])
    items = [{"method": "GET", "relative_url": "999999"}, {"method": "GET", "relative_url": PAGE_1}]
    bad, good = post_batch(meta, http, token, items).json()
    assert bad["code"] == 400
    assert json.loads(bad["body"])["error"]["error_subcode"] == 33
    assert good["code"] == 200


def test_an_item_may_carry_its_own_token_and_proof_in_its_body(meta, http):
    outer = api.issue_token()
    inner = api.issue_token(token_type="user", person_id="1000000000000002")
    body = f"access_token={inner}&appsecret_proof={meta.proof(inner)}"
    (item,) = post_batch(meta, http, outer, [{"method": "GET", "relative_url": "me", "body": body}]).json()
    assert json.loads(item["body"])["id"] == "1000000000000002"


def test_debug_token_works_as_a_batch_item_with_its_query_in_the_body(meta, http):
    app_token = f"{meta.app_id}|{meta.app_secret}"
    token = api.issue_token()
    response = http.post(
        meta.graph(""),
        data={"batch": json.dumps([{"method": "GET", "relative_url": "debug_token", "body": f"input_token={token}"}])},
        headers={"Authorization": f"OAuth {app_token}"},
    )
    (item,) = response.json()
    assert json.loads(item["body"])["data"]["is_valid"] is True


def test_fifty_items_are_served_and_fifty_one_are_refused(meta, http):
    token = api.issue_token()
    fifty = post_batch(meta, http, token, [{"method": "GET", "relative_url": "me"}] * 50)
    fifty_one = post_batch(meta, http, token, [{"method": "GET", "relative_url": "me"}] * 51)
    assert fifty.status_code == 200
    assert len(fifty.json()) == 50
    assert fifty_one.status_code == 400
    assert "Maximum batch size is 50" in fifty_one.json()["error"]["message"]


def test_an_empty_batch_returns_an_empty_list(meta, http):
    token = api.issue_token()
    assert post_batch(meta, http, token, []).json() == []


def test_a_timeout_mid_batch_leaves_the_unfinished_items_null(meta, http):
    token = api.issue_token()
    api.set_faults(timeout_rate=0.2, seed=7)
    items = [{"method": "GET", "relative_url": "me"}] * 20
    results = post_batch(meta, http, token, items).json()
    first_null = results.index(None)
    assert all(r is not None for r in results[:first_null])
    assert all(r is None for r in results[first_null:])


def test_each_item_counts_as_one_call(meta, http):
    token = api.issue_token()
    before = api.call_count()
    post_batch(meta, http, token, [{"method": "GET", "relative_url": "me"}] * 7)
    assert api.call_count() - before == 7
