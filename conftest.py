"""Fixtures shared by every app's tests.

Services (PostgreSQL, Redis, chromium) are used when configured. Locally a test that
needs one skips when it is unreachable; with PORTAL_REQUIRE_SERVICES=1 (CI) it fails.
"""

from __future__ import annotations

import os
import shutil

import pytest

REQUIRE_SERVICES = os.environ.get("PORTAL_REQUIRE_SERVICES") == "1"


def service_unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"Required service unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("REDIS_URL", "")
    if not url:
        service_unavailable("REDIS_URL is not set")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        service_unavailable(f"Redis at REDIS_URL is not reachable ({exc.__class__.__name__})")
    return url


@pytest.fixture
def postgres_required(settings) -> None:
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        service_unavailable("DATABASE_URL does not point at PostgreSQL")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        service_unavailable("Debian's chromium is not installed (apt-get install chromium)")
    return path


def pytest_configure(config) -> None:
    if REQUIRE_SERVICES:
        url = os.environ.get("DATABASE_URL", "")
        if not url.startswith(("postgres://", "postgresql://")):
            raise pytest.UsageError("PORTAL_REQUIRE_SERVICES=1 needs DATABASE_URL pointing at PostgreSQL.")


# --- Whole-run leak check (graph engineer): no secret in any URL sent, log record or
# request line our test servers received. See graph/leakcheck.py.


def leak_check_secrets() -> list[str]:
    """The app secret, and every token, code and secret the simulator issued during the run."""
    from django.conf import settings

    secrets = [settings.META_APP_SECRET]
    try:
        from simulator.api import issued_secrets
    except ImportError:  # the simulator is not installed (or not written yet)
        return secrets
    return secrets + list(issued_secrets())


@pytest.fixture(scope="session", autouse=True)
def no_secret_leaks():
    from django.core.servers.basehttp import WSGIRequestHandler
    from django.test.testcases import QuietWSGIRequestHandler

    from graph.leakcheck import LeakRecorder

    recorder = LeakRecorder()
    # Meta puts the code in the redirect URI's query string by design (OAuth): decisions.md D12.
    redirect = {"oauth_redirect_paths": ["/connect/callback/"]}
    undo = [
        recorder.install(),
        recorder.record_request_lines(WSGIRequestHandler, **redirect),
        recorder.record_request_lines(QuietWSGIRequestHandler, **redirect),
    ]
    yield recorder
    for step in reversed(undo):
        step()
    leaks = recorder.find_leaks(leak_check_secrets())
    if leaks:
        shown = "\n".join(leaks[:25]) + (f"\n... and {len(leaks) - 25} more" if len(leaks) > 25 else "")
        pytest.fail(f"Secrets leaked into URLs, logs or request lines during the run:\n{shown}", pytrace=False)


@pytest.fixture(autouse=True)
def leak_check_hears_debug(no_secret_leaks):
    """django.setup() (Celery's Django fixup calls it) reconfigures logging; keep DEBUG records coming."""
    no_secret_leaks.hear_debug()


# --- Meta simulator (simulator engineer): a live server standing where Meta's hosts stand.


@pytest.fixture
def simulated_meta(live_server, settings):
    """Reset and seed the simulator, register the portal's app, point META_* settings at it.

    Yields `simulator.testing.SimulatedMeta` (base URLs, app credentials, `.api`). Needs the
    database across threads, which `live_server` provides (transactional).
    """
    from simulator.testing import start

    yield start(live_server.url, settings)


# --- Call ledger (ledger engineer): with REDIS_URL set the Graph hook counts in Redis. Each test
# gets its own key prefix, so counts one test leaves unflushed never show in another's figures (D16).


@pytest.fixture(autouse=True)
def ledger_redis_prefix(settings):
    settings.VERIFICATION_LEDGER_REDIS_PREFIX = f"test:ledger:{os.urandom(8).hex()}:"
    settings.VERIFICATION_LEDGER_REDIS_TTL_SECONDS = 3600
