"""Injected faults: transient errors, rate limits with their headers, timeouts, reproducible by seed."""

import json

from simulator import api
from simulator.tests.conftest import graph_call, live

pytestmark = live

AD_1 = api.asset_id_for("ad_account", 1, 1)


def test_an_error_fault_is_a_transient_5xx_in_metas_shape(meta, http):
    token = api.issue_token()
    api.set_faults(error_rate=1.0)
    responses = [graph_call(meta, http, "me", token) for _ in range(2)]
    assert {r.status_code for r in responses} == {500, 503}
    for response in responses:
        error = response.json()["error"]
        assert error["is_transient"] is True
        assert error["code"] in (1, 2)


def test_a_rate_limit_fault_on_an_ad_account_is_80004_with_usage_at_100(meta, http):
    token = api.issue_token()
    api.set_faults(rate_limit_rate=1.0)
    response = graph_call(meta, http, f"act_{AD_1}", token)
    error = response.json()["error"]
    assert (error["code"], error["error_subcode"]) == (80004, 2446079)
    assert json.loads(response.headers["X-Ad-Account-Usage"])["acc_id_util_pct"] == 100
    business = json.loads(response.headers["X-Business-Use-Case-Usage"])["9100000000000001"][0]
    assert business["call_count"] == 100
    assert business["estimated_time_to_regain_access"] > 0
    assert json.loads(response.headers["X-App-Usage"])["call_count"] == 100


def test_the_rate_limit_code_can_be_chosen(meta, http):
    token = api.issue_token()
    api.set_faults(rate_limit_rate=1.0, rate_limit_code=613)
    assert graph_call(meta, http, "me", token).json()["error"]["code"] == 613


def test_a_timeout_fault_answers_504_after_the_configured_hang(meta, http):
    token = api.issue_token()
    api.set_faults(timeout_rate=1.0)
    response = graph_call(meta, http, "me", token)
    assert response.status_code == 504
    assert response.json()["error"]["is_transient"] is True


def test_a_seed_replays_the_same_faults(meta, http):
    token = api.issue_token()

    def run():
        api.set_faults(error_rate=0.3, rate_limit_rate=0.3, seed=42)
        return [graph_call(meta, http, "me", token).status_code for _ in range(12)]

    first, second = run(), run()
    assert first == second
    assert len(set(first)) > 1


def test_clearing_faults_restores_normal_service(meta, http):
    token = api.issue_token()
    api.set_faults(error_rate=1.0)
    api.clear_faults()
    assert graph_call(meta, http, "me", token).status_code == 200


def test_request_count_counts_http_requests_served(meta, http):
    token = api.issue_token()
    before = api.request_count()
    for _ in range(3):
        graph_call(meta, http, "me", token)
    assert api.request_count() - before == 3
