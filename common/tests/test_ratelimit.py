"""One rate-limiting mechanism: per IP or per credential key, 429 with a page or JSON, tunable by name."""

import time
from datetime import UTC, datetime

import pytest
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from common.logs import client_ip
from common.ratelimit import Rate, check_rate_limit, hit, rate_limit


@pytest.fixture
def limits(settings, time_machine):
    """Tighten some rules for a test; the others keep their configured rates.

    The clock starts the test at the beginning of a minute (and runs on): counters are per window,
    so hits that straddled a minute's end would be counted in two windows and the limit never reached.
    """
    time_machine.move_to(datetime.fromtimestamp((time.time() // 60 + 1) * 60, tz=UTC), tick=True)

    def tighten(rules: dict) -> None:
        settings.RATE_LIMITS = {**settings.RATE_LIMITS, **rules}

    return tighten


@pytest.mark.parametrize(
    ("text", "rate"),
    [("20/m", Rate(20, 60)), ("100/h", Rate(100, 3600)), ("5/10s", Rate(5, 10)), (" 3 / d ", Rate(3, 86400))],
)
def test_rates_read_as_count_per_unit(text, rate):
    assert Rate.parse(text) == rate


@pytest.mark.parametrize("text", ["", "20", "20/week", "x/m", "-1/m"])
def test_a_malformed_rate_is_refused_with_the_expected_form(text):
    with pytest.raises(ValueError, match="<count>/<unit>"):
        Rate.parse(text)


def test_an_unknown_rule_fails_when_the_view_is_decorated_not_on_a_request():
    with pytest.raises(ValueError, match="No rate limit named 'nope'"):
        rate_limit("nope")


def test_a_key_is_counted_per_window_and_starts_again_in_the_next():
    rate = Rate(2, 60)
    assert [hit("t", "k", rate, now=120.0) for _ in range(3)] == [None, None, 60]
    assert hit("t", "k", rate, now=150.0) == 30  # still the same window: wait for its end
    assert hit("t", "other", rate, now=150.0) is None  # another key counts alone
    assert hit("t", "k", rate, now=180.0) is None  # the next window


def test_the_third_start_from_one_address_in_a_minute_gets_the_429_page(client, db, limits):
    limits({"connect-start": "2/m", "admin-login": "2/m", "meta-callbacks": "2/m"})
    answers = [client.post("/connect/start/", {"invitation": "1"}) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [400, 400, 429]
    assert int(answers[-1]["Retry-After"]) >= 1
    assert "Please slow down" in answers[-1].content.decode()
    other_address = client.post("/connect/start/", {"invitation": "1"}, REMOTE_ADDR="192.0.2.7")
    assert other_address.status_code == 400


def test_meta_s_callbacks_get_the_429_as_json_with_a_code_and_a_sentence(client, db, limits):
    limits({"meta-callbacks": "1/m"})
    client.post("/meta/deauthorize/", {"signed_request": "x"})
    answer = client.post("/meta/deauthorize/", {"signed_request": "x"})
    assert answer.status_code == 429
    error = answer.json()["error"]
    assert error["code"] == "rate_limited" and "Too many requests" in error["message"]


def test_admin_login_attempts_are_limited_per_address_and_the_form_still_opens(client, db, limits):
    limits({"admin-login": "2/m"})
    posts = [client.post("/admin/login/", {"username": "x", "password": "y"}) for _ in range(3)]
    assert [post.status_code for post in posts] == [200, 200, 429]
    assert client.get("/admin/login/").status_code == 200


def test_an_api_credential_is_counted_on_its_own_key_whatever_the_address(limits):
    limits({"api": "2/m"})
    factory = RequestFactory()
    requests = [factory.get("/api/v1/x", REMOTE_ADDR=f"192.0.2.{n}") for n in range(3)]
    answers = [check_rate_limit(request, "api", key="credential:7") for request in requests]
    assert answers[:2] == [None, None]
    assert answers[2].status_code == 429 and answers[2]["Content-Type"] == "application/json"
    assert check_rate_limit(requests[0], "api", key="credential:8") is None


@override_settings(
    CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}},
)
def test_an_unreachable_cache_lets_requests_through(limits):
    limits({"api": "1/m"})
    request = RequestFactory().get("/")
    assert [check_rate_limit(request, "api") for _ in range(3)] == [None, None, None]


@override_settings(RATE_LIMITS_ENABLED=False)
def test_rate_limits_can_be_turned_off(limits):
    limits({"api": "1/m"})
    request = RequestFactory().get("/")
    assert [check_rate_limit(request, "api") for _ in range(3)] == [None, None, None]


def test_the_decorator_counts_only_the_methods_it_names(rf, limits):
    @rate_limit("admin-login", methods=["POST"])
    def view(request):
        return HttpResponse("ok")

    limits({"admin-login": "1/m"})
    assert [view(rf.get("/")).status_code for _ in range(3)] == [200, 200, 200]
    assert [view(rf.post("/")).status_code for _ in range(2)] == [200, 429]


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.9", "127.0.0.1"),  # no proxy trusted: the header is the client's own words
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # the left entry was written by the client
        (2, "198.51.100.1, 203.0.113.9", "198.51.100.1"),
        (2, "203.0.113.9", "127.0.0.1"),  # fewer entries than proxies: not what our proxies send
    ],
)
def test_the_client_address_is_what_the_trusted_proxies_saw(rf, settings, proxies, forwarded, expected):
    settings.PORTAL_TRUSTED_PROXY_COUNT = proxies
    request = rf.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_several_keys_are_counted_at_once_and_each_window_expires_on_redis(redis_url, settings):
    import uuid

    from django.core.cache import caches

    from common.ratelimit import hit_many

    prefix = f"test-hit-many-{uuid.uuid4().hex}:"
    settings.RATE_LIMIT_KEY_PREFIX = prefix
    two_a_minute, one_an_hour = Rate(2, 60), Rate(1, 3600)
    hits = [("a", "ip:10.0.0.1", two_a_minute), ("b", "secret:x", one_an_hour)]

    assert hit_many(hits, now=120.0) == [None, None]
    assert hit_many(hits, now=121.0) == [None, 3479]  # the hour's one is used up; the minute has room
    assert hit_many(hits, now=122.0) == [58, 3478]

    client = caches["default"]._cache.get_client(write=True)
    ttls = sorted(client.ttl(key) for key in client.keys(f"*{prefix}*"))
    assert len(ttls) == 2 and 0 < ttls[0] <= 61 and 61 < ttls[1] <= 3601


