"""POST /api/v1/usage through a live server: idempotent per service, hour and family; refusals in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.models import Scope
from verification import ledger
from verification.models import ReportedCallHour

from .conftest import assert_error

pytestmark = pytest.mark.django_db(transaction=True)


def hour(hours_ago: int = 1) -> str:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return (now - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def reporter(caller, credential_factory):
    _, secret = credential_factory("Ads sync", [Scope.USAGE_WRITE])
    return caller.with_secret(secret)


def post(reporter, body):
    return reporter.request("POST", "/api/v1/usage", json=body)


def test_a_report_sent_twice_counts_once(reporter):
    report = {"hours": [{"hour": hour(), "family": "marketing", "calls": 120, "errors": 3},
                        {"hour": hour(), "family": "graph", "calls": 40, "errors": 0}]}  # fmt: skip
    first = post(reporter, report)
    assert first.status_code == 200 and first.json() == {"accepted": 2, "new": 2, "replaced": 0}
    again = post(reporter, report)
    assert again.json() == {"accepted": 2, "new": 0, "replaced": 2}
    assert ledger.totals_in_window("marketing", 1) == (120, 3)
    assert ledger.totals_in_window("graph", 1) == (40, 0)
    assert set(ReportedCallHour.objects.values_list("service", flat=True)) == {"Ads sync"}


def test_a_corrected_report_replaces_the_hour(reporter):
    post(reporter, {"hours": [{"hour": hour(0), "family": "marketing", "calls": 10, "errors": 0}]})
    post(reporter, {"hours": [{"hour": hour(0), "family": "marketing", "calls": 75, "errors": 2}]})
    assert ledger.totals_in_window("marketing", 1) == (75, 2)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        ({"hours": [{"hour": hour(-2), "family": "marketing", "calls": 1, "errors": 0}]}, "future_hour"),
        ({"hours": [{"hour": hour(), "family": "marketing", "calls": -1, "errors": 0}]}, "invalid_count"),
        ({"hours": [{"hour": hour(), "family": "instagram", "calls": 1, "errors": 0}]}, "unknown_family"),
        ({"hours": []}, "invalid_report"),
    ],
)
def test_a_bad_report_is_refused_and_stores_nothing(reporter, body, code):
    if isinstance(body, bytes):
        answer = reporter.request("POST", "/api/v1/usage", data=body, headers={"Content-Type": "application/json"})
    else:
        answer = post(reporter, body)
    assert_error(answer, 400, code)
    assert not ReportedCallHour.objects.exists()


def test_reporting_needs_its_scope(caller, credential_factory):
    _, secret = credential_factory("Proxy only", [Scope.GRAPH_PROXY])
    answer = post(caller.with_secret(secret), {"hours": [{"hour": hour(), "family": "graph", "calls": 1, "errors": 0}]})
    assert_error(answer, 403, "insufficient_scope")
    assert not ReportedCallHour.objects.exists()
