"""The project's Graph client, built from settings. Every app gets it from here."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from graph.client import GraphClient


def graph_client(**overrides: Any) -> GraphClient:
    """A new client (its own pooled session): use it as a context manager, or keep it for a run.

    ``overrides`` replace the settings' options (tests: no real sleeping between retries).
    """
    options: dict[str, Any] = {
        "app_id": settings.META_APP_ID,
        "app_secret": settings.META_APP_SECRET,
        "version": settings.META_GRAPH_VERSION,
        "graph_url": settings.META_GRAPH_URL,
        "dialog_url": settings.META_DIALOG_URL,
        "proof_mode": settings.META_APPSECRET_PROOF_MODE,
        "timeout": settings.META_HTTP_TIMEOUT,
        "max_retries": settings.META_HTTP_MAX_RETRIES,
        "backoff_base": settings.META_HTTP_BACKOFF_BASE,
        "backoff_cap": settings.META_HTTP_BACKOFF_CAP,
    }
    return GraphClient(**{**options, **overrides})
