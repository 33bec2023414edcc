"""Meta's signatures on what it sends us: ``signed_request`` and webhook bodies.

Pure functions (no Django): the deauthorize and data-deletion callbacks post a
``signed_request``; webhooks carry ``X-Hub-Signature-256`` over the raw body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time

ALGORITHM = "HMAC-SHA256"
DEFAULT_MAX_AGE = 86400  # Meta's samples accept a signed_request for about a day.
# A little clock skew between Meta and us is normal; anything further in the future is forged.
FUTURE_SKEW = 300


class SignedRequestError(ValueError):
    """A signed_request we must not trust. ``reason`` is one of the REASONS; never carries the value."""

    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    UNSUPPORTED_ALGORITHM = "unsupported_algorithm"
    STALE = "stale"
    REASONS = (MALFORMED, BAD_SIGNATURE, UNSUPPORTED_ALGORITHM, STALE)

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _b64url_decode(segment: str) -> bytes:
    padded = segment + "=" * (-len(segment) % 4)
    # validate=True: characters outside the alphabet are an error, not silently dropped.
    return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True)


def _b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse_signed_request(
    value: str | None, app_secret: str, max_age: int = DEFAULT_MAX_AGE, now: float | None = None
) -> dict:
    """Verify and decode a signed_request; raise SignedRequestError with a reason otherwise.

    The signature is checked (constant time) before anything in the payload is trusted,
    then the algorithm, then freshness of ``issued_at``.
    """
    if not value or not isinstance(value, str) or value.count(".") != 1:
        raise SignedRequestError(SignedRequestError.MALFORMED, "The signed_request is not two dot-separated parts.")
    encoded_signature, encoded_payload = value.split(".")
    if not encoded_signature or not encoded_payload:
        raise SignedRequestError(SignedRequestError.MALFORMED, "The signed_request has an empty part.")
    try:
        signature = _b64url_decode(encoded_signature)
        payload_bytes = _b64url_decode(encoded_payload)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise SignedRequestError(SignedRequestError.MALFORMED, "The signed_request is not base64url.")

    expected = hmac.new(app_secret.encode("utf-8"), encoded_payload.encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise SignedRequestError(SignedRequestError.BAD_SIGNATURE, "The signed_request signature does not match.")

    try:
        payload = json.loads(payload_bytes)
    except (ValueError, UnicodeDecodeError):
        raise SignedRequestError(SignedRequestError.MALFORMED, "The signed_request payload is not JSON.")
    if not isinstance(payload, dict):
        raise SignedRequestError(SignedRequestError.MALFORMED, "The signed_request payload is not an object.")

    algorithm = payload.get("algorithm")
    if not isinstance(algorithm, str) or algorithm.upper() != ALGORITHM:
        raise SignedRequestError(
            SignedRequestError.UNSUPPORTED_ALGORITHM, f"The signed_request algorithm must be {ALGORITHM}."
        )

    issued_at = payload.get("issued_at")
    if not isinstance(issued_at, int | float) or isinstance(issued_at, bool):
        raise SignedRequestError(SignedRequestError.STALE, "The signed_request has no issued_at time.")
    current = time.time() if now is None else now
    if issued_at < current - max_age:
        raise SignedRequestError(SignedRequestError.STALE, "The signed_request is too old.")
    if issued_at > current + FUTURE_SKEW:
        raise SignedRequestError(SignedRequestError.STALE, "The signed_request is dated in the future.")
    return payload


def make_signed_request(payload: dict, app_secret: str) -> str:
    """Encode a payload the way Meta does (used by the simulator and by tests)."""
    encoded_payload = _b64url_encode(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    signature = hmac.new(app_secret.encode("utf-8"), encoded_payload.encode("ascii"), hashlib.sha256).digest()
    return f"{_b64url_encode(signature)}.{encoded_payload}"


def webhook_signature(raw_body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` header value Meta sends for this body."""
    return "sha256=" + hmac.new(app_secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()


def verify_webhook_signature(raw_body: bytes, header_value: str | None, app_secret: str) -> bool:
    """True when ``header_value`` is ``sha256=<hex HMAC-SHA256(raw body, app secret)>``."""
    if not header_value or not isinstance(header_value, str):
        return False
    scheme, _, received = header_value.strip().partition("=")
    if scheme.lower() != "sha256" or not received:
        return False
    expected = webhook_signature(raw_body, app_secret).partition("=")[2]
    return hmac.compare_digest(received.lower().encode("ascii", "replace"), expected.encode("ascii"))
