"""Optional error reporting to Sentry (``SENTRY_DSN``), with nothing secret in what is sent.

- No local variables (a frame's locals can hold a token or a code), no request bodies (Meta's
  callbacks carry signed requests, webhooks carry what Meta tells us), no personal data.
- ``scrub_event`` runs on every event and breadcrumb before it leaves the process: values of
  sensitive keys are replaced, query strings lose sensitive parameters, and anything shaped like
  a Meta access token is masked wherever it appears.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

from .security import SENSITIVE_PARAMETERS

FILTERED = "[Filtered]"
SENSITIVE_KEYS = SENSITIVE_PARAMETERS | {
    "authorization",
    "cookie",
    "set-cookie",
    "x-hub-signature-256",
    "secret",
    "app_secret",
    "value",
    "csrfmiddlewaretoken",
    "sessionid",
    "csrftoken",
}
# Meta's access tokens start with EAA; app tokens are "<app id>|<secret>".
_TOKEN_RE = re.compile(r"\bEAA[A-Za-z0-9]{16,}|\b\d{6,}\|[A-Za-z0-9_-]{16,}")
_QUERY_KEYS = ("query_string", "url")


def _scrub_query(text: str) -> str:
    base, sep, query = text.partition("?") if "?" in text else ("", "", text)
    try:
        pairs = parse_qsl(query, keep_blank_values=True)
    except ValueError:
        return FILTERED
    if not pairs:
        return text
    cleaned = urlencode([(key, FILTERED if key.lower() in SENSITIVE_KEYS else value) for key, value in pairs])
    return f"{base}{sep}{cleaned}" if sep else cleaned


def _scrub(value, key: str | None = None):
    if key is not None and key.lower() in SENSITIVE_KEYS:
        return FILTERED
    if isinstance(value, dict):
        return {name: _scrub(item, str(name)) for name, item in value.items()}
    if isinstance(value, list | tuple):
        # Sentry sends headers and query strings as lists of [name, value] pairs.
        if len(value) == 2 and isinstance(value[0], str) and value[0].lower() in SENSITIVE_KEYS:
            return [value[0], FILTERED]
        return [_scrub(item) for item in value]
    if isinstance(value, str):
        if key in _QUERY_KEYS and ("=" in value):
            value = _scrub_query(value)
        return _TOKEN_RE.sub(FILTERED, value)
    return value


def scrub_event(event: dict, hint=None) -> dict:
    """Sentry's before_send: the event with every secret we know the shape of replaced."""
    return _scrub(event)


def scrub_breadcrumb(crumb: dict, hint=None) -> dict:
    return _scrub(crumb)


def init_sentry(dsn: str, *, environment: str, transport=None) -> None:
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        send_default_pii=False,
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
        traces_sample_rate=0.0,
        transport=transport,
    )
