"""Recording the audit trail (TokenEvent). Every service that changes a token calls this."""

from __future__ import annotations

from typing import Any

from .models import TokenEvent


def record_event(
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
    return TokenEvent.objects.create(
        kind=kind,
        client=client,
        token=token,
        asset=asset,
        actor=actor,
        actor_user=actor_user,
        message=message[:500],
        data=data or {},
    )
