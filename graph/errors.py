"""Meta's error JSON as typed exceptions callers can act on.

Only ``InvalidTokenError`` may mark a token invalid: a rate limit, a permission
problem or a hiccup at Meta says nothing about whether the token still works.
Error codes: developers.facebook.com/docs/graph-api/guides/error-handling.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# 190 subcodes (what happened to the token).
SUBCODE_APP_NOT_INSTALLED = 458
SUBCODE_CHECKPOINTED = 459
SUBCODE_PASSWORD_CHANGED = 460
SUBCODE_EXPIRED = 463
SUBCODE_UNCONFIRMED_USER = 464
SUBCODE_INVALID_TOKEN = 467
SUBCODE_INVALID_SESSION = 492

INVALID_TOKEN_CODES = frozenset({102, 190})
THROTTLING_CODES = frozenset({4, 17, 32, 613}) | frozenset(range(80000, 80015))
# "Temporarily blocked": waiting is the only remedy, as with throttling.
BLOCKED_CODES = frozenset({341, 368})
TRANSIENT_CODES = frozenset({1, 2})


def _is_permission_code(code: int | None) -> bool:
    return code == 10 or (code is not None and 200 <= code <= 299)


class GraphError(Exception):
    """An error from Meta (or from reaching Meta), with everything Meta said about it.

    The message is Meta's developer message, scrubbed of any secret the client knew
    about; it never contains the URL, the token, the app secret or a code.
    """

    def __init__(
        self,
        message: str = "",
        *,
        code: int | None = None,
        subcode: int | None = None,
        error_type: str | None = None,
        fbtrace_id: str | None = None,
        user_title: str | None = None,
        user_message: str | None = None,
        http_status: int = 0,
        is_transient: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.error_type = error_type
        self.fbtrace_id = fbtrace_id
        self.user_title = user_title
        self.user_message = user_message
        self.http_status = http_status
        self.is_transient = is_transient

    def __str__(self) -> str:
        parts = [f"({self.code}" + (f"/{self.subcode}" if self.subcode else "") + ")"] if self.code else []
        if self.http_status:
            parts.append(f"HTTP {self.http_status}")
        parts.append(self.message or "no message")
        if self.fbtrace_id:
            parts.append(f"fbtrace_id={self.fbtrace_id}")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, subcode={self.subcode!r}, type={self.error_type!r}, "
            f"http_status={self.http_status!r}, fbtrace_id={self.fbtrace_id!r}, message={self.message!r})"
        )

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.as_dict() == other.as_dict()  # type: ignore[union-attr]

    __hash__ = Exception.__hash__

    def as_dict(self) -> dict[str, Any]:
        """The fields worth storing (e.g. on a LoginAttempt or a TokenEvent)."""
        return {
            "code": self.code,
            "subcode": self.subcode,
            "type": self.error_type,
            "fbtrace_id": self.fbtrace_id,
            "message": self.message,
            "user_title": self.user_title,
            "user_message": self.user_message,
            "http_status": self.http_status,
            "is_transient": self.is_transient,
        }


class InvalidTokenError(GraphError):
    """190 (subcode says why: 463 expired, 460 password changed, 458 app removed...) or 102."""

    @property
    def is_expired(self) -> bool:
        return self.subcode == SUBCODE_EXPIRED

    @property
    def is_app_removed(self) -> bool:
        return self.subcode == SUBCODE_APP_NOT_INSTALLED


class PermissionDeniedError(GraphError):
    """10 or 200-299: a permission is missing; ask for consent again."""


class RateLimitError(GraphError):
    """Throttled (4, 17, 32, 613, 80000-80014) or temporarily blocked (341, 368).

    ``retry_after`` is in seconds when Meta said how long (``estimated_time_to_regain_access``
    in X-Business-Use-Case-Usage, or Retry-After), else None.
    """

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class TransientError(GraphError):
    """1, 2, ``is_transient``, HTTP 5xx, timeouts, connection errors: retry later.

    ``retry_after``: seconds an edge's ``Retry-After`` asked for (a 503 from a proxy), or None.
    """

    def __init__(self, message: str = "", *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after

    # False only when the request provably never left us (refused connection, connect
    # timeout): then even a call Meta must not see twice (the code exchange) is safe to resend.
    request_may_have_arrived: bool = True


class OtherGraphError(GraphError):
    """Anything else (bad parameters, unknown objects...): retrying will not help."""


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def classify_error(
    payload: Any,
    http_status: int = 0,
    *,
    retry_after: float | None = None,
    secrets: Iterable[str] = (),
) -> GraphError:
    """Turn Meta's error JSON (``{"error": {...}}`` or the inner dict) into a typed error.

    The code decides first (a 190 is a token problem whatever the HTTP status); the HTTP
    status only decides when Meta sent no recognisable code.
    """
    error: dict[str, Any] = {}
    if isinstance(payload, dict):
        inner = payload.get("error", payload)
        if isinstance(inner, dict):
            error = inner
        elif isinstance(inner, str):  # some OAuth endpoints answer {"error": "..."}
            error = {"message": inner}
    code = _int_or_none(error.get("code"))
    subcode = _int_or_none(error.get("error_subcode", error.get("subcode")))
    is_transient = bool(error.get("is_transient", False))
    message = scrub(str(error.get("message") or ""), secrets)
    if not message and http_status:
        message = f"Meta answered HTTP {http_status}"
    fields: dict[str, Any] = {
        "code": code,
        "subcode": subcode,
        "error_type": error.get("type"),
        "fbtrace_id": error.get("fbtrace_id"),
        "user_title": scrub(str(error["error_user_title"]), secrets) if error.get("error_user_title") else None,
        "user_message": scrub(str(error["error_user_msg"]), secrets) if error.get("error_user_msg") else None,
        "http_status": http_status,
        "is_transient": is_transient,
    }
    if code in INVALID_TOKEN_CODES:
        return InvalidTokenError(message, **fields)
    if code in THROTTLING_CODES or code in BLOCKED_CODES:
        return RateLimitError(message, retry_after=retry_after, **fields)
    if _is_permission_code(code):
        return PermissionDeniedError(message, **fields)
    if code in TRANSIENT_CODES or is_transient:
        return TransientError(message, retry_after=retry_after, **fields)
    if http_status == 429:
        return RateLimitError(message, retry_after=retry_after, **fields)
    if http_status >= 500:
        return TransientError(message, retry_after=retry_after, **fields)
    return OtherGraphError(message, **fields)
