"""A client's status follows its connection. The rule that moves it after onboarding lives here.

The connection's state is decided in one place, ``tokens.health`` (D24-D26), and stored with the
day it breaks (``tokens.models.ClientHealth``). This receiver of ``connection_states_changed``
keeps the client's lifecycle status in step, in the transaction that changed the connection:

- needs reauthorization (Meta invalidated a token, an asset's access ended, a permission was
  removed, an expiry passed): an active client needs someone to reconnect;
- disconnected (every token revoked or replaced with nothing live left): disconnected;
- connected or access ending again: active (a reconnect, a permission granted again).

Invited, onboarding and offboarded clients move by onboarding's own steps (a login started, a
token stored by the callback, staff), never from here, except that a stored live token makes
any not-offboarded client active.
"""

from __future__ import annotations

from collections import defaultdict

from django.utils import timezone

from tokens.models import ClientHealth
from tokens.signals import StateChange

from .models import ClientBusiness

Status = ClientBusiness.Status
State = ClientHealth.State

# state -> (client statuses it moves, the status they move to); every edge is in STATUS_TRANSITIONS.
FOLLOWS = {
    State.NEEDS_REAUTH: ((Status.ACTIVE,), Status.NEEDS_REAUTH),
    State.DISCONNECTED: ((Status.ACTIVE, Status.NEEDS_REAUTH), Status.DISCONNECTED),
    State.CONNECTED: ((Status.INVITED, Status.ONBOARDING, Status.NEEDS_REAUTH, Status.DISCONNECTED), Status.ACTIVE),
    State.EXPIRING: ((Status.INVITED, Status.ONBOARDING, Status.NEEDS_REAUTH, Status.DISCONNECTED), Status.ACTIVE),
}


def follow_connection_states(sender=None, *, changes: list[StateChange], **kwargs) -> None:
    """Conditional updates, one per state: a client whose status is not on an edge stays put.

    Sent for every client recomputed, moved or not, so a status that drifted from its connection
    (set by hand, or a connected client reconnecting while marked as needing it) is put right.
    """
    by_state: dict[str, list[int]] = defaultdict(list)
    for change in changes:
        by_state[change.after].append(change.client_id)
    now = timezone.now()
    for state, client_ids in by_state.items():
        if state not in FOLLOWS:
            continue
        sources, target = FOLLOWS[state]
        ClientBusiness.objects.filter(pk__in=client_ids, status__in=sources).update(
            status=target, status_changed_at=now
        )
