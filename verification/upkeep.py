"""Advanced-access upkeep: the ledger's figures against the rule in force, with a projection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.utils import timezone

from . import ledger
from .models import ApiCallHour, UpkeepRule

MARKETING = ApiCallHour.Api.MARKETING
# "The current daily rate" is read over the last week: recent enough to follow a change,
# long enough that one quiet day does not swing it.
RATE_DAYS = 7


@dataclass(frozen=True)
class UpkeepFigures:
    rule: UpkeepRule
    now: datetime
    calls: int  # Marketing API calls in the calls window
    error_window_calls: float
    error_window_errors: float
    daily: list[tuple[date, int, int]]  # (day, calls, errors) for each day of the calls window, oldest first
    daily_rate: float
    projection_days: int
    projected_calls: float  # calls the window will hold in projection_days at the current daily rate
    # The two sources of `calls` (D58): the portal's own calls, the proxy's included, and what
    # services reported for calls made without the proxy, per service (busiest first).
    portal_calls: int = 0
    portal_errors: int = 0
    reported: tuple[tuple[str, int, int], ...] = ()

    @property
    def reported_calls(self) -> int:
        return sum(calls for _, calls, _ in self.reported)

    @property
    def reported_errors(self) -> int:
        return sum(errors for _, _, errors in self.reported)

    @property
    def error_rate(self) -> float | None:
        """Percent; None while there are no calls to judge."""
        if not self.error_window_calls:
            return None
        return 100 * self.error_window_errors / self.error_window_calls

    @property
    def calls_ok(self) -> bool:
        return self.calls >= self.rule.min_calls

    @property
    def errors_ok(self) -> bool:
        return self.error_rate is None or self.error_rate < float(self.rule.max_error_rate)

    @property
    def projection_ok(self) -> bool:
        return self.projected_calls >= self.rule.min_calls

    @property
    def calls_at_risk(self) -> bool:
        return not (self.calls_ok and self.projection_ok)

    @property
    def at_risk(self) -> bool:
        return self.calls_at_risk or not self.errors_ok

    def problems(self) -> list[str]:
        rule = self.rule
        found = []
        if not self.calls_ok:
            found.append(f"{self.calls} Marketing API calls in {rule.calls_window_days} days, below {rule.min_calls}.")
        elif not self.projection_ok:
            found.append(
                f"At the current rate ({self.daily_rate:.0f} a day) the {rule.calls_window_days}-day window will hold "
                f"about {self.projected_calls:.0f} calls in {self.projection_days} days, below {rule.min_calls}."
            )
        if not self.errors_ok:
            found.append(f"Error rate {self.error_rate:.1f}%, not below {rule.max_error_rate.normalize():f}%.")
        return found


def active_rule() -> UpkeepRule | None:
    return UpkeepRule.objects.filter(is_active=True).first()


def upkeep_figures(rule: UpkeepRule, now: datetime | None = None, projection_days: int | None = None) -> UpkeepFigures:
    now = now or timezone.now()
    if projection_days is None:
        projection_days = settings.VERIFICATION_UPKEEP_PROJECTION_DAYS
    window = rule.calls_window_days
    calls, _ = ledger.totals_in_window(MARKETING, window, now)
    portal_calls, portal_errors = ledger.totals_in_window(MARKETING, window, now, reported=False)

    if rule.error_window == UpkeepRule.ErrorWindow.CALLS:
        error_calls, errors = ledger.last_calls(MARKETING, rule.error_window_calls, now)
    else:
        error_calls, errors = ledger.totals_in_window(MARKETING, rule.error_window_days, now)

    rate_days = min(RATE_DAYS, window)
    daily_rate = ledger.totals_in_window(MARKETING, rate_days, now)[0] / rate_days
    # In N days the window keeps its newest (D - N) days and gains N days at the current rate.
    kept_days = window - projection_days
    kept = ledger.totals_in_window(MARKETING, kept_days, now)[0] if kept_days > 0 else 0
    projected = kept + daily_rate * min(projection_days, window)

    today = timezone.localdate(now, timezone=timezone.get_fixed_timezone(0))
    days = ledger.daily_totals(MARKETING, today - timedelta(days=window - 1), today)
    return UpkeepFigures(
        rule=rule,
        now=now,
        calls=calls,
        error_window_calls=error_calls,
        error_window_errors=errors,
        daily=[(day, c, e) for day, (c, e) in sorted(days.items())],
        daily_rate=daily_rate,
        projection_days=projection_days,
        projected_calls=projected,
        portal_calls=portal_calls,
        portal_errors=portal_errors,
        reported=tuple(ledger.reported_by_service(MARKETING, window, now)),
    )
