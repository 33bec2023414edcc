"""One rate-limiting mechanism for every public endpoint: per client IP, or per credential key.

Rules are named in settings (``RATE_LIMITS``: ``{"connect-start": "20/m", ...}``), so an operator
tunes them from the environment. A rule counts requests in fixed windows in the default cache
(Redis in production, shared by every web process). Over the limit the caller gets a 429 with
``Retry-After``: the branded page for people, ``{"error": {"code": "rate_limited", ...}}`` for
Meta's callbacks and the API (``common.responses.wants_json``).

Use it as a decorator on a view::

    @rate_limit("connect-start", methods=["POST"])
    def start(request): ...

or, where the key is only known inside the view (an API credential once it is authenticated)::

    refused = check_rate_limit(request, "api", key=f"credential:{credential.pk}")
    if refused:
        return refused

If the cache is unreachable the request is let through (and logged): a limit must not take
the portal down with Redis.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext as _

from . import generations as generations_module
from .logs import client_ip
from .responses import error_response

logger = logging.getLogger(__name__)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """'20/m', '100/h', '5/10s' (five per ten seconds)."""
        match = _RATE_RE.match(str(text))
        if not match:
            raise ValueError(f"A rate is '<count>/<unit>' with unit s, m, h or d (got {text!r}).")
        count, multiple, unit = match.groups()
        return cls(int(count), int(multiple or 1) * _UNITS[unit])


def rule_rate(rule: str) -> Rate:
    try:
        return _parsed(settings.RATE_LIMITS[rule])
    except KeyError:
        raise ValueError(f"No rate limit named {rule!r} in RATE_LIMITS.")


@functools.lru_cache(maxsize=64)
def _parsed(text: str) -> Rate:  # asked on every API request; the settings hold a handful of texts
    return Rate.parse(text)


def hit(rule: str, key: str, rate: Rate, now: float | None = None) -> int | None:
    """Count one request of ``key`` under ``rule``; seconds to wait if it is over the limit, else None."""
    return hit_many([(rule, key, rate)], now)[0]


def hit_many(hits: list[tuple[str, str, Rate]], now: float | None = None) -> list[int | None]:
    """Count one request under each ``(rule, key, rate)`` at once (one Redis round trip for them all);
    per hit, the seconds to wait if it is over its limit, else None."""
    return count_and_read(hits, (), now)[0]


def count_and_read(
    hits: list[tuple[str, str, Rate]], generations: tuple[str, ...] = (), now: float | None = None
) -> tuple[list[int | None], dict[str, str | None]]:
    """``hit_many``, and in the same round trip the values of the change markers ``generations``
    (``common.generations``): each is None where there is no shared cache or it failed."""
    if not hits and not generations:
        return [], {}
    now = time.time() if now is None else now
    windows, cache_keys = [], []
    for rule, key, rate in hits:
        window = int(now // rate.seconds)
        digest = hashlib.sha256(key.encode()).hexdigest()[:32]  # keys may hold addresses or credentials
        windows.append(window)
        cache_keys.append((f"{settings.RATE_LIMIT_KEY_PREFIX}{rule}:{digest}:{window}", rate.seconds + 1))
    markers: dict[str, str | None] = dict.fromkeys(generations)
    try:
        counts, values = _count(cache_keys, generations)
        markers.update(zip(generations, values, strict=True))
    except Exception as error:  # any cache failure lets the requests through
        logger.warning("Rate limits %s not applied: the cache failed (%s)", ", ".join(rule for rule, _, _ in hits),
                       error.__class__.__name__)
        return [None] * len(hits), markers
    waits = [None if count <= rate.count else max(1, math.ceil((window + 1) * rate.seconds - now))
             for count, window, (_, _, rate) in zip(counts, windows, hits, strict=True)]
    return waits, markers


def _count(cache_keys: list[tuple[str, int]], generations: tuple[str, ...]) -> tuple[list[int], list]:
    """Add one to each window's counter and return them, with the markers' values: one round trip on
    Redis; elsewhere two or three a key, and no markers (nothing there is shared between processes)."""
    backend = generations_module.shared_backend()
    if backend is None:
        return [_count_one(cache_key, timeout) for cache_key, timeout in cache_keys], [None] * len(generations)
    # One script for every key: counted and, when new, given its expiry, in one command (the
    # cache API's add + incr costs three round trips a key: its incr asks whether the key exists).
    # The counters' keys are digests and rule names: nothing for the cache's key check to warn about.
    keys = [backend.make_key(cache_key) for cache_key, _ in cache_keys]
    keys += [generations_module.cache_key(backend, name) for name in generations]
    client = backend._cache.get_client(keys[0], write=True)
    fresh = generations_module.fresh_value() if generations else None  # used only where Redis lost a marker
    args = [len(cache_keys), *(timeout for _, timeout in cache_keys), *(fresh for _ in generations)]
    found = _count_script(client)(keys=keys, args=args, client=client)
    return found[:len(cache_keys)], [value.decode() if isinstance(value, bytes) else value
                                     for value in found[len(cache_keys):]]


# Counters first (ARGV[1] of them, their expiries after it), then markers: read, or made with the
# fresh value given when Redis has none (lost or never set).
_COUNT = """
local found = {}
local counted = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if i <= counted then
    found[i] = redis.call('INCR', key)
    if found[i] == 1 then redis.call('EXPIRE', key, ARGV[i + 1]) end
  else
    found[i] = redis.call('GET', key)
    if not found[i] then
      found[i] = ARGV[i + 1]
      redis.call('SET', key, found[i])
    end
  end
