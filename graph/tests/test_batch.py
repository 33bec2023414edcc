"""Batches: any size, 50 per request, one result per item in order, a bad item never fails the batch."""

from __future__ import annotations

import json
import math
from urllib.parse import parse_qs, urlsplit

import pytest

from graph.errors import InvalidTokenError, PermissionDeniedError, RateLimitError, TransientError
from graph.hooks import register_call_hook, unregister_call_hook
from graph.tests.fakes import FakeMeta, Reply, batch_reply, error_body, make_client
from graph.types import BatchItem

TOKEN = "EAAGbatch-token"


def items(n: int) -> list[BatchItem]:
    return [BatchItem("GET", f"{i}?fields=id") for i in range(n)]


class BatchMeta:
    """Answers each item with its id; ``fail`` ids get a permission error; ``unfinished`` ids
    come back null the first ``times`` they are asked."""

    def __init__(self, fail=(), unfinished=(), times=1):
        self.fail = set(fail)
        self.unfinished = {i: times for i in unfinished}
        self.sizes: list[int] = []

    def __call__(self, request):
        batch = request.batch
        assert len(batch) <= 50
        self.sizes.append(len(batch))
        results = []
        for entry in batch:
            object_id = urlsplit(entry["relative_url"]).path
            if self.unfinished.get(object_id, 0) > 0:
                self.unfinished[object_id] -= 1
                results.append(None)
            elif object_id in self.fail:
                results.append((403, error_body(200, message="(#200) Permissions error")))
            else:
                results.append((200, {"id": object_id}))
        return batch_reply(results)


@pytest.fixture
def calls():
    records = []
    register_call_hook(records.extend)
    yield records
    unregister_call_hook(records.extend)


@pytest.mark.parametrize("n", [0, 1, 50, 51, 1000])
def test_any_number_of_items_gives_one_result_per_item_in_order(n, calls):
    meta_logic = BatchMeta(fail={"3"}, unfinished={"7"})
    meta = FakeMeta(meta_logic)
    client, delays = make_client(meta)

    results = client.batch(TOKEN, items(n))

    assert len(results) == n
    for i, result in enumerate(results):
        if i == 3:
            assert isinstance(result, PermissionDeniedError)
        else:
            assert result == {"id": str(i)}
    requests_for_chunks = math.ceil(n / 50)
    retried = 1 if n > 7 else 0
    assert len(meta.sent) == requests_for_chunks + retried
    assert len(calls) == n  # once per item, never for the envelope
    if retried:
        assert 1 in meta_logic.sizes  # the unfinished item went again alone
        assert delays == [0.5]


def test_observers_hear_once_per_answer_with_every_item_of_it():
    """The call ledger makes one Redis round trip per batch answer, not one per item."""
    deliveries = []
    register_call_hook(deliveries.append)
    try:
        client, _ = make_client(FakeMeta(BatchMeta(fail={"3"})))
        client.batch(TOKEN, items(120))
    finally:
        unregister_call_hook(deliveries.append)

    assert [len(records) for records in deliveries] == [50, 50, 20]
    assert [record.error_code for record in deliveries[0]].count(200) == 1


def test_chunks_are_at_most_50_items():
    meta_logic = BatchMeta()
    client, _ = make_client(FakeMeta(meta_logic))

    client.batch(TOKEN, items(151))

    assert meta_logic.sizes == [50, 50, 50, 1]


def test_the_envelope_carries_the_token_in_the_header_and_the_items_in_the_body():
    meta = FakeMeta(BatchMeta())
    client, _ = make_client(meta)

    client.batch(TOKEN, [BatchItem("POST", "me/feed", body={"message": "hi"}, name="post")])

    [sent] = meta.sent
    assert sent.method == "POST"
    assert sent.query == {}
    assert sent.headers["Authorization"] == f"OAuth {TOKEN}"
    assert sent.multipart  # as Meta's examples send a batch (curl -F)
    assert "appsecret_proof" in sent.form
    assert sent.batch == [{"method": "POST", "relative_url": "me/feed", "body": "message=hi", "name": "post"}]


