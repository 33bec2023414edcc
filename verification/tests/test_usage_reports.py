"""Usage reports (calls made without the proxy): refusals, one row per service/hour/family, both sources counted."""

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from verification import ledger
from verification.models import ReportedCallHour, UpkeepRule
from verification.upkeep import upkeep_figures
from verification.usage_reports import ReportRefused, parse_report, store_report

NOW = datetime(2026, 11, 23, 14, 35, tzinfo=UTC)
HOUR = "2026-11-23T13:00:00Z"
pytestmark = pytest.mark.django_db


def report(*rows) -> bytes:
    return json.dumps({"hours": list(rows)}).encode()


def row(hour=HOUR, family="marketing", calls=100, errors=5) -> dict:
    return {"hour": hour, "family": family, "calls": calls, "errors": errors}


def refusal(raw: bytes) -> ReportRefused:
    with pytest.raises(ReportRefused) as caught:
        parse_report(raw, NOW)
    return caught.value


def test_a_report_is_read_into_hours_in_utc():
    rows = parse_report(report(row(), row(hour="2026-11-23T15:00:00+02:00", family="graph", calls=7, errors=0)), NOW)
    assert [(r.hour, r.family, r.calls, r.errors) for r in rows] == [
        (datetime(2026, 11, 23, 13, tzinfo=UTC), "marketing", 100, 5),
        (datetime(2026, 11, 23, 13, tzinfo=UTC), "graph", 7, 0),
    ]


def test_the_running_hour_may_be_reported():
    assert parse_report(report(row(hour="2026-11-23T14:00:00Z")), NOW)[0].hour == datetime(2026, 11, 23, 14, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (b"{not json", "invalid_json", "not JSON"),
        (b'{"hours": []}', "invalid_report", "at least one hour"),
        (b"[1, 2]", "invalid_report", "at least one hour"),
        (report(row(hour="2026-11-23T15:00:00Z")), "future_hour", "has not started yet"),
        (report(row(hour="2026-11-23T13:30:00Z")), "invalid_hour", "start of an hour"),
        (report(row(hour="2026-11-23T13:00:00")), "invalid_hour", "time zone"),
        (report(row(hour="yesterday")), "invalid_hour", "such as 2026-12-02T05:00:00Z"),
        (report(row(hour="2026-09-01T00:00:00Z")), "hour_too_old", "more than 30 days ago"),
        (report(row(calls=-1)), "invalid_count", "calls cannot be negative"),
        (report(row(errors=-3)), "invalid_count", "errors cannot be negative"),
        (report(row(calls="12")), "invalid_count", "whole number"),
        (report(row(calls=True)), "invalid_count", "whole number"),
        (report(row(calls=3, errors=4)), "invalid_count", "more than the 3 calls"),
        (report(row(family="ads")), "unknown_family", "family must be one of graph, marketing"),
        (report(row(), row()), "duplicate_hour", "in this report twice"),
        (report({**row(), "service": "x"}), "invalid_report", "unknown field service"),
    ],
)
def test_a_report_that_cannot_be_right_is_refused_with_a_sentence(raw, code, words):
    error = refusal(raw)
    assert error.code == code
    assert words in error.message


def test_the_row_at_fault_is_named():
    assert refusal(report(row(), row(hour="2026-11-23T12:00:00Z", calls=-1))).message.startswith("hours[1]: ")


def test_a_report_sent_twice_counts_once():
    rows = parse_report(report(row()), NOW)
    assert store_report("publisher", rows, NOW).new == 1
    again = store_report("publisher", rows, NOW)
    assert (again.new, again.replaced) == (0, 1)
    assert list(ReportedCallHour.objects.values_list("calls", "errors")) == [(100, 5)]
    assert ledger.totals_in_window("marketing", 1, NOW) == (100, 5)


def test_a_later_report_of_the_same_hour_replaces_the_earlier_one():
    store_report("publisher", parse_report(report(row(calls=40, errors=1)), NOW), NOW)
    store_report("publisher", parse_report(report(row(calls=100, errors=5)), NOW), NOW + timedelta(minutes=20))
    stored = ReportedCallHour.objects.get()
    assert (stored.calls, stored.errors) == (100, 5)
    assert stored.reported_at > stored.first_reported_at


def test_services_and_families_are_counted_apart():
    store_report("publisher", parse_report(report(row(), row(family="graph", calls=9, errors=0)), NOW), NOW)
    store_report("ads-sync", parse_report(report(row(calls=50, errors=0)), NOW), NOW)
    assert ledger.totals_in_window("marketing", 1, NOW) == (150, 5)
    assert ledger.totals_in_window("graph", 1, NOW) == (9, 0)
    assert ledger.reported_by_service("marketing", 15, NOW) == [("publisher", 100, 5), ("ads-sync", 50, 0)]


def test_the_ledger_adds_reported_hours_to_its_own_and_can_leave_them_out():
    ledger.add_calls("marketing", calls=30, errors=3, at=NOW - timedelta(hours=1))
    store_report("publisher", parse_report(report(row()), NOW), NOW)
    assert ledger.totals_in_window("marketing", 1, NOW) == (130, 8)
    assert ledger.totals_in_window("marketing", 1, NOW, reported=False) == (30, 3)
    assert ledger.daily_totals("marketing", NOW.date(), NOW.date()) == {NOW.date(): (130, 8)}
    assert ledger.last_calls("marketing", 500, NOW) == (130, 8)


def test_the_upkeep_rule_counts_both_sources():
    rule = UpkeepRule.objects.get(min_calls=1500)  # the seed's 1,500 calls and 10% errors over 15 days
    for days_ago in range(10):
        ledger.add_calls("marketing", calls=80, errors=0, at=NOW - timedelta(days=days_ago, hours=1))
    assert upkeep_figures(rule, NOW).calls_at_risk  # 800 of the portal's own
    hours = [
        row(hour=(NOW - timedelta(days=d)).strftime("%Y-%m-%dT10:00:00Z"), calls=100, errors=20) for d in range(1, 8)
    ]
    store_report("publisher", parse_report(report(*hours), NOW), NOW)
    figures = upkeep_figures(rule, NOW)
    assert (figures.calls, figures.portal_calls, figures.reported_calls) == (1500, 800, 700)
    assert figures.error_rate == pytest.approx(100 * 140 / 1500)  # 9.3%: below 10%
    assert figures.calls_ok and figures.errors_ok


def test_the_dashboard_shows_both_sources(client, django_user_model):
    from testsupport.staff import sign_in

    user = django_user_model.objects.create_user("admin", "admin@provider.test", is_staff=True, is_superuser=True)
    sign_in(client, user)
    with time_machine.travel(NOW, tick=False):
        ledger.add_calls("marketing", calls=320, errors=4, at=NOW)
        store_report("publisher", parse_report(report(row(calls=210, errors=6)), NOW), NOW)
        page = client.get("/admin/dashboard/").content.decode()
    assert 'Marketing API calls, last 15 days</th><td class="risk-number">530</td>' in page
    cells = '</th><td class="risk-number">{}</td><td>{} errors'
    assert "made by the portal (its checks and the API's proxy)" + cells.format(320, 4) in page
    assert "reported by services (calls made without the proxy)" + cells.format(210, 6) in page
    assert "<tr><td>publisher</td><td>210</td><td>6</td></tr>" in page
