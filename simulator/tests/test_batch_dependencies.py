"""Batch items that depend on each other (name, {result=name:$.path}, depends_on,
omit_response_on_success), batches posted at a node path, and the 50-item limit."""

import json

from simulator import api
from simulator.tests.conftest import batch_item, live, post_batch

pytestmark = live

ACME, BOB = "9100000000000001", "1000000000000002"
PAGE_1, PAGE_2 = api.asset_id_for("page", 1, 1), api.asset_id_for("page", 1, 2)
SCOPES = ["pages_show_list", "ads_read"]


def bodies(response):
    assert response.status_code == 200, response.text
    return [json.loads(entry["body"]) if entry else None for entry in response.json()]


def user_token():
    return api.issue_token(token_type="user", person_id=BOB, scopes=SCOPES, asset_ids=[PAGE_1, PAGE_2])


def test_a_later_item_uses_an_earlier_items_answer_through_jsonpath(meta, http):
    token = user_token()
    items = [
        batch_item(meta, "me/accounts?fields=id", name="pages"),
        batch_item(meta, "?ids={result=pages:$.data.*.id}&fields=name"),
    ]
    named, dependent = bodies(post_batch(meta, http, items, token))
    assert named is None  # depended on, so omitted on success by default
    assert dependent == {
        PAGE_1: {"name": "Acme Bakery Page 1", "id": PAGE_1},
        PAGE_2: {"name": "Acme Bakery Page 2", "id": PAGE_2},
    }


def test_omit_response_on_success_false_keeps_the_named_answer(meta, http):
    token = user_token()
    items = [
        batch_item(meta, "me/accounts?fields=id", name="pages", omit_response_on_success=False),
        batch_item(meta, "{result=pages:$.data[0].id}?fields=name"),
    ]
    named, dependent = bodies(post_batch(meta, http, items, token))
    assert [page["id"] for page in named["data"]] == [PAGE_1, PAGE_2]
    assert dependent == {"name": "Acme Bakery Page 1", "id": PAGE_1}


def test_a_named_item_nobody_depends_on_keeps_its_answer(meta, http):
    token = user_token()
    (only,) = bodies(post_batch(meta, http, [batch_item(meta, "me?fields=id", name="me")], token))
    assert only == {"id": BOB}


def test_a_reference_in_the_body_is_filled_in_too(meta, http):
    token = user_token()
    items = [
        batch_item(meta, "me/accounts?fields=id", name="pages"),
        {"method": "GET", "relative_url": "", "body": "ids={result=pages:$.data.*.id}&fields=id"},
    ]
    assert set(bodies(post_batch(meta, http, items, token))[1]) == {PAGE_1, PAGE_2}


def test_depends_on_runs_an_item_only_after_its_dependency_succeeded(meta, http):
    token = user_token()
    items = [
        batch_item(meta, "999999999", name="missing"),
        batch_item(meta, "me?fields=id", depends_on="missing"),
        batch_item(meta, "me?fields=id", name="me"),
        batch_item(meta, "me?fields=name", depends_on="me"),
    ]
    response = post_batch(meta, http, items, token)
    failed, refused, omitted, served = bodies(response)
    assert failed["error"]["error_subcode"] == 33  # a failed named item keeps its answer
    assert response.json()[1]["code"] == 400
    assert (refused["error"]["code"], refused["error"]["type"]) == (100, "GraphBatchException")
    assert omitted is None
    assert served == {"name": "Bob Baker", "id": BOB}


def test_a_batch_can_be_posted_at_a_node_path(meta, http):
    token = user_token()
    items = [batch_item(meta, "me?fields=id"), batch_item(meta, f"{PAGE_1}?fields=id")]
    assert bodies(post_batch(meta, http, items, token, path="me")) == [{"id": BOB}, {"id": PAGE_1}]


def test_more_than_fifty_items_is_a_graph_batch_exception(meta, http):
    token = user_token()
    response = post_batch(meta, http, [batch_item(meta, "me")] * 51, token)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("GraphBatchException", 1)
    assert "Maximum batch size is 50" in error["message"]
    assert error["fbtrace_id"] == response.headers["x-fb-trace-id"]
