"""The Redis cache keeps one client per pool (common.cache) and still behaves as Django's."""

from __future__ import annotations

from common.cache import RedisCache


def test_one_client_serves_every_call_and_the_cache_still_works(redis_url):
    cache = RedisCache(redis_url, {"KEY_PREFIX": "portal-test-cache"})

    first = cache._cache.get_client("a", write=True)
    assert cache._cache.get_client("b", write=True) is first
    assert cache._cache.get_client("c") is first  # one server: reads and writes share its pool

    cache.set("greeting", {"hello": [1, 2]}, timeout=30)
    assert cache.get("greeting") == {"hello": [1, 2]}
    assert cache.get_many(["greeting", "nothing"]) == {"greeting": {"hello": [1, 2]}}
    cache.delete("greeting")
    assert cache.get("greeting") is None
