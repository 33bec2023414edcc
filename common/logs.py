"""Log records that say which request, task and client they belong to, and never carry secrets.

- ``RequestContextMiddleware`` gives every request an id (the proxy's ``X-Request-ID`` when it is
  well formed, a new one otherwise), returns it in the response's ``X-Request-ID``, and writes one
  access record per request (path without its query string).
- ``bind_task`` / ``bind_client`` put a Celery task id and a client id in the same context
  (``config.celery`` binds tasks; onboarding views bind the client they serve).
- ``LogContextFilter`` (on every handler) copies that context onto each record;
  ``JsonFormatter`` writes one JSON object per line.
- ``SensitiveRequestFilter`` (on Django's request loggers) takes the request object and query
  string off records about the OAuth callback and Meta's callbacks, before any handler sees them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("portal_request_id", default=None)
_task_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("portal_task_id", default=None)
_client_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("portal_client_id", default=None)

# A proxy's request id is kept only if it looks like one (nginx's $request_id is 32 hex digits).
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")

# Paths whose query string or body carry an authorization code, a signed_request or a webhook.
SENSITIVE_PATH_PREFIXES = ("/connect/callback/", "/meta/")
# An invitation or reconnect link's key is a bearer secret: the access log shows its place only.
_INVITATION_KEY_RE = re.compile(r"^/invite/[^/]+")

access_logger = logging.getLogger("portal.access")


def current_request_id() -> str | None:
    return _request_id.get()


def bind_task(task_id: str | None, *, request_id: str | None = None) -> None:
    _task_id.set(task_id)
    _request_id.set(request_id)
    _client_id.set(None)


def bind_client(client_id: int | None) -> None:
    """Name the client the rest of this request or task is about."""
    _client_id.set(client_id)


def clear_context() -> None:
    _request_id.set(None)
    _task_id.set(None)
    _client_id.set(None)


def log_context() -> dict:
    return {"request_id": _request_id.get(), "task_id": _task_id.get(), "client_id": _client_id.get()}


class LogContextFilter(logging.Filter):
    """Adds request_id, task_id, client_id (and a short ``log_context`` for plain text) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = log_context()
        for name, value in context.items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        record.log_context = (
            " ".join(f"{name.split('_')[0]}={getattr(record, name)}" for name in context if getattr(record, name, None))
            or "-"
        )
        return True


def is_sensitive_path(path: str) -> bool:
    return path.startswith(SENSITIVE_PATH_PREFIXES)


class SensitiveRequestFilter(logging.Filter):
    """Django's request records for the callback and Meta's endpoints lose the request and query.

    ``django.request`` and ``django.security.*`` attach the request (handlers such as the admin
    e-mail handler render its GET and POST); runserver's ``django.server`` logs the request line.
    Placed on those loggers, this runs before any handler, error reporting included.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        path = getattr(request, "path", None)
        if isinstance(path, str) and is_sensitive_path(path):
            record.request = None
        if record.name == "django.server" and record.args:
            record.args = tuple(_strip_query(arg) if isinstance(arg, str) else arg for arg in record.args)
        return True


def _strip_query(request_line: str) -> str:
    """'GET /connect/callback/?code=.. HTTP/1.1' -> 'GET /connect/callback/ HTTP/1.1' for sensitive paths."""
    parts = request_line.split(" ")
    if len(parts) >= 2 and "?" in parts[1] and is_sensitive_path(parts[1]):
        parts[1] = parts[1].split("?", 1)[0]
    return " ".join(parts)


# LogRecord attributes that are not "extra" fields a caller added.
_STANDARD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "log_context",
    "request",
    "request_id",
    "task_id",
    "client_id",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the log context, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "task_id": getattr(record, "task_id", None),
            "client_id": getattr(record, "client_id", None),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES and not name.startswith("_"):
                entry[name] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or the address our trusted proxies saw (X-Forwarded-For).

    Each proxy appends the address it received the request from, so with N trusted proxies the
    N-th entry from the right is the client; anything further left was written by the client.
    """
    from django.conf import settings

    remote = request.META.get("REMOTE_ADDR", "") or ""
    count = int(getattr(settings, "PORTAL_TRUSTED_PROXY_COUNT", 0) or 0)
    if count <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) >= count:
        return forwarded[-count][:64]
    return remote


def logged_path(path: str) -> str:
    """The path as the access log writes it: never a query string (the callback's carries the code)."""
    return _INVITATION_KEY_RE.sub("/invite/[key]", path)


class RequestContextMiddleware:
    """Request id in, request id out, one access record per request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        tokens = (_request_id.set(request_id), _task_id.set(None), _client_id.set(None))
        started = time.monotonic()
        try:
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            access_logger.info(
                "%s %s %s",
                request.method,
                logged_path(request.path),
                response.status_code,
                extra={
                    "method": request.method,
                    "path": logged_path(request.path),
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                    "remote_ip": client_ip(request),
                },
            )
            return response
        finally:
            for var, token in zip((_request_id, _task_id, _client_id), tokens, strict=True):
                var.reset(token)
