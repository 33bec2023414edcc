"""Upkeep figures: the 15-day rolling window (days without calls count as zero), both rules, the projection."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError

from verification import ledger
from verification.models import UpkeepRule
from verification.upkeep import active_rule, upkeep_figures

NOW = datetime(2026, 11, 23, 14, 35, tzinfo=UTC)
pytestmark = pytest.mark.django_db


def calls_on(days_ago: int, calls: int, errors: int = 0):
    ledger.add_calls("marketing", calls=calls, errors=errors, at=NOW.replace(hour=12) - timedelta(days=days_ago))


@pytest.fixture
def meta_2026():
    return UpkeepRule.objects.get(is_active=True)


@pytest.fixture
def seed_rule():
    return UpkeepRule.objects.get(min_calls=1500)


def test_meta_2026_rule_is_in_force_by_default_and_the_seed_rule_is_available(meta_2026, seed_rule):
    assert active_rule() == meta_2026
    assert meta_2026.describe() == "≥ 500 calls in 15 days, error rate < 15% over the last 500 calls"
    assert seed_rule.describe() == "≥ 1500 calls in 15 days, error rate < 10% over 15 days"


def test_the_window_holds_fifteen_days_and_days_without_calls_are_zeros(seed_rule):
    for days_ago in (0, 2, 4, 6, 8, 10, 12, 14):
        calls_on(days_ago, 200, 10)
    calls_on(20, 5000)  # outside the window
    ledger.add_calls("graph", calls=9999, at=NOW)  # not Marketing API
    figures = upkeep_figures(seed_rule, NOW, projection_days=7)
    assert figures.calls == 1600
    assert len(figures.daily) == 15
    assert (figures.daily[0][0], figures.daily[-1][0]) == (date(2026, 11, 9), date(2026, 11, 23))
    assert [calls for _, calls, _ in figures.daily] == [200, 0] * 7 + [200]
    assert figures.error_rate == pytest.approx(5.0)
    assert figures.calls_ok and figures.errors_ok


def test_the_same_calls_can_meet_one_rule_and_miss_the_other(meta_2026, seed_rule):
    for days_ago in range(15):
        calls_on(days_ago, 60, 7)  # 900 calls, 11.7% errors
    assert not upkeep_figures(meta_2026, NOW).at_risk
    seed = upkeep_figures(seed_rule, NOW)
    assert not seed.calls_ok and not seed.errors_ok
    assert [p.split(" ")[0] for p in seed.problems()] == ["900", "Error"]


def test_the_error_rate_over_the_last_n_calls_ignores_older_errors(meta_2026):
    calls_on(10, 1000, 900)  # a bad day, long ago in call terms
    calls_on(0, 500, 10)
    figures = upkeep_figures(meta_2026, NOW)
    assert figures.error_rate == pytest.approx(2.0)
    assert figures.errors_ok


def test_an_error_rate_at_the_maximum_is_not_below_it(meta_2026):
    calls_on(0, 600, 90)  # exactly 15%
    assert not upkeep_figures(meta_2026, NOW).errors_ok


def test_with_no_calls_the_minimum_is_missed_and_the_error_rate_is_unknown(meta_2026):
    figures = upkeep_figures(meta_2026, NOW)
    assert figures.calls == 0 and figures.error_rate is None
    assert figures.calls_at_risk and figures.errors_ok


def test_the_projection_warns_when_recent_days_are_quiet(meta_2026):
    for days_ago in range(8, 15):
        calls_on(days_ago, 100)  # 700 calls, all more than a week ago
    figures = upkeep_figures(meta_2026, NOW, projection_days=7)
    assert figures.calls_ok
    assert figures.daily_rate == 0
    assert figures.projected_calls == 0  # in 7 days every one of them has left the window
    assert not figures.projection_ok and figures.at_risk
    assert "in 7 days" in figures.problems()[0]


def test_the_projection_holds_at_a_steady_rate(meta_2026):
    for days_ago in range(15):
        calls_on(days_ago, 40)  # 600 calls, 40 a day
    figures = upkeep_figures(meta_2026, NOW, projection_days=7)
    assert figures.daily_rate == pytest.approx(40)
    assert figures.projected_calls == pytest.approx(600, abs=40)
    assert not figures.at_risk


def test_a_rule_needs_the_size_of_its_error_window(db):
    with pytest.raises(IntegrityError):
        UpkeepRule.objects.create(name="x", min_calls=1, max_error_rate=Decimal(1), error_window="calls")
