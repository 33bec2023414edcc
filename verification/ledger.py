"""The API-call ledger: Graph calls and errors per hour and API, counted at (almost) no cost per call.

The Graph hook gets the calls of one HTTP response at once (a batch answers up to 50). With
Redis configured (`VERIFICATION_LEDGER_REDIS_URL`, by default `REDIS_URL`) it makes one
pipelined round trip to Redis and no database query; the periodic `flush` moves the counts
into `ApiCallHour`, each exactly once (docs/decisions.md, D16). Without Redis (the demo) it does
one atomic upsert per API touched, after the caller's commit (D6). The readers add the
counts still waiting in Redis to the buckets.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial

import redis
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from graph.hooks import CallRecord

from .models import ApiCallHour, ReportedCallHour

logger = logging.getLogger(__name__)

# PostgreSQL and SQLite (>= 3.24) share the upsert syntax; the counter grows in the database, not in Python.
_UPSERT = (
    "INSERT INTO verification_apicallhour (hour, api, calls, errors) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (hour, api) DO UPDATE SET calls = verification_apicallhour.calls + excluded.calls, "
    "errors = verification_apicallhour.errors + excluded.errors"
)

# Redis: every hook call increments fields of one "pending" hash. A flush RENAMEs it to a
# processing key listed in a set (atomically, so no increment lands between read and delete),
# applies the processing key to the database and DELetes it inside the database transaction:
# only the flusher whose DEL removed the key commits, so two flushers never count it twice.
_CLAIM = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('SADD', KEYS[3], KEYS[2])
end
return redis.call('SMEMBERS', KEYS[3])
"""
# One consistent snapshot of everything not yet in the database.
_SNAPSHOT = """
local keys = redis.call('SMEMBERS', KEYS[2])
table.insert(keys, KEYS[1])
local out = {}
for _, key in ipairs(keys) do
  local fields = redis.call('HGETALL', key)
  for i = 1, #fields do out[#out + 1] = fields[i] end
end
return out
"""

Counts = dict[tuple[datetime, str], list[int]]  # (hour, api) -> [calls, errors]


class _ClaimLost(Exception):
    """Another flusher applied this processing key first."""


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def is_error(record: CallRecord) -> bool:
    """Which errors Meta counts is undocumented: every call without a successful response counts."""
    return record.error_code is not None or not 200 <= record.http_status < 400


def add_calls(api: str, calls: int = 1, errors: int = 0, at: datetime | None = None) -> None:
    """Add to the bucket of the hour in the database, atomically, whatever other workers do at the same time."""
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


# --- Redis -------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    # Short timeouts: a Graph call must not wait long on the ledger (on failure the database counts).
    return redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)


def redis_client() -> redis.Redis | None:
    url = settings.VERIFICATION_LEDGER_REDIS_URL
    return _client(url) if url else None


def _keys() -> tuple[str, str]:
    prefix = settings.VERIFICATION_LEDGER_REDIS_PREFIX
    return f"{prefix}pending", f"{prefix}flushing"


def _field(hour: datetime, api: str, what: str) -> str:
    return f"{int(hour.timestamp())}|{api}|{what}"


def _pairs(flat: list[bytes]) -> Iterable[tuple[bytes, bytes]]:
    """[field, value, field, value, ...] (a script's reply) -> (field, value) pairs."""
    items = iter(flat)
    return zip(items, items, strict=True)


def _parse(pairs: Iterable[tuple[bytes, bytes]]) -> Counts:
    """Hash fields -> {(hour, api): [calls, errors]}, summed."""
    counts: Counts = defaultdict(lambda: [0, 0])
    for field, value in pairs:
        stamp, api, what = field.decode().split("|")
        hour = datetime.fromtimestamp(int(stamp), tz=UTC)
        counts[hour, api][0 if what == "c" else 1] += int(value)
    return dict(counts)


def _increment(client: redis.Redis, counts: Counts) -> None:
    pending, _ = _keys()
    pipe = client.pipeline(transaction=False)
    for (hour, api), (calls, errors) in counts.items():
        pipe.hincrby(pending, _field(hour, api, "c"), calls)
        if errors:
            pipe.hincrby(pending, _field(hour, api, "e"), errors)
    pipe.expire(pending, settings.VERIFICATION_LEDGER_REDIS_TTL_SECONDS)
    pipe.execute()


