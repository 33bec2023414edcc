"""Checking and rotating the field-encryption key of stored tokens."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import models, transaction
from django.db.models.functions import Cast

from . import crypto
from .models import AccessToken

DEFAULT_BATCH_SIZE = 500


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


def _raw_values(queryset=None) -> Iterator[tuple[int, bytes]]:
    """(id, ciphertext) pairs, read without decrypting (the Cast skips the field's converter)."""
    queryset = AccessToken.objects.all() if queryset is None else queryset
    rows = (
        queryset.filter(value__isnull=False)
        .annotate(raw=Cast("value", models.BinaryField()))
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


def check_encryption() -> EncryptionReport:
    """How many stored tokens decrypt under the current key, a previous key, or none. Changes nothing."""
    report = EncryptionReport()
    previous = list(settings.FIELD_ENCRYPTION_PREVIOUS_KEYS)
    for pk, raw in _raw_values():
        report.total += 1
        if _readable_with(raw, settings.FIELD_ENCRYPTION_KEY):
            report.current_key += 1
        elif any(_readable_with(raw, key) for key in previous):
            report.previous_keys += 1
        else:
            report.unreadable_ids.append(pk)
    return report


def rotate_encryption_key(old_key: str, new_key: str, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Re-encrypt every token from ``old_key`` to ``new_key``; returns how many rows changed.

    A first pass proves every row is readable under one of the two keys, so a wrong
    old key fails before anything is written. Then each batch is one transaction:
    rows are locked, re-read, re-encrypted and their fingerprints recomputed. Rows
    already under the new key are left alone, so an interrupted run can be resumed.
    """
    if not old_key or not new_key:
        raise KeyRotationError("Both the old and the new key are required.")
    if old_key == new_key:
        raise KeyRotationError("The new key is the same as the old key.")

    unreadable = [pk for pk, raw in _raw_values() if not (_readable_with(raw, old_key) or _readable_with(raw, new_key))]
    if unreadable:
        raise KeyRotationError(
            f"{len(unreadable)} stored token(s) do not decrypt under the old key given "
            f"(first ids: {', '.join(map(str, unreadable[:10]))}). Nothing was changed."
        )

    ids = list(AccessToken.objects.filter(value__isnull=False).order_by("pk").values_list("pk", flat=True))
    rotated = 0
    for start in range(0, len(ids), batch_size):
        batch_ids = ids[start : start + batch_size]
        with transaction.atomic():
            locked = AccessToken.objects.select_for_update().filter(pk__in=batch_ids)
            for pk, raw in list(_raw_values(locked)):
                if _readable_with(raw, new_key):
                    continue
                plaintext = crypto.decrypt(raw, keys=[old_key])
                AccessToken.objects.filter(pk=pk).update(
                    value=models.Value(crypto.encrypt(plaintext, key=new_key), output_field=models.BinaryField()),
                    fingerprint=crypto.fingerprint(plaintext, key=new_key),
                )
                rotated += 1
    return rotated
