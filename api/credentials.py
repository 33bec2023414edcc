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
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from common import rows

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


def find_credential(secret: str) -> ServiceCredential | None:
    """The credential this secret belongs to (revoked ones too: the caller says why it refuses), else None.

    With the row comes whether it is limited to clients or configurations at all
    (``has_client_limits``, ``has_configuration_limits``), so an unlimited credential costs this one
    query; SQL written once, not compiled by the ORM on every request (D90).
    """
    if not secret.startswith(SECRET_PREFIX) or len(secret) > 100:
        return None
    digest = hash_secret(secret)
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
    return ServiceCredential.objects.filter(pk__in=list(credential_ids), revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=by[:150]
    )
