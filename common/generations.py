"""Named markers in the shared cache that say "this changed", so a process may keep what it read.

A process keeps a copy of something read on every request (a service credential, D91) together
with the marker's value it saw. ``bump(name)`` gives the marker a new random value once the
writing transaction has committed, so a reader that sees the new value reads the committed rows.
Readers get the values in the round trip they already make (``common.ratelimit.count_and_read``,
on every API request): keeping the copy valid costs nothing more.

Only a cache every process shares (Redis) has markers: elsewhere (the embedded default's
per-process memory) a bump would reach only its own process, so ``count_and_read`` reports no
value and readers read afresh. A marker lost with Redis comes back as a new random value, never
an old one: copies kept under the old value are then read again.
"""

from __future__ import annotations

import logging
import secrets

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.db import transaction

logger = logging.getLogger(__name__)


def fresh_value() -> str:
    return secrets.token_hex(8)


def shared_backend() -> RedisCache | None:
    backend = caches["default"]
    return backend if isinstance(backend, RedisCache) else None


def cache_key(backend: RedisCache, name: str) -> str:
    """The marker's key in ``backend`` (kept: it is asked for on every API request)."""
    kept = (backend.key_prefix, backend.version, settings.RATE_LIMIT_KEY_PREFIX, name)
    if kept not in _KEYS:
        _KEYS[kept] = backend.make_and_validate_key(f"{settings.RATE_LIMIT_KEY_PREFIX}generation:{name}")
    return _KEYS[kept]


_KEYS: dict[tuple, str] = {}


def bump(name: str, *, using: str | None = None) -> None:
    """Mark ``name`` changed: at once, and again once the current transaction commits.

    The second mark is what makes it safe: a process that reads between the first and the commit
    may keep the old rows under the first value, and the commit's value makes it read again. The
    first serves readers on the writer's own connection (and tests, whose transactions never commit).
    """
    _set(name)
    if transaction.get_connection(using).in_atomic_block:
        transaction.on_commit(lambda: _set(name), using=using)


def _set(name: str) -> None:
    backend = shared_backend()
    if backend is None:
        return
    key = cache_key(backend, name)
    try:
        backend._cache.get_client(key, write=True).set(key, fresh_value())
    except Exception as error:  # copies then live until their own time limit (D91)
        logger.warning("Change marker %s not written: the cache failed (%s)", name, error.__class__.__name__)
