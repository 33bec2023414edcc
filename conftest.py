"""Fixtures shared by every app's tests.

Services (PostgreSQL, Redis, chromium) are used when configured. Locally a test that
needs one skips when it is unreachable; with PORTAL_REQUIRE_SERVICES=1 (CI) it fails.
"""

from __future__ import annotations

import os
import shutil

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

REQUIRE_SERVICES = os.environ.get("PORTAL_REQUIRE_SERVICES") == "1"

# Property-based tests (hypothesis): a modest, repeatable number of examples in every run, CI's
# included; HYPOTHESIS_PROFILE=thorough explores far more, with fresh examples each time (D37).
_HYPOTHESIS_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
hypothesis_settings.register_profile(
    "portal", max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=_HYPOTHESIS_HEALTH
)
hypothesis_settings.register_profile(
    "thorough", max_examples=1000, deadline=None, suppress_health_check=_HYPOTHESIS_HEALTH
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "portal"))

# Whole-run check that no secret reached a URL, a log record or a served request line (D15).
pytest_plugins = ["testsupport.pytest_leakcheck"]


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
    from django.db import connection

    if connection.vendor != "postgresql":
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


# --- Clients most tests start from (testsupport.factories makes any other).


@pytest.fixture
def client_business(db):
    """A client invited but not onboarded yet: Acme Bakery, notified at ops@acme.test."""
    from testsupport.factories import make_client

    return make_client(status="invited", meta_business_id=None)


@pytest.fixture
def active_client(db):
    """An onboarded client (active, with a Meta business id): Acme Bakery, notified at ops@acme.test."""
    from testsupport.factories import make_client

    return make_client()


# --- Staff (console): every admin page needs both factors, so the admin client signs in with both.


@pytest.fixture
def admin_client(db, admin_user, client):
    """pytest-django's admin client, signed in with a password and a verified TOTP device."""
    from testsupport.staff import sign_in

    return sign_in(client, admin_user)


@pytest.fixture(autouse=True)
def staff_jobs_stay_queued(request, monkeypatch):
    """Staff jobs are not sent to a broker in tests: they wait, and ``run_queued_jobs()`` runs them.

    A test marked ``real_worker`` starts a Celery worker of its own and lets jobs go to it.
    """
    if request.node.get_closest_marker("real_worker"):
        return
    monkeypatch.setattr("staffjobs.tasks.run_staff_job.delay", lambda job_id: None)


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


# --- Rate limits (common.ratelimit): each test counts from zero, whichever cache is configured.


@pytest.fixture(autouse=True)
def rate_limit_key_prefix(settings):
    settings.RATE_LIMIT_KEY_PREFIX = f"test:ratelimit:{os.urandom(8).hex()}:"
