"""One-time keys (invitation links, login ``state``): random, stored hashed, compared by hash."""

from __future__ import annotations

import hashlib
import secrets

KEY_BYTES = 32  # 256 bits: guessing is hopeless, so a hash without salt is enough to store it.


def new_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
