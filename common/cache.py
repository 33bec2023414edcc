"""Django's Redis cache, keeping one Redis client per connection pool (D90).

Django's ``RedisCacheClient.get_client()`` builds a new ``redis.Redis`` for every cache call, and
each one fills its table of some 170 response callbacks: about 0.15 ms of CPU per call, on every
API request (rate limits, Meta's throttle, the call ledger). A ``redis.Redis`` only borrows
connections from its pool and is safe to share between threads, so one per pool is kept.
"""

from __future__ import annotations

from django.core.cache.backends import redis as django_redis


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = RedisCacheClient
