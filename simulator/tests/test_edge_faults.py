"""Faults of whole requests: the edge's HTML pages, hangs held until released, rate-limit bursts."""

import json
import threading
import time

import pytest
import requests

from simulator import api
from simulator.tests.conftest import graph_call, live
from simulator.tests.test_batch import post_batch

pytestmark = live

AD_1 = api.asset_id_for("ad_account", 1, 1)


def wait_for(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out waiting for {what}")
        time.sleep(0.05)  # polling interval, not a timing assumption


def test_an_edge_failure_is_an_html_502_without_graphs_headers_and_is_not_a_call(meta, http):
    token = api.issue_token()
    api.set_faults(edge_error_rate=1.0)
    before = api.call_count()

    response = graph_call(meta, http, "me", token)

    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "502 Bad Gateway" in response.text
    with pytest.raises(ValueError):
        response.json()
    assert "x-fb-trace-id" not in response.headers and "X-App-Usage" not in response.headers
    assert api.call_count() == before


def test_an_edge_asked_to_say_when_answers_503_with_retry_after(meta, http):
    token = api.issue_token()
    api.set_faults(edge_error_rate=1.0, edge_retry_after=30)

    response = post_batch(meta, http, token, [{"method": "GET", "relative_url": "me"}])

    assert (response.status_code, response.headers["Retry-After"]) == (503, "30")
    assert "503 Service Unavailable" in response.text


def test_edge_failures_follow_the_seed(meta, http):
    token = api.issue_token()

    def run():
        api.set_faults(edge_error_rate=0.5, seed=3)
        return [graph_call(meta, http, "me", token).status_code for _ in range(10)]

    first = run()
    assert first == run() and set(first) == {200, 502}


def test_a_hung_batch_is_held_until_released_and_then_answered(meta, http):
    token = api.issue_token()
    api.hang_requests(1, skip=1)
    items = [{"method": "GET", "relative_url": "me?fields=id"}]
    assert post_batch(meta, http, token, items).status_code == 200  # the one let through
    assert graph_call(meta, http, "me", token).status_code == 200  # not a batch: never held
    answers = []
    caller = threading.Thread(target=lambda: answers.append(post_batch(meta, http_session(), token, items)))
    caller.start()

    wait_for(lambda: api.hanging_requests() == 1, "the batch to be held")
    assert answers == []
    api.release_hangs()
    caller.join(timeout=30)

    assert answers[0].status_code == 200 and json.loads(answers[0].json()[0]["body"])["id"]
    assert api.hanging_requests() == 0
    assert post_batch(meta, http, token, items).status_code == 200  # one hang only


def http_session() -> requests.Session:
    return requests.Session()


def test_a_hang_that_is_never_released_ends_after_its_time(meta, http):
    token = api.issue_token()
    api.hang_requests(1, seconds=0.2, batches_only=False)
    assert graph_call(meta, http, "me", token).status_code == 200
    assert api.hanging_requests() == 0


def test_a_rate_limit_burst_throttles_the_next_requests_whole_then_ends(meta, http):
    token = api.issue_token()
    api.rate_limit_burst(2, regain_minutes=3)
    items = [{"method": "GET", "relative_url": "me"}, {"method": "GET", "relative_url": f"act_{AD_1}"}]

    throttled = post_batch(meta, http, token, items).json()
    single = graph_call(meta, http, f"act_{AD_1}", token)
    after = graph_call(meta, http, "me", token)

    assert [json.loads(item["body"])["error"]["code"] for item in throttled] == [17, 80004]
    ad_headers = {h["name"]: h["value"] for h in throttled[1]["headers"]}
    usage = json.loads(ad_headers["X-Business-Use-Case-Usage"])["9100000000000001"][0]
    assert (usage["call_count"], usage["estimated_time_to_regain_access"]) == (100, 3)
    assert single.json()["error"]["code"] == 80004
    assert json.loads(single.headers["X-App-Usage"])["call_count"] == 100
    assert after.status_code == 200


def test_setting_faults_ends_a_burst_and_releases_hangs(meta, http):
    token = api.issue_token()
    api.rate_limit_burst(5)
    api.hang_requests(3)
    api.clear_faults()
    assert graph_call(meta, http, "me", token).status_code == 200
    assert post_batch(meta, http, token, [{"method": "GET", "relative_url": "me"}]).status_code == 200
