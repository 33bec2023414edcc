"""From the token lifecycle's signals to outgoing events (connected in ``OutboundConfig.ready()``).

Each receiver runs inside the sender's transaction (tokens/signals.py), names every event by its
cause, and builds payloads only for causes not yet recorded. One ``connection.broken`` per
token, whatever broke it first (a 190, a revocation, its end): a connection breaks once; a new
token is a new connection.
"""

from __future__ import annotations

from onboarding.flow import compare_with_previous, connected_grants
from tokens.models import AccessToken, AssetGrant, Reminder
from tokens.reminders import STAGE_ENDED
from tokens.signals import REVOKED_APP_REMOVED, StageDue

from . import payloads
from .models import EventType
from .outbox import NewEvent, record, recorded_keys

BROKEN_INVALID = "invalid"
BROKEN_REVOKED = "revoked"
BROKEN_APP_REMOVED = "app_removed"
BROKEN_ACCESS_ENDED = "access_ended"


def broken_key(token_id: int) -> str:
    return f"{EventType.CONNECTION_BROKEN}:token:{token_id}"


def _tokens(ids):
    return (AccessToken.objects.filter(pk__in=list(ids)).select_related("client__health", "configuration")
            .defer("value"))


def _broken(token: AccessToken, reason: str, **details) -> NewEvent:
    return NewEvent(
        EventType.CONNECTION_BROKEN,
        broken_key(token.pk),
        {**payloads.connection(token), "reason": reason, **details},
        client_id=token.client_id,
    )


def _new_only(keys_by_id: dict[int, str]) -> list[int]:
    known = recorded_keys(list(keys_by_id.values()))
    return [pk for pk, key in keys_by_id.items() if key not in known]


def on_tokens_invalidated(sender=None, *, token_ids, **kwargs) -> None:
    """Meta said 190: ``connection.broken`` (reason ``invalid``) for the tokens still invalid."""
    fresh = _new_only({pk: broken_key(pk) for pk in token_ids})
    tokens = _tokens(fresh).filter(status=AccessToken.Status.INVALID)
    record([
        _broken(token, BROKEN_INVALID, error={"code": token.error_code, "subcode": token.error_subcode})
        for token in tokens
    ])  # fmt: skip


def on_tokens_revoked(sender=None, *, token_ids, cause: str, **kwargs) -> None:
    """Revoked through Meta's callbacks: ``connection.broken`` with ``revoked`` or ``app_removed``."""
    reason = BROKEN_APP_REMOVED if cause == REVOKED_APP_REMOVED else BROKEN_REVOKED
    fresh = _new_only({pk: broken_key(pk) for pk in token_ids})
    record([_broken(token, reason, detail=cause) for token in _tokens(fresh)])


def on_token_installed(sender=None, *, token_id: int, **kwargs) -> None:
    """A first token for a client and configuration is ``connection.created``; a later one ``reconnected``."""
    token = _tokens([token_id]).get()
    comparison = compare_with_previous(token)
    data = payloads.connection(token)
    if comparison is None:
        kind = EventType.CONNECTION_CREATED
        data["assets"] = [payloads.asset(grant.asset) for grant in connected_grants(token)]
    else:
        kind = EventType.CONNECTION_RECONNECTED
        data["assets"] = {
            "covered": [payloads.asset(asset) for asset in comparison.covered],
            "missing": [payloads.asset(asset) for asset in comparison.missing],
            "new": [payloads.asset(asset) for asset in comparison.new],
        }
        data["replaces_token_id"] = comparison.previous.pk
    record([NewEvent(kind, f"{kind}:token:{token.pk}", data, client_id=token.client_id)])


def _stage_key(stage: StageDue) -> str:
    end = int(stage.ends_at.timestamp())
    if stage.grant_id is not None:
        return f"{EventType.ASSET_ACCESS_ENDING}:grant:{stage.grant_id}:{stage.stage}:{end}"
    if stage.stage == STAGE_ENDED:
        return broken_key(stage.token_id)
    return f"{EventType.CONNECTION_EXPIRING}:token:{stage.token_id}:{stage.reason}:{stage.stage}:{end}"


def on_reminder_stages_due(sender=None, *, stages: list[StageDue], **kwargs) -> None:
    """A token's stage: ``connection.expiring`` (``connection.broken`` once ended); a grant's: ``asset.access_ending``.

    Planning sends every current stage on every run; only causes not yet recorded are read and built.
    """
    keyed = {_stage_key(stage): stage for stage in stages}
    known = recorded_keys(list(keyed))
    fresh = {key: stage for key, stage in keyed.items() if key not in known}
    if not fresh:
        return
    tokens = {token.pk: token for token in _tokens({stage.token_id for stage in fresh.values()})}
    grants = AssetGrant.objects.select_related("asset").in_bulk(
        {stage.grant_id for stage in fresh.values() if stage.grant_id}
    )
    events = []
    for key, stage in fresh.items():
        token = tokens.get(stage.token_id)
        if token is None:
            continue
        ending = payloads.ending(stage.stage, stage.ends_at)
        if stage.grant_id is not None:
            grant = grants.get(stage.grant_id)
            if grant is None:
                continue
            data = {**payloads.connection(token), "asset": payloads.asset(grant.asset), **ending}
            events.append(NewEvent(EventType.ASSET_ACCESS_ENDING, key, data, client_id=token.client_id))
        elif stage.stage == STAGE_ENDED:
            reason = BROKEN_INVALID if stage.reason == Reminder.Reason.TOKEN_INVALID else BROKEN_ACCESS_ENDED
            events.append(_broken(token, reason, detail=stage.reason, ended_at=ending["ends_at"]))
        else:
            # The day it breaks is the client's, the one figure everywhere (the token's own end is ends_at).
            data = {**payloads.connection(token), "reason": stage.reason, **ending,
                    **payloads.breaks(token.client, stage.ends_at)}
            events.append(NewEvent(EventType.CONNECTION_EXPIRING, key, data, client_id=token.client_id))
    record(events)
