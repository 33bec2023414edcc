"""Recording the audit trail (TokenEvent). Every service that changes a token calls this."""

from __future__ import annotations

from typing import Any

from .models import TokenEvent


def build_event(
    kind: str,
    *,
    client=None,
    token=None,
    asset=None,
    actor: str = "system",
    actor_user=None,
    message: str = "",
    data: dict[str, Any] | None = None,
) -> TokenEvent:
    if client is None and token is not None:
        client = token.client
    if actor_user is not None and actor == "system":
        actor = f"staff:{actor_user.get_username()}"
    return TokenEvent(
        kind=kind,
        client=client,
        token=token,
        asset=asset,
        actor=actor,
        actor_user=actor_user,
        message=message[:500],
        data=data or {},
    )


def record_event(kind: str, **fields) -> TokenEvent:
    """Build and save one event (``build_event``'s arguments); bulk writers build them and ``bulk_create``."""
    event = build_event(kind, **fields)
    event.save()
    return event
