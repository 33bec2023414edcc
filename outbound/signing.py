"""Signing what we send: HMAC-SHA256 over ``<timestamp>.<raw body>`` with the endpoint's secret.

The header reads ``Portal-Signature: t=<unix seconds>,v1=<hex digest>``; during a secret
rotation it carries one ``v1=`` per secret still valid. Each attempt is signed afresh (a new
``t``), so a receiver can refuse old timestamps. The receiver's recipe is in the README
("Verifying a webhook"); the tests verify every delivery with that very code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable

SIGNATURE_HEADER = "Portal-Signature"
EVENT_ID_HEADER = "Portal-Event-Id"
EVENT_TYPE_HEADER = "Portal-Event-Type"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """256 random bits, with a prefix that says what it is when it turns up somewhere it shouldn't."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def encode_body(envelope: dict) -> bytes:
    """The exact bytes sent (and signed): compact JSON, keys in a stable order."""
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def signature(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(signing_secrets: Iterable[str], timestamp: int, body: bytes) -> str:
    return ",".join([f"t={timestamp}", *(f"v1={signature(secret, timestamp, body)}" for secret in signing_secrets)])
