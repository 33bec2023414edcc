"""The API-call ledger: the Graph hook adds each call to an hourly bucket with one atomic upsert.

See docs/decisions.md (D6): one `INSERT ... ON CONFLICT DO UPDATE SET calls = calls + 1`
per call, never inside the caller's transaction.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from functools import partial

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from graph.hooks import CallRecord

from .models import ApiCallHour

logger = logging.getLogger(__name__)

# PostgreSQL and SQLite (>= 3.24) share the upsert syntax; the counter grows in the database, not in Python.
_UPSERT = (
    "INSERT INTO verification_apicallhour (hour, api, calls, errors) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (hour, api) DO UPDATE SET calls = verification_apicallhour.calls + excluded.calls, "
    "errors = verification_apicallhour.errors + excluded.errors"
)


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def is_error(record: CallRecord) -> bool:
    """Which errors Meta counts is undocumented: every call without a successful response counts."""
    return record.error_code is not None or not 200 <= record.http_status < 400


def add_calls(api: str, calls: int = 1, errors: int = 0, at: datetime | None = None) -> None:
    """Add to the bucket of the hour, atomically, whatever other workers do at the same time."""
    hour = hour_of(at or timezone.now())
    if connection.vendor in ("postgresql", "sqlite"):
        with connection.cursor() as cursor:
            cursor.execute(_UPSERT, [hour, api, calls, errors])
        return
    # Other databases: conditional increment, then create on a miss; a lost creation race retries the increment.
    for _ in range(3):
        if ApiCallHour.objects.filter(hour=hour, api=api).update(calls=F("calls") + calls, errors=F("errors") + errors):
            return
        try:
            with transaction.atomic():
                ApiCallHour.objects.create(hour=hour, api=api, calls=calls, errors=errors)
            return
        except IntegrityError:
            continue
    raise RuntimeError("Could not record the API call after three attempts")


def record_call(record: CallRecord) -> None:
    """The Graph hook. Inside a transaction the count waits for the commit, so the bucket's row
    lock is never held for the length of someone else's transaction (and a failed statement
    cannot poison it)."""
    api = ApiCallHour.Api.MARKETING if record.is_marketing else ApiCallHour.Api.GRAPH
    write = partial(add_calls, api, 1, int(is_error(record)), timezone.now())
    if connection.in_atomic_block:
        transaction.on_commit(write, robust=True)
    else:
        write()


def prune(before: datetime) -> int:
    deleted, _ = ApiCallHour.objects.filter(hour__lt=hour_of(before)).delete()
    return deleted


def window_start(days: float, now: datetime | None = None) -> datetime:
    """First hourly bucket of a window of `days` x 24 buckets ending with the current hour."""
    return hour_of(now or timezone.now()) - timedelta(hours=round(days * 24) - 1)


def totals_in_window(api: str, days: float, now: datetime | None = None) -> tuple[int, int]:
    now = now or timezone.now()
    rows = ApiCallHour.objects.filter(api=api, hour__gte=window_start(days, now), hour__lte=now)
    totals = rows.aggregate(c=Sum("calls"), e=Sum("errors"))
    return totals["c"] or 0, totals["e"] or 0


def last_calls(api: str, n: int, now: datetime | None = None) -> tuple[float, float]:
    """Calls and errors among the last `n` calls, read from the newest hourly buckets.

    The oldest bucket needed is taken in proportion (its errors assumed evenly spread),
    which is exact except inside that one hour.
    """
    now = now or timezone.now()
    calls_total = 0.0
    errors_total = 0.0
    buckets = ApiCallHour.objects.filter(api=api, hour__lte=now, calls__gt=0).order_by("-hour")
    for calls, errors in buckets.values_list("calls", "errors").iterator(chunk_size=200):
        missing = n - calls_total
        if calls >= missing:
            calls_total += missing
            errors_total += errors * missing / calls
            break
        calls_total += calls
        errors_total += errors
    return calls_total, errors_total


def daily_totals(api: str, first_day, last_day) -> dict:
    """{date: (calls, errors)} for each day from first_day to last_day, days without calls as zeros."""
    start = datetime.combine(first_day, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    days = {first_day + timedelta(days=i): [0, 0] for i in range((last_day - first_day).days + 1)}
    for hour, calls, errors in ApiCallHour.objects.filter(api=api, hour__gte=start, hour__lt=end).values_list(
        "hour", "calls", "errors"
    ):
        bucket = days[hour.astimezone(UTC).date()]
        bucket[0] += calls
        bucket[1] += errors
    return {day: (calls, errors) for day, (calls, errors) in days.items()}