end
return found
"""


_count_scripts: list = []


def _count_script(client):
    """The counting script, made once per process and run with the caller's client (sent by its hash;
    loaded again if Redis lost it). Not one per client: Django's own Redis cache makes a client per call."""
    if not _count_scripts:
        _count_scripts.append(client.register_script(_COUNT))
    return _count_scripts[0]


def _count_one(cache_key: str, timeout: int) -> int:
    try:
        cache.add(cache_key, 0, timeout=timeout)
        return cache.incr(cache_key)
    except ValueError:  # the key expired between add and incr
        cache.set(cache_key, 1, timeout=timeout)
        return 1


def too_many_requests(request, retry_after: int):
    response = error_response(
        request,
        429,
        "rate_limited",
        _("Too many requests. Please wait %(seconds)s seconds and try again.") % {"seconds": retry_after},
        context={"retry_after": retry_after},
    )
    response["Retry-After"] = str(retry_after)
    return response


def check_rate_limit(request, rule: str, *, key: str | None = None):
    """The 429 response if this request is over ``rule``'s limit, else None. ``key`` defaults to the client IP."""
    if not settings.RATE_LIMITS_ENABLED:
        return None
    retry_after = hit(rule, key or f"ip:{client_ip(request)}", rule_rate(rule))
    if retry_after is None:
        return None
    return refusal(request, rule, retry_after)


def refusal(request, rule: str, retry_after: int):
    """The 429 for a request over ``rule``'s limit (logged)."""
    logger.warning("Rate limit %s reached", rule, extra={"rule": rule, "retry_after": retry_after})
    return too_many_requests(request, retry_after)


def rate_limit(rule: str, *, methods: list[str] | None = None, key=None):
    """Decorate a view: requests (of ``methods``, default all) over ``rule``'s limit get a 429.

    ``key``: a function of the request giving the counting key (default: the client IP).
    """
    rule_rate(rule)  # an unknown rule fails at import, not on the first request

    def decorate(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            if methods is None or request.method in methods:
                refused = check_rate_limit(request, rule, key=key(request) if key else None)
                if refused is not None:
                    return refused
            return view(request, *args, **kwargs)

        return wrapped

    return decorate
