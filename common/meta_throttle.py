"""What Meta's usage headers and throttling errors say about the next call, shared by every process.

The Graph client keeps the latest usage of its own calls (``graph.usage``); the API's proxy runs
in many web processes, so what one of them learns ("business X is throttled for 5 minutes")
is kept in the shared cache (Redis in production) where the others read it before they call.
A block is a key per scope that expires when Meta said access comes back:

- ``app``: X-App-Usage at ``API_PROXY_USAGE_STOP_PERCENT`` or more, or error 4 (every call shares it);
- ``business:<id>``: an X-Business-Use-Case-Usage entry at the stop level or with an
  ``estimated_time_to_regain_access``, or a business-use-case error (80000-80014) (D22: one busy
  business does not hold back the others);
- ``ad_account:<id>``: X-Ad-Account-Usage at the stop level (``reset_time_duration``);
- ``token:<id>``: the user- or Page-level errors 17, 32, 613 and the blocks 341, 368.

``blocked(scopes)`` is one cache round trip, none while nothing was blocked since this process last
read those scopes (D93); ``block`` writes only when something is blocked.
If the cache is unreachable nothing is blocked (and it is logged): Meta then says so itself.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence

from django.conf import settings
from django.core.cache import cache

from graph.errors import GraphError
from graph.usage import usage_of

from . import generations

logger = logging.getLogger(__name__)

APP = "app"
APP_CODES = frozenset({4})
TOKEN_CODES = frozenset({17, 32, 613, 341, 368})
BUSINESS_CODES = frozenset(range(80000, 80015))


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def business(business_id: str) -> str:
    return f"business:{business_id}"


def ad_account(account_id: str) -> str:
    return f"ad_account:{account_id}"


def token(token_id: int) -> str:
    return f"token:{token_id}"


def _key(scope: str) -> str:
    # Under the rate limits' prefix: the same family of keys, and each test has its own.
    return f"{settings.RATE_LIMIT_KEY_PREFIX}meta-throttle:{scope}"


# The change marker every block bumps (common.generations), and what this process has read under
# its value: per scope, until when it is blocked (0: it was not).
CHANGED = "meta-throttle"
SEEN_MAX = 10_000
_seen: tuple[str | None, dict[str, float]] = (None, {})


def blocked(scopes: Iterable[str], now: float | None = None, *, generation: str | None = None) -> float | None:
    """Seconds until the last of these scopes is free again, or None when none is blocked.

    ``generation``: the value of the marker ``CHANGED`` read with this request's rate limits (D93).
    Under an unchanged value, what this process read of a scope still holds (blocks end on their
    own, by time): only scopes not read yet cost a round trip. Without one, every scope is read.
    """
    global _seen
    now = time.time() if now is None else now
    scopes = list(scopes)
    seen: dict[str, float] = {}  # without a marker, what this call reads, kept by no one
    if generation is not None:
        kept_generation, seen = _seen  # one tuple: threads of a process swap it whole
        if kept_generation != generation or len(seen) > SEEN_MAX:
            seen = {}
            _seen = (generation, seen)
    keys = {_key(scope): scope for scope in scopes if scope not in seen}
    if keys:
        try:
            found = cache.get_many(list(keys))
        except Exception as exc:  # a throttle must not take the proxy down with the cache
            logger.warning("Meta throttle: cache unreachable, not checked (%s)", type(exc).__name__)
            return None
        seen.update({scope: float(found.get(key, 0.0)) for key, scope in keys.items()})
    wait = max((seen[scope] - now for scope in scopes), default=0.0)
    return wait if wait > 0 else None


def block(blocks: Mapping[str, float], now: float | None = None) -> None:
    """Block each scope for its number of seconds (a longer block already there stays); every process
    reads the blocks again at its next call (the marker)."""
    now = time.time() if now is None else now
    if not blocks:
        return
    try:
        current = cache.get_many([_key(scope) for scope in blocks])
        fresh = {}
        for scope, seconds in blocks.items():
            until = now + seconds
            if float(current.get(_key(scope), 0)) < until:
                fresh[_key(scope)] = until
        for key, until in fresh.items():
            cache.set(key, until, timeout=max(1, math.ceil(until - now)))
    except Exception as exc:
        logger.warning("Meta throttle: cache unreachable, block not kept (%s)", type(exc).__name__)
        return
    if fresh:
        generations.bump(CHANGED)


def pause_seconds() -> float:
    return float(settings.API_PROXY_THROTTLE_PAUSE_SECONDS)


def blocks_from(
    usage_headers: Sequence[Mapping[str, str]],
    errors: Sequence[GraphError],
    *,
    business_id: str | None,
    ad_account_id: str | None,
    token_id: int | None,
) -> dict[str, float]:
    """Which scopes one answer blocks, and for how long (seconds)."""
    stop = settings.API_PROXY_USAGE_STOP_PERCENT
    pause = pause_seconds()
    found: dict[str, float] = {}

    def add(scope: str, seconds: float) -> None:
        found[scope] = max(found.get(scope, 0.0), seconds or pause)

    usage = usage_of(usage_headers)
    if usage.app_percent() >= stop:
        add(APP, 0.0)  # X-App-Usage gives no time to wait: the default pause
    for business_key in usage.business:
        regain = usage.business_regain_seconds(business_key)
        if regain or usage.business_percent(business_key) >= stop:
            add(business(business_key), regain)
    if ad_account_id and _number(usage.ad_account.get("acc_id_util_pct")) >= stop:
        add(ad_account(ad_account_id), _number(usage.ad_account.get("reset_time_duration")))
    for error in errors:
        wait = getattr(error, "retry_after", None) or 0.0
        if error.code in APP_CODES:
            add(APP, wait)
        elif error.code in BUSINESS_CODES and business_id:
            add(business(business_id), wait)
        elif error.code in TOKEN_CODES and token_id is not None:
            add(token(token_id), wait)
    return found
