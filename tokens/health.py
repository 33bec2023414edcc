"""The one rule for states: a token's, a grant's and a client's connection (docs/decisions.md D24-D26).

Every place that decides what state something is in asks this module:

- A **grant** is active, ``expiring`` once Meta set a ``user_access_expire_time`` (the asset's
  managed-account end), ``ended`` once that passed (``grant_status``), and ``superseded`` when its
  token is replaced by a reconnect (``supersede_grants``), including an asset the person left out.
- A live **token** is ``expiring`` when its soonest end falls within the expiring horizon (the
  earliest reminder stage): its own expiry, its data-access expiry, or the end of any of its live
  grants. The soonest end wins and says so in ``status_reason`` ("Access ending on <date>: ...").
- A **client**'s connection (``ClientHealth``) follows its tokens and grants: connected, access
  ending (expiring), needs reauthorization, disconnected, or not connected yet; with *the day it
  breaks* (the earliest end of all of the above, plus the causes registered from above: the Tech
  Provider verification deadline, the upkeep rule at risk) and the reason in words.

``refresh_clients(client_ids)`` is the one function that writes ``ClientHealth``. The places that
change tokens or grants call it in their own transaction (install, asset refresh, revocations and
Meta's callbacks, the sweep's writes, reminder planning); ``refresh_due`` (beat) picks up what time
changes (an end coming within the horizon, an end passing) and, when the registered causes change,
every client. It sends ``connection_states_changed`` for clients whose state moved; onboarding's
client status follows it (``onboarding.client_status``).

Causes from above are registered (tokens must not import verification or onboarding):
``register_standing_causes(fn)``, ``fn(now) -> list[StandingCause]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .models import AccessToken, AssetGrant, ClientHealth
from .signals import StateChange, connection_states_changed

State = ClientHealth.State
Fix = ClientHealth.Fix

# What breaks a connection (``ClientHealth.cause``, the API's ``reason_code``).
TOKEN_EXPIRY = "token_expiry"
DATA_ACCESS_EXPIRY = "data_access_expiry"
ASSET_ACCESS_END = "asset_access_end"
PERMISSION_REMOVED = "permission_removed"
TOKEN_INVALID = "token_invalid"
REVOKED = "revoked"
VERIFICATION_DEADLINE = "verification_deadline"
UPKEEP_AT_RISK = "upkeep_at_risk"
# Causes that stop the whole connection once passed: "needs reauthorization". An asset's end or a
# removed permission breaks only what needed it (D21: the token works for the rest), and the
# provider's standing is not mended by reconnecting: those keep the connection "access ending".
WHOLE_CAUSES = (TOKEN_EXPIRY, DATA_ACCESS_EXPIRY, TOKEN_INVALID)
CAUSES = (TOKEN_EXPIRY, DATA_ACCESS_EXPIRY, ASSET_ACCESS_END, PERMISSION_REMOVED, TOKEN_INVALID, REVOKED,
          VERIFICATION_DEADLINE, UPKEEP_AT_RISK)

# Grants whose end still matters: a removed, revoked or superseded grant has no end to wait for.
GRANT_ENDING_STATUSES = (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING, AssetGrant.Status.ENDED)
PAGE_ROWS = 2000  # clients per recompute query
STANDING_KEY = "tokens:health:standing"


def expiring_horizon() -> timedelta:
    """How far ahead an end makes a token or a connection "expiring": the earliest reminder stage."""
    return timedelta(days=max(settings.REMINDER_STAGES_DAYS))


def day(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d}"


# ---------------------------------------------------------------------------------------------
# Grants and tokens


def grant_status(expires: datetime | None, now: datetime) -> str:
    """A live grant's status from the asset's access end."""
    if expires is None:
        return AssetGrant.Status.ACTIVE
    return AssetGrant.Status.ENDED if expires <= now else AssetGrant.Status.EXPIRING


def supersede_grants(token: AccessToken) -> int:
    """The grants of a token replaced by a reconnect are superseded (all of them: what the client
    grants now is the new token's; an asset it left out was dropped, not forgotten)."""
    return AssetGrant.objects.filter(token=token).exclude(
        status__in=(AssetGrant.Status.REVOKED, AssetGrant.Status.REMOVED, AssetGrant.Status.SUPERSEDED)
    ).update(status=AssetGrant.Status.SUPERSEDED)


@dataclass(frozen=True)
class Ending:
    """When something stops working, what it is (a cause code), and on which asset if any."""

    at: datetime
    cause: str
    asset: str = ""  # for an asset's end: "ad account 123"


def token_soonest_end(token: AccessToken, grant_ends: Iterable[tuple[datetime | None, str]] = ()) -> Ending | None:
    """The soonest of a token's own ends and the ends of its live grants (``(time, what)`` pairs)."""
    ends = []
    if token.expires_at:
        ends.append(Ending(token.expires_at, TOKEN_EXPIRY))
    if token.data_access_expires_at:
        ends.append(Ending(token.data_access_expires_at, DATA_ACCESS_EXPIRY))
    if token.kind == AccessToken.Kind.PAGE and token.parent_id is not None and token.parent.ends_at():
        ends.append(Ending(token.parent.ends_at(), TOKEN_EXPIRY))
    ends += [Ending(at, ASSET_ACCESS_END, what) for at, what in grant_ends if at]
    # The token's own end wins a tie: it takes every asset with it.
    return min(ends, key=lambda end: (end.at, end.cause != TOKEN_EXPIRY, end.cause != DATA_ACCESS_EXPIRY), default=None)


def ending_note(end: Ending) -> str:
    if end.cause == ASSET_ACCESS_END:
        return f"Access ending on {day(end.at)}: access to {end.asset or 'an asset'} ends (Meta's managed accounts)."
    if end.cause == DATA_ACCESS_EXPIRY:
        return f"Access ending on {day(end.at)}: data access expires."
    return f"Access ending on {day(end.at)}: the token expires."


def token_status(token: AccessToken, end: Ending | None, now: datetime) -> tuple[str, str]:
    """A live token's status and reason: expiring when its soonest end is within the horizon."""
    expiring = end is not None and end.at <= now + expiring_horizon()
    notes = [note for note in (token.permission_note(), ending_note(end) if expiring else "") if note]
    status = AccessToken.Status.EXPIRING if expiring else AccessToken.Status.ACTIVE
    return status, " ".join(notes)[:300]


# ---------------------------------------------------------------------------------------------
# Causes from above


@dataclass(frozen=True)
class StandingCause:
    """Something outside the client's tokens that breaks them at ``at``: the live tokens matching
    ``tokens`` (a condition on AccessToken) stop working then, for ``reason``."""

    cause: str
    at: datetime
    reason: str
    tokens: Q
    fix: str = Fix.PROVIDER


_standing_providers: list[Callable[[datetime], list[StandingCause]]] = []


def register_standing_causes(fn: Callable[[datetime], list[StandingCause]]) -> None:
    if fn not in _standing_providers:
        _standing_providers.append(fn)


def standing_causes(now: datetime) -> list[StandingCause]:
    return [cause for provider in _standing_providers for cause in provider(now)]


def _signature(causes: list[StandingCause]) -> str:
    text = "|".join(sorted(f"{c.cause}:{c.at.isoformat()}:{c.reason}:{c.tokens}" for c in causes))
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Clients


@dataclass(frozen=True)
class Cause:
    at: datetime
    cause: str
    reason: str
    fix: str
    token_id: int | None = None
    asset_id: int | None = None


@dataclass(frozen=True)
class Health:
    state: str
    breaks_at: datetime | None = None
    cause: str = ""
    reason: str = ""
    fix: str = Fix.NONE
    token_id: int | None = None
    asset_id: int | None = None

    def columns(self) -> tuple:
        return (self.state, self.breaks_at, self.cause, self.reason[:300], self.fix, self.token_id, self.asset_id)


TOKEN_FIELDS = ("pk", "client_id", "kind", "status", "status_reason", "expires_at", "data_access_expires_at",
                "missing_permissions", "permissions_removed_at", "last_checked_at", "updated_at", "revoked_at")


def _token_label(kind: str) -> str:
    return {"system_user": "system-user token", "user": "user token"}.get(kind, "token")


def _earliest_grant_ends(live_ids: list[int]) -> dict[int, tuple]:
    """Per client, the live grant that ends first: (time, grant token id, asset id, kind, name, meta id)."""
    grants = (
        AssetGrant.objects.filter(token_id__in=live_ids, status__in=GRANT_ENDING_STATUSES,
                                  user_access_expire_time__isnull=False)
        .values_list("token__client_id", "user_access_expire_time", "token_id", "asset_id", "asset__kind",
                     "asset__name", "asset__meta_id")
    )
    earliest: dict[int, tuple] = {}
    if db_connection.features.can_distinct_on_fields:
        rows = grants.order_by("token__client_id", "user_access_expire_time", "asset_id").distinct("token__client_id")
    else:
        rows = grants.order_by("user_access_expire_time", "asset_id")
    for client_id, *row in rows:
        earliest.setdefault(client_id, tuple(row))
    return earliest


def _asset_words(kind: str, name: str, meta_id: str) -> str:
    label = kind.replace("_", " ")
    return f"{label} “{name}” ({meta_id})" if name else f"{label} {meta_id}"


def compute(client_ids: Iterable[int], now: datetime | None = None,
            standing: list[StandingCause] | None = None) -> dict[int, Health]:
    """The health of these clients from their tokens and grants, in a fixed number of queries."""
    now = now or timezone.now()
    ids = sorted(set(client_ids))
    if not ids:
        return {}
    tokens = list(
        AccessToken.objects.filter(client_id__in=ids).exclude(kind__in=AccessToken.DERIVED_KINDS)
        .values(*TOKEN_FIELDS).order_by("client_id", "pk")
    )
    by_client: dict[int, list[dict]] = {pk: [] for pk in ids}
    for token in tokens:
        by_client[token["client_id"]].append(token)
    live_ids = [token["pk"] for token in tokens if token["status"] in AccessToken.LIVE_STATUSES]
    grant_ends = _earliest_grant_ends(live_ids) if live_ids else {}
    affected: list[tuple[StandingCause, set[int]]] = []
    for standing_cause in standing if standing is not None else standing_causes(now):
        hit = set(AccessToken.objects.filter(client_id__in=ids, status__in=AccessToken.LIVE_STATUSES)
                  .filter(standing_cause.tokens).values_list("client_id", flat=True).distinct())
        affected.append((standing_cause, hit))
    return {
        client_id: _client_health(client_id, by_client[client_id], grant_ends.get(client_id), affected, now)
        for client_id in ids
    }


def _client_health(client_id, tokens: list[dict], grant_end, affected, now: datetime) -> Health:
    if not tokens:
        return Health(State.NOT_CONNECTED, reason="Never connected.")
    live = [t for t in tokens if t["status"] in AccessToken.LIVE_STATUSES]
    invalid = [t for t in tokens if t["status"] == AccessToken.Status.INVALID]
    if not live and not invalid:
        last = max(tokens, key=lambda t: (t["revoked_at"] or t["updated_at"], t["pk"]))
        why = last["status_reason"] or "Every token of this client was revoked or replaced."
        return Health(State.DISCONNECTED, last["revoked_at"] or last["updated_at"], REVOKED, why, Fix.RECONNECT,
                      last["pk"])
    causes: list[Cause] = []
    for t in live:
        label = _token_label(t["kind"])
        if t["expires_at"]:
            causes.append(Cause(t["expires_at"], TOKEN_EXPIRY, f"The {label} expires on {day(t['expires_at'])}.",
                                Fix.RECONNECT, t["pk"]))
        if t["data_access_expires_at"]:
            causes.append(Cause(t["data_access_expires_at"], DATA_ACCESS_EXPIRY,
                                f"Data access of the {label} ends on {day(t['data_access_expires_at'])}.",
                                Fix.RECONNECT, t["pk"]))
        if t["missing_permissions"]:
            at = t["permissions_removed_at"] or t["updated_at"]
            causes.append(Cause(at, PERMISSION_REMOVED,
                                f"The person removed {', '.join(t['missing_permissions'])} on {day(at)}.",
                                Fix.RECONNECT, t["pk"]))
    for t in invalid:
        at = t["last_checked_at"] or t["updated_at"]
        detail = f" ({t['status_reason']})" if t["status_reason"] else ""
        causes.append(Cause(at, TOKEN_INVALID, f"Meta stopped accepting the {_token_label(t['kind'])} on {day(at)}"
                                               f"{detail}."[:300], Fix.RECONNECT, t["pk"]))
    if grant_end is not None:
        at, token_id, asset_id, kind, name, meta_id = grant_end
        verb = "ended" if at <= now else "ends"
        causes.append(Cause(at, ASSET_ACCESS_END,
                            f"Access to {_asset_words(kind, name, meta_id)} {verb} on {day(at)} (Meta's managed "
                            f"accounts).", Fix.RECONNECT, token_id, asset_id))
    for standing_cause, hit in affected:
        if client_id in hit:
            causes.append(Cause(standing_cause.at, standing_cause.cause, standing_cause.reason, standing_cause.fix))
    broken = sorted((c for c in causes if c.cause in WHOLE_CAUSES and c.at <= now), key=lambda c: c.at)
    if broken:
        first, state = broken[0], State.NEEDS_REAUTH
    else:
        first = min(causes, key=lambda c: (c.at, c.cause), default=None)
        soon = first is not None and first.at <= now + expiring_horizon()
        state = State.EXPIRING if soon else State.CONNECTED
    if first is None:
        return Health(State.CONNECTED, reason="Nothing ends: no expiry, no data-access or asset end.")
    return Health(state, first.at, first.cause, first.reason, first.fix, first.token_id, first.asset_id)


def refresh_clients(client_ids: Iterable[int], now: datetime | None = None,
                    standing: list[StandingCause] | None = None) -> list[StateChange]:
    """Recompute and store these clients' health; returns the state changes (and signals every
    client recomputed, ``connection_states_changed``).

    Call it inside the transaction that changed their tokens or grants: the rows commit with it.
    """
    now = now or timezone.now()
    ids = sorted(set(client_ids))
    changes: list[StateChange] = []
    for start in range(0, len(ids), PAGE_ROWS):
        changes += _refresh_page(ids[start:start + PAGE_ROWS], now, standing)
    return changes


@transaction.atomic(savepoint=False)
def _refresh_page(ids: list[int], now: datetime, standing) -> list[StateChange]:
    fresh = compute(ids, now, standing)
    stored = {row[0]: row[1:] for row in ClientHealth.objects.filter(client_id__in=ids).values_list(
        "client_id", "state", "breaks_at", "cause", "breaks_reason", "fix", "token_id", "asset_id")}
    write, states = [], []
    for client_id, health in fresh.items():
        before = stored.get(client_id)
        states.append(StateChange(client_id, before[0] if before else State.NOT_CONNECTED, health.state))
        if before == health.columns() or (before is None and health.state == State.NOT_CONNECTED):
            continue  # unchanged, or never connected (no row: see ClientHealth)
        write.append(ClientHealth(
            client_id=client_id, state=health.state, breaks_at=health.breaks_at, cause=health.cause,
            breaks_reason=health.reason[:300], fix=health.fix, token_id=health.token_id, asset_id=health.asset_id,
            computed_at=now,
        ))
    if write:
        ClientHealth.objects.bulk_create(
            write, update_conflicts=True, unique_fields=["client"],
            update_fields=["state", "breaks_at", "cause", "breaks_reason", "fix", "token", "asset", "computed_at"],
        )
    # Every client recomputed, moved or not: what follows the state (the client's status) is put
    # right even where it had drifted (a status set by hand, a reconnect of a connected client).
    if states:
        connection_states_changed.send(sender=ClientHealth, changes=states)
    return [change for change in states if change.before != change.after]


def refresh_for_tokens(token_ids: Iterable[int], now: datetime | None = None) -> list[StateChange]:
    """``refresh_clients`` for the clients of these tokens."""
    ids = list(AccessToken.objects.filter(pk__in=list(token_ids)).values_list("client_id", flat=True).distinct())
    return refresh_clients(ids, now)


def due_client_ids(now: datetime) -> list[int]:
    """Clients whose stored state time has overtaken: an end now within the horizon, or passed."""
    horizon = now + expiring_horizon()
    stored = set(ClientHealth.objects.filter(
        Q(state=State.CONNECTED, breaks_at__lte=horizon)
        | Q(state__in=(State.CONNECTED, State.EXPIRING), breaks_at__lte=now, cause__in=WHOLE_CAUSES)
    ).values_list("client_id", flat=True))
    # A token's end that passed lately, behind an earlier partial cause (an asset's end) on the row.
    recent = (now - timedelta(days=1), now)
    ended = AccessToken.objects.filter(status__in=AccessToken.LIVE_STATUSES).filter(
        Q(expires_at__range=recent) | Q(data_access_expires_at__range=recent)
    ).values_list("client_id", flat=True).distinct()
    return sorted(stored | set(ended))


def all_client_ids() -> list[int]:
    with_tokens = set(AccessToken.objects.order_by().values_list("client_id", flat=True).distinct())
    return sorted(with_tokens | set(ClientHealth.objects.values_list("client_id", flat=True)))


def refresh_due(now: datetime | None = None, *, everything: bool = False) -> dict:
    """Beat: what time changed, and every client when the standing causes changed (or ``everything``)."""
    now = now or timezone.now()
    standing = standing_causes(now)
    signature = _signature(standing)
    if everything or cache.get(STANDING_KEY) != signature:
        ids, scope = all_client_ids(), "all"
    else:
        ids, scope = due_client_ids(now), "due"
    changes = refresh_clients(ids, now, standing)
    cache.set(STANDING_KEY, signature, timeout=None)
    return {"scope": scope, "clients": len(ids), "state_changes": len(changes)}


def on_tokens_invalidated(sender=None, *, token_ids, **kwargs) -> None:
    """Receiver of ``tokens_invalidated`` (any sender: the sweep, a 190 seen elsewhere)."""
    refresh_for_tokens(token_ids)


# ---------------------------------------------------------------------------------------------
# Reading (the API, D28): the stored rows, filtered in SQL


def connections(*, client_ids: Iterable[int] | None = None, configuration_ids: Iterable[int] | None = None,
                states: Iterable[str] = (), breaks_within_days: int | None = None,
                configuration_id: int | None = None, now: datetime | None = None):
    """The stored health rows (clients that connected at least once), soonest break first.

    ``client_ids`` / ``configuration_ids``: the limits of whoever asks (None: every one); a
    configuration limit keeps the clients with a token of one of them. ``breaks_within_days``
    keeps the rows whose day is within that many days, already broken included;
    ``configuration_id``: clients with a live token of that configuration.
    """
    from django.db.models import Exists, F, OuterRef

    rows = ClientHealth.objects.select_related("client", "asset")
    if client_ids is not None:
        rows = rows.filter(client_id__in=list(client_ids))
    if configuration_ids is not None:
        rows = rows.filter(Exists(AccessToken.objects.filter(
            client_id=OuterRef("client_id"), configuration_id__in=list(configuration_ids))))
    states = [state for state in states if state]
    if states:
        rows = rows.filter(state__in=states)
    if breaks_within_days is not None:
        rows = rows.filter(breaks_at__lte=(now or timezone.now()) + timedelta(days=breaks_within_days))
    if configuration_id is not None:
        rows = rows.filter(Exists(AccessToken.objects.filter(
            client_id=OuterRef("client_id"), configuration_id=configuration_id,
            status__in=AccessToken.LIVE_STATUSES)))
    return rows.order_by(F("breaks_at").asc(nulls_last=True), "client_id")
