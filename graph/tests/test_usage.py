"""Usage headers are kept so callers can slow down before Meta refuses."""

from __future__ import annotations

import json

from graph.tests.fakes import FakeMeta, Reply, make_client
from graph.usage import Usage, UsageTracker


def test_the_client_exposes_the_latest_usage_of_every_header():
    headers = {
        "X-App-Usage": json.dumps({"call_count": 12, "total_time": 30, "total_cputime": 5}),
        "X-Ad-Account-Usage": json.dumps({"acc_id_util_pct": 9.5, "reset_time_duration": 60}),
        "X-Business-Use-Case-Usage": json.dumps(
            {"555": [{"type": "pages", "call_count": 88, "total_time": 4, "estimated_time_to_regain_access": 0}]}
        ),
    }
    client, _ = make_client(FakeMeta([Reply(200, {"id": "1"}, headers)]))

    client.get_me("EAAGtoken")

    usage = client.usage
    assert usage.app["call_count"] == 12
    assert usage.ad_account["acc_id_util_pct"] == 9.5
    assert usage.business_percent("555") == 88
    assert usage.max_percent() == 88
    assert usage.regain_access_seconds() == 0


def test_usage_starts_empty_and_ignores_malformed_headers():
    tracker = UsageTracker()
    tracker.update({"X-App-Usage": "not json", "X-Business-Use-Case-Usage": "[1, 2]"})

    assert tracker.snapshot() == Usage()
    assert tracker.snapshot().max_percent() == 0


def test_business_usage_is_kept_per_business():
    tracker = UsageTracker()
    tracker.update({"X-Business-Use-Case-Usage": json.dumps({"1": [{"call_count": 50}]})})
    second = {"2": [{"call_count": 70, "estimated_time_to_regain_access": 3}]}
    tracker.update({"X-Business-Use-Case-Usage": json.dumps(second)})

    usage = tracker.snapshot()
    assert usage.business_percent("1") == 50
    assert usage.business_percent("2") == 70
    assert usage.regain_access_seconds() == 180


def test_a_snapshot_does_not_change_when_new_headers_arrive():
    tracker = UsageTracker()
    tracker.update({"X-App-Usage": json.dumps({"call_count": 1})})
    before = tracker.snapshot()

    tracker.update({"X-App-Usage": json.dumps({"call_count": 99})})

    assert before.app["call_count"] == 1


def test_the_app_share_and_each_business_wait_are_read_apart():
    tracker = UsageTracker()
    tracker.update(
        {
            "X-App-Usage": json.dumps({"call_count": 20, "total_time": 35, "total_cputime": 5}),
            "X-Business-Use-Case-Usage": json.dumps(
                {"1": [{"call_count": 100, "estimated_time_to_regain_access": 30}], "2": [{"call_count": 10}]}
            ),
        }
    )

    usage = tracker.snapshot()
    assert usage.app_percent() == 35  # one busy business is not the app's budget
    assert usage.max_percent() == 100
    assert usage.business_regain_seconds("1") == 1800
    assert usage.business_regain_seconds("2") == 0
    assert usage.business_regain_seconds("3") == 0
