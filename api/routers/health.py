"""Connection health for the provider's product (scope health:read): the rows tokens.health keeps (D25-D28).

Each answer reads the stored figure (the same one the console shows and ``connection.expiring``
carries): a fixed number of queries per request whatever the number of clients.
"""

from datetime import date, datetime
from typing import Literal

from ninja import Field, Path, Query, Router, Schema

from onboarding.models import ClientBusiness
from tokens import health
from tokens.models import ClientHealth

from .. import audit
from ..auth import allowed_client_ids, allowed_configuration_ids, not_found, require_client, require_scope
from ..errors import ApiError
from ..models import Scope

router = Router(tags=["health"])

StateName = Literal["connected", "expiring", "needs_reauthorization", "disconnected", "not_connected"]
CauseName = Literal[health.CAUSES]  # Literal[(a, b)] is Literal[a, b]
MAX_ROWS = 500


class AssetOut(Schema):
    kind: str
    meta_id: str
    name: str


class HealthOut(Schema):
    client_id: int
    client_name: str
    offboarded: bool = Field(description="Staff offboarded the client: nothing is to be reconnected.")
    state: StateName = Field(description="connected; expiring (access ending, or part of it ended); "
                                         "needs_reauthorization; disconnected; not_connected (never connected).")
    breaks_at: datetime | None = Field(description="The moment it breaks (or broke); null: nothing ends.")
    breaks_on: date | None = Field(description="The day it breaks (UTC): the earliest of every token's expiry and "
                                               "data-access end, every asset's access end, the verification "
                                               "deadline and upkeep.")
    reason_code: CauseName | None = Field(description="What breaks it on that day.")
    reason: str = Field(description="The same, in words.")
    fix: Literal["reconnect", "provider"] | None = Field(
        description="What mends it: the client reconnects, or the provider acts (verification, upkeep).")
    token_id: int | None = Field(description="The token concerned, when one is.")
    asset: AssetOut | None = Field(description="The asset concerned, when one is.")
    computed_at: datetime | None = Field(description="When the figure was last worked out.")


class HealthListOut(Schema):
    clients: list[HealthOut] = Field(description="Soonest break first; clients whose connection never ends last.")
    next_offset: int | None = Field(description="Pass as offset for the next page; null: this was the last.")


class HealthQuery(Schema):
    state: str | None = Field(None, max_length=200, pattern=r"^[a-z_,]*$",
                              description="Comma-separated states to keep (expiring,needs_reauthorization).")
    breaks_within_days: int | None = Field(None, ge=0, le=3650,
                                           description="Keep clients whose connection breaks within this many "
                                                       "days (already broken included).")
    configuration: int | None = Field(None, ge=1, le=2**31 - 1,
                                      description="Keep clients with a live token of this login configuration.")
    limit: int = Field(100, ge=1, le=MAX_ROWS)
    offset: int = Field(0, ge=0, le=1_000_000)


def _out(client: ClientBusiness, row: ClientHealth | None) -> dict:
    asset = row.asset if row is not None and row.asset_id else None
    return {
        "client_id": client.pk,
        "client_name": client.name,
        "offboarded": client.status == ClientBusiness.Status.OFFBOARDED,
        "state": row.state if row else ClientHealth.State.NOT_CONNECTED,
        "breaks_at": row.breaks_at if row else None,
        "breaks_on": row.breaks_on if row else None,
        "reason_code": (row.cause or None) if row else None,
        "reason": row.breaks_reason if row else "Never connected.",
        "fix": (row.fix or None) if row else None,
        "token_id": row.token_id if row else None,
        "asset": {"kind": asset.kind, "meta_id": asset.meta_id, "name": asset.name} if asset else None,
        "computed_at": row.computed_at if row else None,
    }


@router.get("/clients/health", auth=require_scope(Scope.HEALTH_READ), url_name="clients_health",
            response={200: HealthListOut}, summary="Connection health of many clients, soonest break first")
def clients_health(request, query: Query[HealthQuery]):
    """The clients that connected at least once (a client never connected has no health yet: ask for it by id),
    filtered by state, by how soon they break and by configuration, soonest break first."""
    credential = request.auth
    states = [state for state in (query.state or "").split(",") if state]
    unknown = sorted(set(states) - set(ClientHealth.State.values))
    if unknown:
        raise ApiError(422, "invalid_request", f"Unknown state {', '.join(unknown)}: the states are "
                                               f"{', '.join(ClientHealth.State.values)}.")
    rows = list(health.connections(
        client_ids=allowed_client_ids(credential), configuration_ids=allowed_configuration_ids(credential),
        states=states, breaks_within_days=query.breaks_within_days, configuration_id=query.configuration,
    )[query.offset:query.offset + query.limit + 1])
    more = len(rows) > query.limit
    return {"clients": [_out(row.client, row) for row in rows[:query.limit]],
            "next_offset": query.offset + query.limit if more else None}


@router.get("/clients/{client_id}/health", auth=require_scope(Scope.HEALTH_READ), url_name="client_health",
            response={200: HealthOut}, summary="A client's connection: its state, the day it breaks and why")
def client_health(request, client_id: int = Path(..., ge=1, le=2**63 - 1, description="The portal's client id.")):
    """The state, the day it breaks, why, and what mends it. 404 for a client this credential may not see."""
    credential = request.auth
    require_client(credential, client_id)
    rows = health.connections(client_ids=[client_id], configuration_ids=allowed_configuration_ids(credential))
    row = rows.first()
    if row is not None:
        client = row.client
    else:
        client = ClientBusiness.objects.filter(pk=client_id).first()
        limited = allowed_configuration_ids(credential) is not None
        if client is None or limited:  # a configuration-limited credential sees only clients of its configurations
            raise not_found("client")
    audit.about(request, client_id=client.pk)
    return _out(client, row)
