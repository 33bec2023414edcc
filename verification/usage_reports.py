"""Usage reports: calls a service of the provider made to Meta without the proxy, counted for the upkeep rule.

A service sends per-hour counts of calls and errors per API family (``POST /api/v1/usage``)::

    {"hours": [{"hour": "2026-12-02T05:00:00Z", "family": "marketing", "calls": 120, "errors": 3}, ...]}

Each (service, hour, family) is one ``ReportedCallHour`` row; a report of an hour already
reported *replaces* it (D58). So a report sent twice counts once, a corrected report fixes the
figures, and a service may report the running hour as often as it likes, each time with the
hour's total so far. Calls made through the proxy are counted by the portal itself and must not
be reported again.

``parse_report`` refuses what cannot be right (a clear message per problem, nothing stored);
``store_report`` writes a report in one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .ledger import hour_of
from .models import ApiCallHour, ReportedCallHour

FAMILIES = tuple(ApiCallHour.Api.values)  # "graph", "marketing": the ledger's APIs
MAX_ROWS = 1000  # 41 days of both families, hourly
MAX_COUNT = 10**9  # calls in one hour: far above any budget Meta grants


class ReportRefused(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ReportedHour:
    hour: datetime
    family: str
    calls: int
    errors: int


@dataclass(frozen=True)
class StoredReport:
    accepted: int
    new: int
    replaced: int


def _count(row: dict, name: str, where: str) -> int:
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReportRefused("invalid_count", f"{where}: {name} must be a whole number, not {json.dumps(value)[:40]}.")
    if value < 0:
        raise ReportRefused("invalid_count", f"{where}: {name} cannot be negative ({value}).")
    if value > MAX_COUNT:
        raise ReportRefused("invalid_count", f"{where}: {name} is more than {MAX_COUNT:,} calls in an hour.")
    return value


def _hour(row: dict, where: str, now: datetime) -> datetime:
    raw = row.get("hour")
    moment = parse_datetime(raw) if isinstance(raw, str) else None
    if moment is None:
        raise ReportRefused(
            "invalid_hour",
            f"{where}: hour must be a date and time such as 2026-12-02T05:00:00Z, not {json.dumps(raw)[:40]}.",
        )
    if timezone.is_naive(moment):
        raise ReportRefused("invalid_hour", f"{where}: give the hour's time zone (2026-12-02T05:00:00Z is UTC).")
    if (moment.minute, moment.second, moment.microsecond) != (0, 0, 0):
        raise ReportRefused("invalid_hour", f"{where}: hour must be the start of an hour (minutes and seconds zero).")
    moment = moment.astimezone(UTC)
    if moment > hour_of(now):
        raise ReportRefused("future_hour", f"{where}: {moment:%Y-%m-%dT%H:00Z} has not started yet.")
    max_age = settings.VERIFICATION_USAGE_REPORT_MAX_AGE_DAYS
    if moment < hour_of(now) - timedelta(days=max_age):
        raise ReportRefused("hour_too_old", f"{where}: {moment:%Y-%m-%dT%H:00Z} is more than {max_age} days ago.")
    return moment


def parse_report(raw: bytes, now: datetime | None = None) -> list[ReportedHour]:
    """A report's rows, or ``ReportRefused`` naming the first problem (and the row it is in)."""
    now = now or timezone.now()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ReportRefused("invalid_json", "The body is not JSON.") from None
    rows = body.get("hours") if isinstance(body, dict) else None
    if not isinstance(rows, list) or not rows:
        raise ReportRefused(
            "invalid_report", 'Send {"hours": [{"hour", "family", "calls", "errors"}, ...]} with at least one hour.'
        )
    if len(rows) > MAX_ROWS:
        raise ReportRefused("invalid_report", f"At most {MAX_ROWS} hours per report ({len(rows)} sent).")
    parsed: dict[tuple[datetime, str], ReportedHour] = {}
    for index, row in enumerate(rows):
        where = f"hours[{index}]"
        if not isinstance(row, dict):
            raise ReportRefused("invalid_report", f"{where} must be an object.")
        unknown = sorted(set(row) - {"hour", "family", "calls", "errors"})
        if unknown:
            raise ReportRefused("invalid_report", f"{where}: unknown field {', '.join(unknown)}.")
        family = row.get("family")
        if family not in FAMILIES:
            raise ReportRefused(
                "unknown_family",
                f"{where}: family must be one of {', '.join(FAMILIES)}, not {json.dumps(family)[:40]}.",
            )
        hour = _hour(row, where, now)
        calls, errors = _count(row, "calls", where), _count(row, "errors", where)
        if errors > calls:
            raise ReportRefused("invalid_count", f"{where}: {errors} errors is more than the {calls} calls.")
        if (hour, family) in parsed:
            raise ReportRefused("duplicate_hour", f"{where}: {hour:%Y-%m-%dT%H:00Z} {family} is in this report twice.")
        parsed[hour, family] = ReportedHour(hour, family, calls, errors)
    return list(parsed.values())


def store_report(service: str, rows: list[ReportedHour], now: datetime | None = None) -> StoredReport:
    """Write the rows for ``service``, each replacing what it reported before for that hour and family."""
    now = now or timezone.now()
    keys = {(row.hour, row.family) for row in rows}
    with transaction.atomic():
        known = {
            (hour, api)
            for hour, api in ReportedCallHour.objects.filter(
                service=service, hour__in={hour for hour, _ in keys}
            ).values_list("hour", "api")
            if (hour, api) in keys
        }
        ReportedCallHour.objects.bulk_create(
            [
                ReportedCallHour(
                    service=service, hour=row.hour, api=row.family, calls=row.calls, errors=row.errors,
                    first_reported_at=now, reported_at=now,
                )
                for row in sorted(rows, key=lambda r: (r.hour, r.family))  # one lock order
            ],
            update_conflicts=True,
            unique_fields=["service", "hour", "api"],
            update_fields=["calls", "errors", "reported_at"],
        )  # fmt: skip
    return StoredReport(accepted=len(rows), new=len(rows) - len(known), replaced=len(known))
