"""Checking and rotating the field-encryption key of stored tokens, and of other apps' secrets.

Tokens are not the only values under ``FIELD_ENCRYPTION_KEY``: another app that stores a
secret in an ``EncryptedTokenField`` (outbound: webhook signing secrets) registers the column in
its ``AppConfig.ready()`` with ``register_encrypted_field``, and it is checked and rotated with
the tokens, so dropping the previous key never leaves a secret unreadable.

Rotation is resumable: each batch of rows is re-encrypted and committed on its own, in id
order, and a row already readable under the new key is left as it is. A run that is killed
(or loses its database) leaves every row either under the old key or under the new one, so
running the same command again finishes the job; it says how many rows it found done. No
separate checkpoint is kept: the rows themselves say how far a run got (D38).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, models, transaction
from django.db.models.functions import Cast
from django.views.decorators.debug import sensitive_variables

from . import crypto
from .models import AccessToken

DEFAULT_BATCH_SIZE = 500

# (model, field name) of encrypted columns other than AccessToken.value.
_other_columns: list[tuple[type[models.Model], str]] = []


def register_encrypted_field(model: type[models.Model], field_name: str) -> None:
    """Have ``check_token_encryption`` and ``rotate_field_encryption_key`` cover this column too."""
    if (model, field_name) not in _other_columns:
        _other_columns.append((model, field_name))


def encrypted_columns() -> list[tuple[type[models.Model], str]]:
    """(model, field) of every column encrypted under FIELD_ENCRYPTION_KEY."""
    return [(AccessToken, "value"), *_other_columns]


class KeyRotationError(Exception):
    pass


@dataclass
class EncryptionReport:
    total: int = 0
    current_key: int = 0
    previous_keys: int = 0
    unreadable_ids: list[int] = field(default_factory=list)

    @property
    def unreadable(self) -> int:
        return len(self.unreadable_ids)


@dataclass
class RotationProgress:
    total: int = 0
    checked: int = 0
    rotated: int = 0  # re-encrypted by this run (tokens and other secrets)
    already: int = 0  # found under the new key (a previous, interrupted run, or written since)
    batches: int = 0


def _raw_values(queryset=None, field_name: str = "value") -> Iterator[tuple[int, bytes]]:
    """(id, ciphertext) pairs, read without decrypting (the Cast skips the field's converter)."""
    queryset = AccessToken.objects.all() if queryset is None else queryset
    rows = (
        queryset.filter(**{f"{field_name}__isnull": False})
        .annotate(raw=Cast(field_name, models.BinaryField()))
        .order_by("pk")
        .values_list("pk", "raw")
    )
    for pk, raw in rows.iterator(chunk_size=DEFAULT_BATCH_SIZE):
        yield pk, bytes(raw)


def _readable_with(raw: bytes, key: str) -> bool:
    try:
        crypto.decrypt(raw, keys=[key])
    except crypto.TokenDecryptionError:
        return False
    return True


def _report(model: type[models.Model], field_name: str) -> EncryptionReport:
    report = EncryptionReport()
    previous = list(settings.FIELD_ENCRYPTION_PREVIOUS_KEYS)
    for pk, raw in _raw_values(model.objects.all(), field_name):
        report.total += 1
        if _readable_with(raw, settings.FIELD_ENCRYPTION_KEY):
            report.current_key += 1
        elif any(_readable_with(raw, key) for key in previous):
            report.previous_keys += 1
        else:
            report.unreadable_ids.append(pk)
    return report


def check_encryption() -> EncryptionReport:
    """How many stored tokens decrypt under the current key, a previous key, or none. Changes nothing."""
    return _report(AccessToken, "value")


def check_other_columns() -> dict[str, EncryptionReport]:
    """The same for every other registered column, by "<model label>.<field>"."""
    return {f"{model._meta.label}.{name}": _report(model, name) for model, name in _other_columns}


@sensitive_variables("old_key", "new_key")
def _refuse_unreadable(old_key: str, new_key: str) -> None:
    """Every stored value must decrypt under one of the two keys, or nothing is written."""
    for model, name in encrypted_columns():
        unreadable = [
            pk
            for pk, raw in _raw_values(model.objects.all(), name)
            if not (_readable_with(raw, new_key) or _readable_with(raw, old_key))
        ]
        if unreadable:
            what = "token(s)" if model is AccessToken else f"{model._meta.verbose_name} {name}(s)"
            raise KeyRotationError(
                f"{len(unreadable)} stored {what} do not decrypt under the old key given "
                f"(first ids: {', '.join(map(str, unreadable[:10]))}). Nothing was changed."
            )


def _write_batch(model: type[models.Model], name: str, rows: list[tuple[int, bytes, str | None]]) -> None:
    """Store (pk, ciphertext, fingerprint) rows: one statement on PostgreSQL, one per row elsewhere.

    The ciphertext is written as bytes: the field itself would encrypt again, under the
    configured key rather than the new one.
    """
    if not rows:
        return
    with_fingerprint = model is AccessToken
    if connection.vendor == "postgresql":
        quote = connection.ops.quote_name
        table, column = quote(model._meta.db_table), quote(model._meta.get_field(name).column)
        pk_column = quote(model._meta.pk.column)
        arrays = ["%s::bigint[]", "%s::bytea[]"] + (["%s::varchar[]"] if with_fingerprint else [])
        names = ["pk", "value"] + (["fingerprint"] if with_fingerprint else [])
        sets = [f"{column} = v.value"] + ([f"{quote('fingerprint')} = v.fingerprint"] if with_fingerprint else [])
        params = [[row[0] for row in rows], [row[1] for row in rows]]
        if with_fingerprint:
            params.append([row[2] for row in rows])
        # Identifiers come from the model's metadata; every value is a bound parameter.
        sql = (
            f"UPDATE {table} AS t SET {', '.join(sets)} "  # noqa: S608
            f"FROM unnest({', '.join(arrays)}) AS v ({', '.join(names)}) WHERE t.{pk_column} = v.pk"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        return
    for pk, ciphertext, fingerprint in rows:
        changes = {name: models.Value(ciphertext, output_field=models.BinaryField())}
        if with_fingerprint:
            changes["fingerprint"] = fingerprint
        model.objects.filter(pk=pk).update(**changes)


@sensitive_variables("old_key", "new_key", "plaintext")
def _rotate_batch(model, name: str, after_pk: int, old_key: str, new_key: str, batch_size: int, progress):
    """Lock, re-encrypt and write the next batch after ``after_pk``; returns its last pk, or None at the end."""
    with transaction.atomic():
        locked = (
            model.objects.select_for_update()
            .filter(pk__gt=after_pk, **{f"{name}__isnull": False})
            .annotate(raw=Cast(name, models.BinaryField()))
            .order_by("pk")
            .values_list("pk", "raw")[:batch_size]
        )
        rows = [(pk, bytes(raw)) for pk, raw in locked]
        if not rows:
            return None
        changes = []
        for pk, raw in rows:
            if _readable_with(raw, new_key):
                progress.already += 1
                continue
            plaintext = crypto.decrypt(raw, keys=[old_key])
            fingerprint = crypto.fingerprint(plaintext, key=new_key) if model is AccessToken else None
            changes.append((pk, crypto.encrypt(plaintext, key=new_key), fingerprint))
        _write_batch(model, name, changes)
    progress.rotated += len(changes)
    progress.checked += len(rows)
    progress.batches += 1
    return rows[-1][0]


@sensitive_variables("old_key", "new_key")
def rotate_encryption_key(
    old_key: str,
    new_key: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[RotationProgress], None] | None = None,
) -> RotationProgress:
    """Re-encrypt every token (and registered column) from ``old_key`` to ``new_key``, a batch at a time.

    A first pass proves every row is readable under one of the two keys, so a wrong old key
    fails before anything is written. Then batches follow in id order, each one transaction:
    rows locked, re-read, re-encrypted, fingerprints recomputed, written in one statement.
    ``on_batch`` hears the progress after each commit.
    """
    if not old_key or not new_key:
        raise KeyRotationError("Both the old and the new key are required.")
    if old_key == new_key:
        raise KeyRotationError("The new key is the same as the old key.")
    _refuse_unreadable(old_key, new_key)

    progress = RotationProgress()
    for model, name in encrypted_columns():
        progress.total += model.objects.filter(**{f"{name}__isnull": False}).count()
    for model, name in encrypted_columns():
        last_pk = 0
        while (last_pk := _rotate_batch(model, name, last_pk, old_key, new_key, batch_size, progress)) is not None:
            if on_batch is not None:
                on_batch(progress)
    return progress
