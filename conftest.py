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