def test_change_markers_come_with_the_counts_and_a_lost_one_comes_back_new(redis_url, settings):
    from django.core.cache import caches

    from common import generations
    from common.ratelimit import count_and_read

    hits = [("a", "ip:10.0.0.1", Rate(5, 60))]
    waits, first = count_and_read(hits, ("things",), now=120.0)
    assert waits == [None] and first["things"]
    assert count_and_read(hits, ("things",), now=121.0)[1] == first  # nothing changed
    assert count_and_read([], ("things",))[1] == first  # read alone, too

    generations.bump("things")
    bumped = count_and_read(hits, ("things",), now=122.0)[1]
    assert bumped["things"] not in (None, first["things"])

    backend = caches["default"]
    backend._cache.get_client(write=True).delete(generations.cache_key(backend, "things"))  # Redis lost it
    lost = count_and_read(hits, ("things",), now=123.0)[1]["things"]
    assert lost not in (None, first["things"], bumped["things"])
    assert count_and_read(hits, ("things",), now=124.0)[1]["things"] == lost


def test_no_change_marker_without_a_shared_cache(settings):
    from common import generations
    from common.ratelimit import count_and_read

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "markers"}}
    generations.bump("things")  # nowhere to write: nothing happens
    assert count_and_read([("a", "ip:10.0.0.1", Rate(5, 60))], ("things",)) == ([None], {"things": None})


@override_settings(
    CACHES={"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}},
)
def test_a_cache_failure_reads_as_no_change_marker():
    from common import generations
    from common.ratelimit import count_and_read

    generations.bump("things")  # logged, not raised
    assert count_and_read([("a", "ip:10.0.0.1", Rate(5, 60))], ("things",)) == ([None], {"things": None})
