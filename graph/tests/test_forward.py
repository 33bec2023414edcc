"""The pass-through: what the proxy sends Meta for a caller's request, and what it reads back."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
import requests

from graph import hooks
from graph.errors import InvalidTokenError, RateLimitError, TransientError
from graph.forward import REDACTED_HEADER, ForwardRefused, add_proof, prepare
from graph.tests.fakes import APP_SECRET, GRAPH_URL, FakeMeta, Reply, batch_reply, error_body, make_client

TOKEN = "EAAproxytoken0123456789"
PROOF = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def heard():
    records = []
    hooks.register_call_hook(records.extend)
    return records


def outgoing(method="GET", path="me", query=(), body=None, content_type=None):
    return prepare(method, path, list(query), body, content_type, version="v26.0")


def test_the_settings_version_is_used_unless_the_path_carries_one():
    assert outgoing(path="me/adaccounts").path == "v26.0/me/adaccounts"
    assert outgoing(path="/v24.0/me").path == "v24.0/me"
    assert outgoing(path="").path == "v26.0"


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "code"),
    [
        ("GET", "me", [("access_token", "mine")], None, "secret_not_allowed"),
        ("GET", "me", [("appsecret_proof", "x")], None, "secret_not_allowed"),
        ("POST", "me/feed", [], b"message=hi&access_token=mine", "secret_not_allowed"),
        ("GET", "oauth/access_token", [], None, "path_not_proxied"),
        ("GET", "v26.0/debug_token", [], None, "path_not_proxied"),
        ("POST", "123/system_user_access_tokens", [], None, "path_not_proxied"),
        ("DELETE", "me/permissions", [], None, "path_not_proxied"),
        ("GET", "me/../oauth", [], None, "bad_path"),
        ("PUT", "me", [], None, "method_not_allowed"),
        ("POST", "", [], b'batch=[{"method":"GET","relative_url":"me?access_token=x"}]', "secret_not_allowed"),
        ("POST", "", [], b'batch=[{"method":"GET","relative_url":"debug_token?input_token=x"}]', "path_not_proxied"),
        ("POST", "", [], b"batch=not-json", "bad_batch"),
    ],
)
def test_what_must_not_reach_meta_is_refused_before_sending(method, path, query, body, code):
    with pytest.raises(ForwardRefused) as refused:
        outgoing(method, path, query, body, "application/x-www-form-urlencoded" if body else None)
    assert refused.value.code == code
    assert refused.value.message


def test_a_get_carries_the_proof_in_its_query_and_the_token_in_the_header(heard):
    meta = FakeMeta([Reply(200, {"id": "1"})])
    client, _ = make_client(meta)
    client.forward(outgoing(query=[("fields", "id,name")]), TOKEN)
    sent = meta.sent[0]
    assert sent.path == "/v26.0/me"
    assert sent.query == {"fields": "id,name", "appsecret_proof": PROOF}
    assert sent.headers["Authorization"] == f"OAuth {TOKEN}"
    assert TOKEN not in sent.url


def test_a_post_keeps_the_callers_body_and_adds_the_proof_to_it():
    meta = FakeMeta([Reply(200, {"id": "p"})] * 3)
    client, _ = make_client(meta)
    client.forward(
        outgoing("POST", "123/feed", body=b"message=hello%20there", content_type="application/x-www-form-urlencoded"),
        TOKEN,
    )
    assert meta.sent[0].raw_body == f"message=hello%20there&appsecret_proof={PROOF}"
    client.forward(outgoing("POST", "123/feed", body=b'{"message": "hi"}', content_type="application/json"), TOKEN)
    assert json.loads(meta.sent[1].raw_body) == {"message": "hi", "appsecret_proof": PROOF}
    encoded = requests.Request("POST", GRAPH_URL, files={"message": (None, "hi")}).prepare()
    client.forward(outgoing("POST", "123/feed", body=encoded.body, content_type=encoded.headers["Content-Type"]), TOKEN)
    assert meta.sent[2].form == {"message": "hi", "appsecret_proof": PROOF}
    assert all(not sent.query for sent in meta.sent)


def test_a_raw_upload_leaves_its_body_alone_and_carries_the_proof_in_the_query():
    query, body, _ = add_proof(
        outgoing("POST", "act_1/adimages", body=b"\x89PNG", content_type="image/png"), {"appsecret_proof": "p"}
    )
    assert (query, body) == ([("appsecret_proof", "p")], b"\x89PNG")


def test_metas_answer_its_status_and_usage_headers_come_back_unchanged(heard):
    raw = '{"error": {"message": "(#100) Unknown field", "code": 100}}'
    usage = {"X-App-Usage": '{"call_count":12}', "X-Business-Use-Case-Usage": '{"9":[{"type":"pages"}]}'}
    meta = FakeMeta([Reply(400, raw, {**usage, "x-fb-trace-id": "T1", "Set-Cookie": "no"})])
    client, _ = make_client(meta)
    answer = client.forward(outgoing(path="123", query=[("fields", "nope")]), TOKEN)
    assert (answer.status, answer.content) == (400, raw.encode())
    assert answer.headers == {"Content-Type": "application/json", **usage, "x-fb-trace-id": "T1"}
    assert [(r.family, r.http_status, r.error_code, r.is_marketing) for r in heard] == [("object", 400, 100, False)]
    assert client.usage.app_percent() == 12


def test_marketing_calls_are_told_apart_by_path(heard):
    meta = FakeMeta([Reply(200, {"data": []})] * 2)
    client, _ = make_client(meta)
    client.forward(outgoing(path="act_42/campaigns"), TOKEN)
    client.forward(outgoing(path="me/accounts"), TOKEN)
    assert [r.is_marketing for r in heard] == [True, False]


def test_a_190_is_an_invalid_token_error_and_a_throttle_a_rate_limit():
    usage = {
        "X-Business-Use-Case-Usage": '{"9":[{"type":"pages","call_count":100,"estimated_time_to_regain_access":5}]}'
    }
    meta = FakeMeta([Reply(400, error_body(190, 460)), Reply(400, error_body(80001), usage)])
    client, _ = make_client(meta)
    assert isinstance(client.forward(outgoing(), TOKEN).errors[0], InvalidTokenError)
    throttled = client.forward(outgoing(path="9"), TOKEN).errors[0]
    assert isinstance(throttled, RateLimitError) and throttled.retry_after == 300


def test_a_batch_passes_as_it_is_and_is_counted_per_item(heard):
    items = [
        {"method": "GET", "relative_url": "me"},
        {"method": "GET", "relative_url": "act_1/insights"},
        {"method": "GET", "relative_url": "123"},
        {"method": "GET", "relative_url": "456"},
    ]
    reply = batch_reply(
        [(200, {"id": "1"}), (200, {"data": []}, {"X-App-Usage": '{"call_count":40}'}), (400, error_body(190)), None]
    )
    meta = FakeMeta([reply])
    client, _ = make_client(meta)
    body = f"batch={json.dumps(items)}&include_headers=true".encode()
    answer = client.forward(outgoing("POST", "", body=body, content_type="application/x-www-form-urlencoded"), TOKEN)
    assert answer.content == json.dumps(reply.body).encode()
    assert json.loads(meta.sent[0].form["batch"]) == items and meta.sent[0].form["appsecret_proof"] == PROOF
    assert [(r.http_status, r.error_code, r.is_marketing) for r in heard] == [
        (200, None, False),
        (200, None, True),
        (400, 190, False),
    ]
    assert [type(e) for e in answer.errors] == [InvalidTokenError]
    assert client.usage.app_percent() == 40


def test_a_failed_batch_envelope_counts_each_item_once(heard):
    meta = FakeMeta([Reply(400, error_body(4))])
    client, _ = make_client(meta)
    items = json.dumps([{"method": "GET", "relative_url": "me"}, {"method": "GET", "relative_url": "act_1"}])
    client.forward(
        outgoing("POST", "", body=f"batch={items}".encode(), content_type="application/x-www-form-urlencoded"), TOKEN
    )
    assert [(r.http_status, r.error_code) for r in heard] == [(400, 4), (400, 4)]


def test_no_answer_is_a_transient_error_counted_as_a_call(heard):
    meta = FakeMeta([requests.ConnectionError("refused")])
    client, _ = make_client(meta)
    with pytest.raises(TransientError):
        client.forward(outgoing(), TOKEN)
    assert [(r.http_status, r.error_code) for r in heard] == [(0, None)]


def test_tokens_never_come_back_paging_links_point_at_the_proxy():
    page = {
        "data": [{"id": "1", "name": "Bakery", "access_token": "EAApagetoken"}],
        "paging": {"next": f"{GRAPH_URL}/v26.0/me/accounts?limit=1&access_token={TOKEN}&appsecret_proof=x&after=QQ"},
    }
    meta = FakeMeta([Reply(200, page)])
    client, _ = make_client(meta)
    answer = client.forward(outgoing(path="me/accounts"), TOKEN, proxy_base="https://portal.test/api/v1/graph/")
    body = json.loads(answer.content)
    assert body == {
        "data": [{"id": "1", "name": "Bakery"}],
        "paging": {"next": "https://portal.test/api/v1/graph/v26.0/me/accounts?limit=1&after=QQ"},
    }
    assert answer.headers[REDACTED_HEADER] == "access_token" and answer.redacted
    assert TOKEN.encode() not in answer.content and b"EAApagetoken" not in answer.content


def test_a_batch_items_tokens_are_taken_out_too():
    reply = batch_reply([(200, {"data": [{"id": "1", "access_token": "EAApagetoken"}]})])
    meta = FakeMeta([reply])
    client, _ = make_client(meta)
    items = json.dumps([{"method": "GET", "relative_url": "me/accounts"}])
    answer = client.forward(
        outgoing("POST", "", body=f"batch={items}".encode(), content_type="application/x-www-form-urlencoded"), TOKEN
    )
    assert json.loads(json.loads(answer.content)[0]["body"]) == {"data": [{"id": "1"}]}


def test_an_answer_without_tokens_is_not_touched():
    raw = '{"id": "1",   "name": "spaced as Meta sent it"}'
    meta = FakeMeta([Reply(200, raw)])
    client, _ = make_client(meta)
    answer = client.forward(outgoing(), TOKEN)
    assert answer.content == raw.encode() and not answer.redacted and REDACTED_HEADER not in answer.headers
