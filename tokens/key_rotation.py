"""Checking and rotating the field-encryption key of stored tokens, and of other apps' secrets.

Tokens are not the only values under ``FIELD_ENCRYPTION_KEY``: another app that stores a
secret in an ``EncryptedTokenField`` (outbound: webhook signing secrets) registers the column in
its ``AppConfig.ready()`` with ``register_encrypted_field``, and it is checked and rotated with
the tokens, so dropping the previous key never leaves a secret unreadable.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import models, transaction
from django.db.models.functions import Cast

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


def rotate_encryption_key(old_key: str, new_key: str, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Re-encrypt every token (and registered column) from ``old_key`` to ``new_key``; returns rows changed.

    A first pass proves every value is readable under one of the two keys, so a wrong
    old key fails before anything is written. Then each batch is one transaction:
    rows are locked, re-read, re-encrypted (tokens' fingerprints recomputed). Values
    already under the new key are left alone, so an interrupted run can be resumed.
    """
    if not old_key or not new_key:
        raise KeyRotationError("Both the old and the new key are required.")
    if old_key == new_key:
        raise KeyRotationError("The new key is the same as the old key.")

    for model, name in encrypted_columns():
        unreadable = [
            pk
            for pk, raw in _raw_values(model.objects.all(), name)
            if not (_readable_with(raw, old_key) or _readable_with(raw, new_key))
        ]
        if unreadable:
            what = "token(s)" if model is AccessToken else f"{model._meta.verbose_name} {name}(s)"
            raise KeyRotationError(
                f"{len(unreadable)} stored {what} do not decrypt under the old key given "
                f"(first ids: {', '.join(map(str, unreadable[:10]))}). Nothing was changed."
            )

    rotated = 0
    for model, name in encrypted_columns():
        ids = list(model.objects.filter(**{f"{name}__isnull": False}).order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), batch_size):
            batch_ids = ids[start : start + batch_size]
            with transaction.atomic():
                locked = model.objects.select_for_update().filter(pk__in=batch_ids)
                for pk, raw in list(_raw_values(locked, name)):
                    if _readable_with(raw, new_key):
                        continue
                    plaintext = crypto.decrypt(raw, keys=[old_key])
                    changes = {name: models.Value(crypto.encrypt(plaintext, key=new_key), models.BinaryField())}
                    if model is AccessToken:
                        changes["fingerprint"] = crypto.fingerprint(plaintext, key=new_key)
                    model.objects.filter(pk=pk).update(**changes)
                    rotated += 1
    return rotated
