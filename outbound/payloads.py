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