def test_an_item_meta_never_finishes_ends_as_a_transient_error_after_the_retries():
    meta_logic = BatchMeta(unfinished={"1"}, times=99)
    client, delays = make_client(FakeMeta(meta_logic))

    results = client.batch(TOKEN, items(3))

    assert results[0] == {"id": "0"} and results[2] == {"id": "2"}
    assert isinstance(results[1], TransientError)
    assert meta_logic.sizes == [3, 1, 1, 1]
    assert delays == [0.5, 1.0, 2.0]


def test_an_item_failing_transiently_is_sent_again_alone():
    answers = iter(
        [
            batch_reply([(200, {"id": "0"}), (500, error_body(2, is_transient=True))]),
            batch_reply([(200, {"id": "1"})]),
        ]
    )
    meta = FakeMeta(lambda r: next(answers))
    client, _ = make_client(meta)

    assert client.batch(TOKEN, items(2)) == [{"id": "0"}, {"id": "1"}]
    assert [len(r.batch) for r in meta.sent] == [2, 1]


def test_a_transient_failure_of_a_whole_request_fails_only_its_own_chunk():
    answers = iter([Reply(503, None)] * 4 + [batch_reply([(200, {"id": "x"})] * 10)])
    meta = FakeMeta(lambda r: next(answers))
    client, _ = make_client(meta)

    results = client.batch(TOKEN, items(60))

    assert all(isinstance(r, TransientError) for r in results[:50])
    assert results[50:] == [{"id": "x"}] * 10


def test_a_rate_limited_request_stops_all_further_requests():
    usage = {"1": [{"type": "pages", "call_count": 100, "estimated_time_to_regain_access": 60}]}
    throttled = Reply(400, error_body(613), {"X-Business-Use-Case-Usage": json.dumps(usage)})
    meta = FakeMeta(lambda r: throttled)
    client, _ = make_client(meta)

    results = client.batch(TOKEN, items(120))

    assert len(meta.sent) == 1
    assert len(results) == 120
    assert all(isinstance(r, RateLimitError) and r.retry_after == 3600 for r in results)


def test_an_invalid_envelope_token_raises_rather_than_blaming_every_item(calls):
    meta = FakeMeta(lambda r: Reply(400, error_body(190, 460)))
    client, _ = make_client(meta)

    with pytest.raises(InvalidTokenError):
        client.batch(TOKEN, items(5))

    assert [c.error_code for c in calls] == [190] * 5


def test_usage_headers_of_items_are_recorded():
    app_usage = {"call_count": 42, "total_time": 7, "total_cputime": 3}
    meta = FakeMeta([batch_reply([(200, {"id": "0"}, {"X-App-Usage": json.dumps(app_usage)})])])
    client, _ = make_client(meta)

    client.batch(TOKEN, items(1))

    assert client.usage.app == app_usage
    assert client.usage.max_percent() == 42


def test_debug_tokens_makes_one_request_per_50_tokens_and_returns_one_result_each():
    def handler(request):
        results = []
        for entry in request.batch:
            token = parse_qs(urlsplit(entry["relative_url"]).query)["input_token"][0]
            if token == "dead":
                results.append((200, {"data": {"is_valid": False, "error": {"code": 190, "subcode": 463}}}))
            elif token == "weird":
                results.append((400, error_body(100, message="Invalid parameter")))
            else:
                results.append((200, {"data": {"is_valid": True, "type": "USER", "user_id": token}}))
        return batch_reply(results)

    meta = FakeMeta(handler)
    client, _ = make_client(meta)
    tokens = [f"tok{i}" for i in range(101)]
    tokens[10] = "dead"
    tokens[60] = "weird"

    infos = client.debug_tokens(tokens)

    assert len(meta.sent) == 3
    assert len(infos) == 101
    assert infos[0].is_valid and infos[0].user_id == "tok0"
    assert not infos[10].is_valid and isinstance(infos[10].error, InvalidTokenError)
    assert not isinstance(infos[60], InvalidTokenError) and infos[60].code == 100
    assert all(t not in r.url for r in meta.sent for t in tokens)


def test_a_batch_item_repr_shows_no_query_or_body():
    item = BatchItem("GET", "debug_token?input_token=EAAGsecret", body={"access_token": "EAAGother"})

    assert repr(item) == "BatchItem('GET', 'debug_token')"
