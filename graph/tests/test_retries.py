"""Retries only where safe, exponential backoff with full jitter, bounded; nothing really sleeps."""

from __future__ import annotations

import json

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from graph.errors import InvalidTokenError, OtherGraphError, PermissionDeniedError, RateLimitError, TransientError
from graph.tests.fakes import FakeMeta, Reply, error_body, make_client

TOKEN = "EAAGretry-token"
OK = Reply(200, {"id": "1"})


def refused() -> requests.ConnectionError:
    inner = NewConnectionError(None, "Connection refused")
    return requests.ConnectionError(MaxRetryError(None, "/v26.0/me", inner))


@pytest.mark.parametrize(
    "failure",
    [
        Reply(500, error_body(1, message="An unknown error has occurred.")),
        Reply(503, error_body(2, message="Please retry your request later.", is_transient=True)),
        Reply(400, error_body(100, is_transient=True)),
        Reply(502, "<html>Bad gateway</html>"),
        requests.ReadTimeout("read timed out"),
        requests.ConnectTimeout("connect timed out"),
        refused(),
    ],
    ids=["code-1", "code-2", "is_transient", "502-html", "read-timeout", "connect-timeout", "refused"],
)
def test_a_transient_failure_is_retried_and_the_call_succeeds(failure):
    meta = FakeMeta([failure, failure, OK])
    client, delays = make_client(meta)

    assert client.get_me(TOKEN) == {"id": "1"}
    assert len(meta.sent) == 3
    assert delays == [0.5, 1.0]


def test_backoff_doubles_up_to_the_cap_and_gives_up_after_max_retries():
    meta = FakeMeta(lambda r: Reply(500, error_body(2)))
    client, delays = make_client(meta, max_retries=5, backoff_base=1.0, backoff_cap=5.0)

    with pytest.raises(TransientError) as caught:
        client.get_me(TOKEN)

    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert len(meta.sent) == 6
    assert caught.value.code == 2


def test_the_jitter_is_full_so_each_delay_is_a_random_fraction_of_the_ceiling():
    fractions = iter([0.25, 0.75])
    meta = FakeMeta([Reply(500, None), Reply(500, None), OK])
    client, delays = make_client(meta, jitter=lambda: next(fractions), backoff_base=2.0)

    client.get_me(TOKEN)

    assert delays == [0.5, 3.0]


@pytest.mark.parametrize(
    ("failure", "error_class"),
    [
        (Reply(400, error_body(190, 463)), InvalidTokenError),
        (Reply(403, error_body(200)), PermissionDeniedError),
        (Reply(400, error_body(100, 33)), OtherGraphError),
    ],
)
def test_errors_retrying_cannot_fix_are_raised_at_once(failure, error_class):
    meta = FakeMeta([failure, OK])
    client, delays = make_client(meta)

    with pytest.raises(error_class):
        client.get_me(TOKEN)

    assert len(meta.sent) == 1
    assert delays == []


def test_a_rate_limit_is_retried_after_the_wait_meta_announced():
    usage = {"999": [{"type": "ads_management", "call_count": 100, "estimated_time_to_regain_access": 0.25}]}
    throttled = Reply(400, error_body(80004), {"X-Business-Use-Case-Usage": json.dumps(usage)})
    meta = FakeMeta([throttled, OK])
    client, delays = make_client(meta)

    assert client.get_me(TOKEN) == {"id": "1"}
    assert delays == [15.0]  # 0.25 minutes, longer than the backoff of 0.5s


def test_a_rate_limit_with_a_long_wait_is_raised_with_retry_after_instead_of_blocking():
    usage = {"999": [{"type": "ads_management", "call_count": 100, "estimated_time_to_regain_access": 10}]}
    throttled = Reply(400, error_body(80004), {"X-Business-Use-Case-Usage": json.dumps(usage)})
    meta = FakeMeta([throttled, OK])
    client, delays = make_client(meta)

    with pytest.raises(RateLimitError) as caught:
        client.get_me(TOKEN)

    assert caught.value.retry_after == 600.0
    assert delays == []
    assert client.usage.regain_access_seconds() == 600.0


def test_a_rate_limit_without_a_stated_wait_backs_off_like_a_transient_error():
    meta = FakeMeta([Reply(400, error_body(4)), Reply(400, error_body(17)), OK])
    client, delays = make_client(meta)

    client.get_me(TOKEN)

    assert delays == [0.5, 1.0]


def test_the_code_exchange_is_not_resent_after_a_read_timeout():
    meta = FakeMeta([requests.ReadTimeout("read timed out"), Reply(200, {"access_token": "x"})])
    client, delays = make_client(meta)

    with pytest.raises(TransientError) as caught:
        client.exchange_code("code-1", "https://portal.test/cb/")

    assert len(meta.sent) == 1
    assert "ReadTimeout" in str(caught.value)
    assert caught.value.http_status == 0


def test_the_code_exchange_is_not_resent_after_a_bare_server_error():
    meta = FakeMeta([Reply(502, "<html>Bad gateway</html>"), Reply(200, {"access_token": "x"})])
    client, _ = make_client(meta)

    with pytest.raises(TransientError):
        client.exchange_code("code-1", "https://portal.test/cb/")

    assert len(meta.sent) == 1


def test_the_code_exchange_is_resent_when_the_connection_was_never_made():
    meta = FakeMeta([refused(), Reply(200, {"access_token": "EAAGx"})])
    client, _ = make_client(meta)

    assert client.exchange_code("code-1", "https://portal.test/cb/").access_token == "EAAGx"
    assert len(meta.sent) == 2


def test_the_code_exchange_is_resent_when_meta_says_the_error_is_transient():
    meta = FakeMeta([Reply(500, error_body(2, is_transient=True)), Reply(200, {"access_token": "EAAGx"})])
    client, _ = make_client(meta)

    assert client.exchange_code("code-1", "https://portal.test/cb/").access_token == "EAAGx"


def test_a_connection_error_message_never_carries_the_url():
    failure = requests.ConnectionError("Max retries exceeded with url: /v26.0/me?appsecret_proof=ab")
    meta = FakeMeta(lambda r: failure)
    client, _ = make_client(meta, max_retries=0)

    with pytest.raises(TransientError) as caught:
        client.get_me(TOKEN)

    assert "appsecret_proof" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_timeouts_are_split_into_connect_and_read():
    seen = {}

    def handler(request):
        return OK

    meta = FakeMeta(handler)
    original = meta.send

    def send(request, **kwargs):
        seen.update(kwargs)
        return original(request, **kwargs)

    meta.send = send
    client, _ = make_client(meta, timeout=12.0)

    client.get_me(TOKEN)

    assert seen["timeout"] == (5.0, 12.0)


def test_a_request_that_cannot_even_be_built_is_not_retried():
    client, delays = make_client(FakeMeta([OK]), graph_url="graph.facebook.com")  # no scheme

    with pytest.raises(OtherGraphError, match="MissingSchema"):
        client.get_me(TOKEN)

    assert delays == []
