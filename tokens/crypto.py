"""Encryption of access tokens at rest, under FIELD_ENCRYPTION_KEY only.

django-cryptography's field derives its AES key from CRYPTOGRAPHY_KEY but signs with
a ``FernetSigner`` keyed by SECRET_KEY. We derive both the encryption key and the
signing key from FIELD_ENCRYPTION_KEY (HKDF with distinct labels), so rotating
SECRET_KEY never makes a token unreadable. Decryption fails closed: a value that
doesn't authenticate under any configured key raises ``TokenDecryptionError``.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models
from django_cryptography.core.signing import BadSignature, FernetSigner
from django_cryptography.utils.crypto import FernetBytes, InvalidToken

_ENCRYPTION_LABEL = b"portal/token-encryption/v1"
_SIGNING_LABEL = b"portal/token-signing/v1"
_FINGERPRINT_LABEL = b"portal/token-fingerprint/v1"


class TokenDecryptionError(Exception):
    """A stored token does not decrypt under the configured key(s). Never carries the value."""


def _derive(key: str, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(key.encode())


@lru_cache(maxsize=16)
def cipher_for(key: str) -> FernetBytes:
    """An AES-256-CBC + HMAC-SHA256 cipher whose both keys come from ``key``."""
    if not key:
        raise ValueError("FIELD_ENCRYPTION_KEY is empty.")
    return FernetBytes(key=_derive(key, _ENCRYPTION_LABEL), signer=FernetSigner(key=_derive(key, _SIGNING_LABEL)))


def encrypt(plaintext: str, key: str | None = None) -> bytes:
    return cipher_for(key or settings.FIELD_ENCRYPTION_KEY).encrypt(plaintext.encode("utf-8"))


def decrypt(ciphertext: bytes, keys: list[str] | None = None) -> str:
    """Decrypt under the current key, then any previous keys still configured for rotation."""
    if keys is None:
        keys = [settings.FIELD_ENCRYPTION_KEY, *settings.FIELD_ENCRYPTION_PREVIOUS_KEYS]
    for key in keys:
        try:
            return cipher_for(key).decrypt(bytes(ciphertext)).decode("utf-8")
        except (BadSignature, InvalidToken, ValueError):
            continue
    raise TokenDecryptionError(
        "A stored token could not be decrypted with FIELD_ENCRYPTION_KEY "
        "(wrong key, or the row was tampered with). Run `manage.py check_token_encryption`."
    )


def fingerprint(plaintext: str, key: str | None = None) -> str:
    """A keyed digest for de-duplication and lookup; reveals nothing about the token."""
    digest_key = _derive(key or settings.FIELD_ENCRYPTION_KEY, _FINGERPRINT_LABEL)
    return hmac.new(digest_key, plaintext.encode("utf-8"), hashlib.sha256).hexdigest()


def mask(plaintext: str) -> str:
    """What staff may see of a token: its length and last four characters."""
    if not plaintext:
        return ""
    return f"…{plaintext[-4:]} ({len(plaintext)} chars)"


class EncryptedTokenField(models.BinaryField):
    """Stores a str encrypted; the column holds only ciphertext.

    Subclasses BinaryField directly (rather than django-cryptography's ``encrypt()``
    wrapper) so the key is read from settings at use time, not import time: tests
    and the rotation command can change it, and the signer never falls back to
    SECRET_KEY.
    """

    description = "Encrypted text"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("editable", None)
        return name, path, args, kwargs

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None:
            return None
        if isinstance(value, (bytes, memoryview)):
            raise TypeError("EncryptedTokenField takes the plaintext str, not bytes.")
        return connection.Database.Binary(encrypt(str(value)))

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return decrypt(bytes(value))

    def to_python(self, value):
        return value

    def value_to_string(self, obj):
        # Serialisation (dumpdata) must never write the plaintext.
        return ""

    def get_lookup(self, lookup_name):
        if lookup_name != "isnull":
            return None
        return super().get_lookup(lookup_name)