def pending_counts() -> Counts:
    """Counts in Redis not yet moved into the database ({} without Redis or when it is unreachable)."""
    client = redis_client()
    if client is None:
        return {}
    pending, flushing = _keys()
    try:
        return _parse(_pairs(client.eval(_SNAPSHOT, 2, pending, flushing)))
    except redis.RedisError as exc:
        logger.warning("Call ledger: Redis unreachable, figures leave out unflushed counts (%s)", type(exc).__name__)
        return {}


def _apply(client: redis.Redis, key: bytes) -> Counts:
    """Add one processing key's counts to the database and delete it, exactly once."""
    counts = _parse(client.hgetall(key).items())
    _, flushing = _keys()
    if not counts:  # already applied by another flusher (or by one that died before SREM)
        client.srem(flushing, key)
        return {}
    deleted = False
    try:
        with transaction.atomic():
            for (hour, api), (calls, errors) in sorted(counts.items()):  # one lock order: no deadlock
                add_calls(api, calls, errors, hour)
            deleted = bool(client.delete(key))
            if not deleted:
                raise _ClaimLost
    except _ClaimLost:
        return {}
    except Exception:
        if deleted:  # our DEL went through but the commit failed: put the counts back
            _increment(client, counts)
            client.srem(flushing, key)
        raise
    client.srem(flushing, key)
    return counts


def flush() -> int:
    """Move the counts waiting in Redis into `ApiCallHour`; returns the calls moved.

    Safe to run from several workers at once and after a flusher died: a processing key left
    behind was not applied (its DEL comes before the commit) and the next flush applies it.
    """
    client = redis_client()
    if client is None:
        return 0
    pending, flushing = _keys()
    claimed = f"{settings.VERIFICATION_LEDGER_REDIS_PREFIX}processing:{uuid.uuid4().hex}"
    moved = 0
    for key in client.eval(_CLAIM, 3, pending, claimed, flushing):
        moved += sum(calls for calls, _ in _apply(client, key).values())
    return moved


# --- the hook ----------------------------------------------------------------------------------


def _record_in_database(api: str, calls: int, errors: int, at: datetime) -> None:
    write = partial(add_calls, api, calls, errors, at)
    # Inside a transaction the count waits for the commit, so the bucket's row lock is never
    # held for the length of someone else's transaction (and a failed statement cannot poison it).
    if connection.in_atomic_block:
        transaction.on_commit(write, robust=True)
    else:
        write()


def record_calls(records: Sequence[CallRecord]) -> None:
    """The Graph hook: the calls of one HTTP response (up to 50 in a batch) counted together.

    One pipelined Redis round trip and no database query when Redis is configured;
    otherwise one upsert per API (Graph, Marketing) touched.
    """
    now = timezone.now()
    hour = hour_of(now)
    counts: Counts = defaultdict(lambda: [0, 0])
    for record in records:
        bucket = counts[hour, ApiCallHour.Api.MARKETING if record.is_marketing else ApiCallHour.Api.GRAPH]
        bucket[0] += 1
        bucket[1] += int(is_error(record))
    client = redis_client()
    if client is not None:
        try:
            _increment(client, counts)
            return
        except redis.RedisError as exc:
            # Counted in the database instead: slower, but nothing is lost while Redis is down.
            logger.warning("Call ledger: Redis unreachable, counting in the database (%s)", type(exc).__name__)
    for (_, api), (calls, errors) in counts.items():
        _record_in_database(api, calls, errors, now)


def record_call(record: CallRecord) -> None:
    record_calls([record])


# --- reading -----------------------------------------------------------------------------------


def prune(before: datetime) -> int:
    deleted, _ = ApiCallHour.objects.filter(hour__lt=hour_of(before)).delete()
    return deleted


def window_start(days: float, now: datetime | None = None) -> datetime:
    """First hourly bucket of a window of `days` x 24 buckets ending with the current hour."""
    return hour_of(now or timezone.now()) - timedelta(hours=round(days * 24) - 1)


def _pending_hours(api: str, start: datetime | None, end: datetime) -> dict[datetime, list[int]]:
    return {
        hour: counts
        for (hour, row_api), counts in pending_counts().items()
        if row_api == api and hour <= end and (start is None or hour >= start)
    }


def _reported_hours(api: str, start: datetime | None, end: datetime) -> dict[datetime, list[int]]:
    """What services reported for calls made without the proxy (``ReportedCallHour``), summed per hour."""
    rows = ReportedCallHour.objects.filter(api=api, hour__lte=end)
    if start is not None:
        rows = rows.filter(hour__gte=start)
    summed = rows.values("hour").annotate(c=Sum("calls"), e=Sum("errors")).order_by().values_list("hour", "c", "e")
    return {hour: [calls, errors] for hour, calls, errors in summed}


