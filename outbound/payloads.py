"""What an event says: ids, names, kinds, dates. Never a token value, a secret or a person's data.

A token is named by its portal id; the provider's product asks the API for a working token when
it needs one. People (contacts, Meta user ids) are left out: a data deletion request must not
leave the person's identifiers in an outbox that is sent elsewhere.
"""

from __future__ import annotations

from datetime import datetime

from tokens.models import AccessToken, Asset


def moment(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def connection(token: AccessToken) -> dict:
    """The connection a token stands for: the client, the configuration it came through, the token."""
    client, configuration = token.client, token.configuration
    return {
        "client": {"id": client.pk, "name": client.name, "meta_business_id": client.meta_business_id or None},
        "configuration": (
            {"id": configuration.pk, "name": configuration.name, "config_id": configuration.config_id}
            if configuration
            else None
        ),
        "token": {
            "id": token.pk,
            "kind": token.kind,
            "status": token.status,
            "purpose": token.purpose or None,
            "parent_id": token.parent_id,
            "expires_at": moment(token.expires_at),
            "data_access_expires_at": moment(token.data_access_expires_at),
        },
    }


def asset(value: Asset) -> dict:
    return {"kind": value.kind, "meta_id": value.meta_id, "name": value.name}


def ending(stage: str, ends_at: datetime) -> dict:
    """When something stops working: the moment, and the day it breaks (UTC)."""
    return {"stage": stage, "ends_at": moment(ends_at), "breaks_on": ends_at.date().isoformat()}


def breaks(client, ends_at: datetime) -> dict:
    """The day the client's connection breaks and why, as the console and the API show it (the
    earliest of every end: tokens.health, D27); the token's own end when nothing is stored yet."""
    health = getattr(client, "health", None)
    if health is None or health.breaks_at is None:
        return {"breaks_on": ends_at.date().isoformat(), "breaks_cause": None, "breaks_reason": None}
    return {"breaks_on": health.breaks_on.isoformat(), "breaks_cause": health.cause or None,
            "breaks_reason": health.breaks_reason or None}
