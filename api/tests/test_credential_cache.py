"""A credential is read once per process and kept while its change marker stays (D91): any change to
it or its limits, and a marker Redis lost, make the next request read it again."""

from __future__ import annotations

import pytest
from django.test import Client

from api import credentials
from api.models import Scope
from testsupport.factories import make_asset, make_client, make_grant, make_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def shared_cache(redis_url, settings):
    """The Redis cache (what production and CI configure), this test's own keys; nothing kept from before."""
    settings.CACHES = {"default": {"BACKEND": "common.cache.RedisCache", "LOCATION": redis_url}}
    settings.RATE_LIMITS_ENABLED = True
    credentials._kept.clear()
    yield
    credentials._kept.clear()


@pytest.fixture
def ask(monkeypatch):
    """``ask(client, path)``: the answer's status and how many times answering it read a credential."""
    done, read = [], credentials._read_credential

    def counted(digest):
        done.append(digest)
        return read(digest)

    monkeypatch.setattr(credentials, "_read_credential", counted)

    def status_and_reads(client: Client, path: str) -> tuple[int, int]:
        before = len(done)
        return client.get(path).status_code, len(done) - before

    return status_and_reads


def test_a_credential_is_read_once_and_again_after_each_change(shared_cache, ask):
    acme, other = make_client("Acme"), make_client("Other")
    make_grant(make_token(acme), make_asset(acme, meta_id="1001"))
    make_grant(make_token(other), make_asset(other, meta_id="2002"))
    credential, secret = credentials.create_credential("Publisher", [Scope.TOKENS_READ, Scope.HEALTH_READ])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert ask(client, "/api/v1/assets/2002/token") == (200, 1)
    assert ask(client, "/api/v1/assets/2002/token") == (200, 0)  # kept

    credential.clients.set([acme])  # limited: another client's asset is unknown to it now
    assert ask(client, "/api/v1/assets/2002/token") == (404, 1)
    assert ask(client, "/api/v1/assets/1001/token") == (200, 0)

    credential.scopes = [Scope.HEALTH_READ]  # as the admin saves it
    credential.save()
    assert ask(client, "/api/v1/assets/1001/token") == (403, 1)

    credentials.revoke([credential.pk], by="staff:ana")
    assert ask(client, "/api/v1/credential") == (401, 1)


def test_a_marker_redis_lost_makes_every_process_read_again(shared_cache, ask):
    from django.core.cache import caches

    from common import generations

    _, secret = credentials.create_credential("Publisher", [Scope.HEALTH_READ])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert ask(client, "/api/v1/credential") == (200, 1)
    assert ask(client, "/api/v1/credential") == (200, 0)

    backend = caches["default"]
    backend._cache.get_client(write=True).delete(generations.cache_key(backend, credentials.CHANGED))

    assert ask(client, "/api/v1/credential") == (200, 1)


def test_a_kept_credential_is_read_again_after_its_time_limit(shared_cache, monkeypatch, ask):
    _, secret = credentials.create_credential("Publisher", [Scope.HEALTH_READ])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert ask(client, "/api/v1/credential") == (200, 1)

    later = credentials.time.monotonic() + credentials.KEPT_FOR + 1
    monkeypatch.setattr(credentials.time, "monotonic", lambda: later)

    assert ask(client, "/api/v1/credential") == (200, 1)


def test_without_a_shared_cache_every_request_reads_the_credential(settings, ask):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "api"}}
    settings.RATE_LIMITS_ENABLED = True
    _, secret = credentials.create_credential("Publisher", [Scope.HEALTH_READ])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")

    assert [ask(client, "/api/v1/credential") for _ in range(2)] == [(200, 1), (200, 1)]


def test_a_wrong_secret_is_never_kept(shared_cache, ask):
    client = Client(HTTP_AUTHORIZATION="Bearer svc_not-a-secret-of-ours")
    assert [ask(client, "/api/v1/credential") for _ in range(2)] == [(401, 1), (401, 1)]
    assert credentials._kept == {}