def _other_hours(api: str, start: datetime | None, end: datetime, reported: bool) -> dict[datetime, list[int]]:
    """Counts beside the database buckets: reported by services (when asked for), then still in Redis."""
    hours = _reported_hours(api, start, end) if reported else {}
    for hour, (calls, errors) in _pending_hours(api, start, end).items():
        bucket = hours.setdefault(hour, [0, 0])
        bucket[0] += calls
        bucket[1] += errors
    return hours


def reported_by_service(api: str, days: float, now: datetime | None = None) -> list[tuple[str, int, int]]:
    """(service, calls, errors) reported for the window, the busiest service first."""
    now = now or timezone.now()
    rows = (
        ReportedCallHour.objects.filter(api=api, hour__gte=window_start(days, now), hour__lte=now)
        .values("service")
        .annotate(c=Sum("calls"), e=Sum("errors"))
        .order_by("-c", "service")
    )
    return [(row["service"], row["c"], row["e"]) for row in rows]


# Each reader queries the database before Redis: a flush deletes its Redis key before its
# commit, so a count can be missed for that instant but never read twice. Every reader counts
# both sources, the portal's own calls (the proxy's included) and what services reported
# (``reported=False``: the portal's alone).


def totals_in_window(api: str, days: float, now: datetime | None = None, *, reported: bool = True) -> tuple[int, int]:
    now = now or timezone.now()
    start = window_start(days, now)
    rows = ApiCallHour.objects.filter(api=api, hour__gte=start, hour__lte=now)
    totals = rows.aggregate(c=Sum("calls"), e=Sum("errors"))
    calls, errors = totals["c"] or 0, totals["e"] or 0
    for pending_calls, pending_errors in _other_hours(api, start, now, reported).values():
        calls += pending_calls
        errors += pending_errors
    return calls, errors


def _newest_first(api: str, now: datetime) -> Iterator[tuple[datetime, int, int]]:
    """Hourly (hour, calls, errors), newest first: database buckets merged with reported and pending counts."""
    rows = iter(
        ApiCallHour.objects.filter(api=api, hour__lte=now, calls__gt=0)
        .order_by("-hour")
        .values_list("hour", "calls", "errors")
        .iterator(chunk_size=200)
    )
    row = next(rows, None)  # the query runs (and takes its snapshot) before Redis is read
    pending = sorted(_other_hours(api, None, now, True).items(), reverse=True)
    while row is not None or pending:
        if row is not None and pending and row[0] == pending[0][0]:
            hour, (calls, errors) = pending.pop(0)
            yield hour, row[1] + calls, row[2] + errors
            row = next(rows, None)
        elif row is not None and (not pending or row[0] > pending[0][0]):
            yield row
            row = next(rows, None)
        else:
            hour, (calls, errors) = pending.pop(0)
            yield hour, calls, errors


def last_calls(api: str, n: int, now: datetime | None = None) -> tuple[float, float]:
    """Calls and errors among the last `n` calls, read from the newest hourly buckets.

    The oldest bucket needed is taken in proportion (its errors assumed evenly spread),
    which is exact except inside that one hour.
    """
    now = now or timezone.now()
    calls_total = 0.0
    errors_total = 0.0
    for _, calls, errors in _newest_first(api, now):
        missing = n - calls_total
        if calls >= missing:
            calls_total += missing
            errors_total += errors * missing / calls
            break
        calls_total += calls
        errors_total += errors
    return calls_total, errors_total


def daily_totals(api: str, first_day, last_day, *, reported: bool = True) -> dict:
    """{date: (calls, errors)} for each day from first_day to last_day, days without calls as zeros."""
    start = datetime.combine(first_day, datetime.min.time(), tzinfo=UTC)
    end = datetime.combine(last_day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    days = {first_day + timedelta(days=i): [0, 0] for i in range((last_day - first_day).days + 1)}
    rows = list(
        ApiCallHour.objects.filter(api=api, hour__gte=start, hour__lt=end).values_list("hour", "calls", "errors")
    )
    pending = _other_hours(api, start, end - timedelta(hours=1), reported)
    for hour, calls, errors in rows + [(hour, c, e) for hour, (c, e) in pending.items()]:
        bucket = days[hour.astimezone(UTC).date()]
        bucket[0] += calls
        bucket[1] += errors
    return {day: (calls, errors) for day, (calls, errors) in days.items()}
