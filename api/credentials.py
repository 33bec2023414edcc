"""Issuing, authenticating and revoking service credentials (docs/decisions.md D41).

The secret is ``svc_`` + 256 random bits (``secrets.token_urlsafe(32)``), shown once and stored
only as its SHA-256: a secret that random cannot be guessed from its hash, so no key or slow
hash is needed, and rotating the portal's keys never locks a service out.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import time
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from common import generations, rows

from .models import ServiceCredential

SECRET_PREFIX = "svc_"
HINT_LENGTH = 10  # "svc_" and six characters: enough to tell two apart, far too few to use
# last_used_at is written at most once a minute per credential: not a write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def issue_secret(credential: ServiceCredential) -> str:
    """Give a credential a new secret (not saved here); returns it, for showing once."""
    secret = new_secret()
    credential.secret_hash = hash_secret(secret)
    credential.secret_hint = secret[:HINT_LENGTH]
    return secret


def create_credential(name: str, scopes, *, clients=(), configurations=(),
                      created_by=None) -> tuple[ServiceCredential, str]:
    """A credential and its secret (for code and tests; staff use the admin, which calls ``issue_secret``)."""
    credential = ServiceCredential(name=name, scopes=sorted(set(scopes)), created_by=created_by)
    secret = issue_secret(credential)
    credential.save()
    credential.clients.set(clients)
    credential.configurations.set(configurations)
    return credential, secret


def find_credential(secret: str, *, generation: str | None = None) -> ServiceCredential | None:
    """The credential this secret belongs to (revoked ones too: the caller says why it refuses), else None.

    With the row comes whether it is limited to clients or configurations at all
    (``has_client_limits``, ``has_configuration_limits``), so an unlimited credential costs this one
    query; SQL written once, not compiled by the ORM on every request (D90).

    ``generation``: the value of the credentials' change marker (``CHANGED``) read with this
    request's rate limits. With one, the credential read for an earlier request under the same value
    (and less than ``KEPT_FOR`` ago) is answered without a query: any change to a credential or its
    limits gives the marker a new value (D91). Without one (no shared cache), it is always read.
    """
    if not secret.startswith(SECRET_PREFIX) or len(secret) > 100:
        return None
    digest = hash_secret(secret)
    if generation is None:
        return _read_credential(digest)
    kept = _kept.get(digest)
    now = time.monotonic()
    if kept is not None and kept[0] == generation and kept[1] > now:
        return kept[2]
    credential = _read_credential(digest)
    if credential is not None:
        if len(_kept) >= KEPT_MAX:
            _kept.clear()
        _kept[digest] = (generation, now + KEPT_FOR, credential)
    return credential


# The change marker of every credential (common.generations), and what this process keeps: by
# secret digest, (the marker's value then, until when, the credential). Time-limited too, in case a
# marker could not be written (Redis failing at that instant).
CHANGED = "api-credentials"
KEPT_FOR = 30.0
KEPT_MAX = 1000
_kept: dict[str, tuple[str, float, ServiceCredential]] = {}


def changed(**_ignored) -> None:
    """Every kept copy of a credential is stale from now on (connected to credential writes in api.apps)."""
    generations.bump(CHANGED)


def _read_credential(digest: str) -> ServiceCredential | None:
    with rows.planned_once(connection) as cursor:
        cursor.execute(_lookup_sql(), [digest])
        row = cursor.fetchone()
    if row is None:
        return None
    credential = _COLUMNS.instance(row, 0, connection)
    credential.has_client_limits, credential.has_configuration_limits = (bool(flag) for flag in row[len(_COLUMNS):])
    # The lookup is by an index on the hash; compare again in constant time for good measure.
    if not hmac.compare_digest(credential.secret_hash, digest):
        return None
    return credential


_COLUMNS = rows.Columns("credential", ServiceCredential)


@functools.cache
def _lookup_sql() -> str:
    # Table and column names only, from the models: nothing of the request is in this SQL.
    quote = connection.ops.quote_name
    table, alias = quote(ServiceCredential._meta.db_table), quote("credential")
    limits = [
        f"EXISTS (SELECT 1 FROM {quote(getattr(ServiceCredential, relation).through._meta.db_table)} AS limited"  # noqa: S608
        f" WHERE limited.servicecredential_id = {alias}.id)"
        for relation in ("clients", "configurations")
    ]
    select = f"SELECT {_COLUMNS.sql(connection)}, {', '.join(limits)}"
    return f"{select} FROM {table} {alias} WHERE {alias}.secret_hash = %s"  # noqa: S608


def note_use(credential: ServiceCredential, now: datetime | None = None) -> None:
    """Record that the credential was used, to the minute (no write when it was already this minute)."""
    now = now or timezone.now()
    if credential.last_used_at is not None and now - credential.last_used_at < LAST_USED_RESOLUTION:
        return
    ServiceCredential.objects.filter(pk=credential.pk).update(last_used_at=now)
    credential.last_used_at = now


def revoke(credential_ids, *, by: str) -> int:
    """Revoke credentials at once: their next request gets a 401. Idempotent."""
    count = ServiceCredential.objects.filter(pk__in=list(credential_ids), revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=by[:150]
    )
    changed()  # an update sends no post_save
    return count
