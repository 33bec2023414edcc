"""What one answer from Meta means for one token: its status, its grants, its next check.

Every function changes a ``TokenCheck`` (and the grants read for it) in memory and counts
in the ``ChunkResult``; ``chunk.save`` writes what changed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings

from graph.errors import GraphError, InvalidTokenError
from graph.permissions import USER_ONLY

from .. import health
from ..models import AccessToken, AssetGrant, TokenEvent
from .state import ChunkResult, Coverage, GrantRow, TokenCheck

logger = logging.getLogger(__name__)

MIN_INTERVAL = timedelta(hours=1)
RATE_LIMIT_PAUSE = timedelta(minutes=15)  # when Meta gives no estimate


def retry_delay() -> timedelta:
    """A token Meta could not answer about, or that was not asked, is due again by the next beat
    (SWEEP_RETRY_SECONDS, half a beat by default): a fault that stopped is caught up within one
    sweep interval (decisions.md D63)."""
    return timedelta(seconds=settings.SWEEP_RETRY_SECONDS)


def event(kind: str, token: AccessToken, now: datetime, message: str, data: dict | None = None) -> TokenEvent:
    """An audit entry, created with the chunk's other writes (bulk_create in chunk.save)."""
    return TokenEvent(
        kind=kind, client_id=token.client_id, token=token, message=message[:500], data=data or {}, created_at=now
    )


def defer(check: TokenCheck, error: GraphError, now: datetime, result: ChunkResult) -> None:
    """Not asked (Meta said wait, or the chunk stopped): due again when Meta said, else by the next
    beat (a throttle without an estimate, X-App-Usage's, is tried again by one batch then)."""
    wait = getattr(error, "retry_after", None) or retry_delay().total_seconds()
    check.token.next_check_at = now + timedelta(seconds=max(wait, 60))
    check.fields = {"next_check_at"}
    check.outcome = "deferred"
    result.deferred += 1


def failed(check: TokenCheck, error: GraphError, now: datetime, result: ChunkResult) -> None:
    """A check that told us nothing: try again by the next beat (doubling while it keeps failing,
    up to the daily interval; later if Meta's Retry-After says so), never touch the status."""
    token = check.token
    token.consecutive_check_failures += 1
    delay = min(retry_delay() * 2 ** (token.consecutive_check_failures - 1), check_interval())
    delay = max(delay, timedelta(seconds=getattr(error, "retry_after", None) or 0))
    token.next_check_at = now + delay
    check.fields = {"consecutive_check_failures", "next_check_at"}
    check.outcome = "failed"
    result.errors += 1
    logger.info("Token %s check failed (%s); next try in %s", token.pk, type(error).__name__, delay)


def invalidate(check: TokenCheck, error: InvalidTokenError, now: datetime, result: ChunkResult) -> None:
    token = check.token
    token.status = AccessToken.Status.INVALID
    token.error_code = error.code
    token.error_subcode = error.subcode
    token.status_reason = (error.message or "Meta says this token is no longer valid.")[:300]
    token.consecutive_check_failures = 0
    token.next_check_at = None
    token.last_checked_at = now
    check.outcome = "invalid"
    check.fields = {
        "last_checked_at",
        "status",
        "error_code",
        "error_subcode",
        "status_reason",
        "consecutive_check_failures",
        "next_check_at",
    }
    result.invalid += 1
    result.events.append(
        event(
            TokenEvent.Kind.INVALIDATED,
            token,
            now,
            f"Meta: invalid token ({error.code}/{error.subcode or '-'}) {token.status_reason}",
            {"code": error.code, "subcode": error.subcode},
        )
    )


def refresh(check: TokenCheck, info, now: datetime, result: ChunkResult | None = None) -> None:
    """Take what debug_token says; only what differs is written (most days nothing but the next check).

    A permission the token had and Meta no longer lists was removed by the person: it is kept
    in ``missing_permissions`` (until Meta lists it again) and audited once. The token stays
    valid: Meta answers 10/200 on what needs it, which means "grant it again", not "invalid".
    """
    token = check.token
    removed = set(token.scopes) - set(info.scopes) - USER_ONLY
    missing = sorted((set(token.missing_permissions) | removed) - set(info.scopes))
    newly = sorted(set(missing) - set(token.missing_permissions))
    fresh = {
        "expires_at": info.expires_at,
        "data_access_expires_at": info.data_access_expires_at,
        "scopes": list(info.scopes),
        "granular_scopes": list(info.granular_scopes),
        "consecutive_check_failures": 0,
        "error_code": None,
        "error_subcode": None,
        "missing_permissions": missing,
        "permissions_removed_at": (token.permissions_removed_at or now) if missing else None,
    }
    check.refreshed = True
    check.outcome = "checked"
    token.last_checked_at = now
    check.fields = {"last_checked_at"}
    for name, value in fresh.items():
        if getattr(token, name) != value:
            setattr(token, name, value)
            check.fields.add(name)
    if newly and result is not None:
        result.permissions_removed += 1
        result.events.append(
            event(
                TokenEvent.Kind.PERMISSION_REMOVED,
                token,
                now,
                f"Meta no longer lists {', '.join(newly)}: the person removed it. Reconnect to grant it again.",
                {"permissions": newly},
            )
        )


grant_status = health.grant_status  # the one rule (tokens.health)


def apply_coverage(check: TokenCheck, grants: list[GrantRow], coverage: Coverage, now, result: ChunkResult) -> None:
    by_meta_id = {grant.meta_id: grant for grant in grants}
    wanted = {ref.meta_id: ref for ref in coverage.refs}
    added, removed = [], []
    for meta_id, ref in wanted.items():
        grant = by_meta_id.get(meta_id)
        expires = coverage.expiry.get(meta_id)
        if grant is None:
            check.new_grants.append((ref, expires))
            added.append(meta_id)
            continue
        if grant.status == AssetGrant.Status.REVOKED:
            continue
        before = (grant.status, grant.user_access_expire_time, grant.scopes, grant.removed_at)
        if grant.status == AssetGrant.Status.REMOVED:
            added.append(meta_id)
            grant.removed_at = None
        grant.user_access_expire_time = expires if meta_id in coverage.expiry else grant.user_access_expire_time
        grant.status = grant_status(grant.user_access_expire_time, now)
        grant.scopes = ref.scopes or grant.scopes
        # Unchanged grants are not written: rewriting every grant of every token each day was
        # most of the sweep's database time. The token's last_checked_at says when they were read.
        if (grant.status, grant.user_access_expire_time, grant.scopes, grant.removed_at) != before:
            grant.last_checked_at = now
            grant.changed = True
    for meta_id, grant in by_meta_id.items():
        live = grant.status in (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING, AssetGrant.Status.ENDED)
        if meta_id not in wanted and live and grant.kind in coverage.permission_removed:
            # Not gone: unreadable until the person grants the permission again.
            grant.status = AssetGrant.Status.PERMISSION_REMOVED
            grant.last_checked_at = now
            grant.changed = True
            continue
        if meta_id not in wanted and live and grant.kind in coverage.kinds_read:
            grant.status = AssetGrant.Status.REMOVED
            grant.removed_at = now
            grant.last_checked_at = now
            grant.changed = True
            removed.append(meta_id)
    if added or removed:
        result.assets_added += len(added)
        result.assets_removed += len(removed)
        result.events.append(
            event(
                TokenEvent.Kind.ASSETS_CHANGED,
                check.token,
                now,
                f"Sweep: {len(added)} asset(s) added, {len(removed)} removed by the client.",
                {"added": added, "removed": removed},
            )
        )


def throttled_business(check: TokenCheck, error: GraphError, now: datetime, result: ChunkResult) -> None:
    """Meta throttled this token's business: look again once it said access comes back.

    Only that business waits; the chunk goes on with the others' tokens.
    """
    wait = timedelta(seconds=max(getattr(error, "retry_after", None) or RATE_LIMIT_PAUSE.total_seconds(), 60))
    token = check.token
    if token.next_check_at is None or token.next_check_at > now + wait:
        token.next_check_at = now + wait
        check.fields.add("next_check_at")
    result.business_throttled += 1


def check_interval() -> timedelta:
    return timedelta(hours=settings.SWEEP_CHECK_INTERVAL_HOURS)


def next_check(token: AccessToken, grants: list[GrantRow], now: datetime) -> datetime:
    """Daily by default; sooner as the nearest end approaches; spread so checks don't bunch."""
    ends = [token.ends_at()] + [
        grant.user_access_expire_time
        for grant in grants
        if grant.status in (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING)
    ]
    upcoming = [end for end in ends if end and end > now]
    interval = check_interval()
    if upcoming:
        interval = max(min(interval, (min(upcoming) - now) / 4), MIN_INTERVAL)
    # Deterministic spread (up to 10% earlier) by id: tokens installed together drift apart.
    spread = interval * ((token.pk * 2654435761) % 1000) / 10000
    moment = now + interval - spread
    if upcoming and min(upcoming) < moment:
        moment = min(upcoming) + timedelta(minutes=5)  # look again right after the end
    return moment


def schedule(check: TokenCheck, grants: list[GrantRow], now: datetime, result: ChunkResult) -> None:
    """The token's status by the one rule (tokens.health): expiring when its soonest end, its own or
    one of its live grants', is within the horizon; the soonest end is the reason."""
    if not check.refreshed:  # a failure or deferral already set the next check
        return
    token, fields = check.token, check.fields
    live = (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING)
    grant_ends = [(grant.user_access_expire_time, f"{grant.kind.replace('_', ' ')} {grant.meta_id}")
                  for grant in grants if grant.status in live]
    grant_ends += [(expires, f"{ref.kind.replace('_', ' ')} {ref.meta_id}") for ref, expires in check.new_grants]
    end = health.token_soonest_end(token, grant_ends)
    status, reason = health.token_status(token, end, now)
    if status != token.status:
        if status == AccessToken.Status.EXPIRING:
            result.events.append(event(TokenEvent.Kind.EXPIRING, token, now, health.ending_note(end)))
        token.status = status
        fields.add("status")
    result.checked += 1
    result.expiring += status == AccessToken.Status.EXPIRING
    result.active += status == AccessToken.Status.ACTIVE
    if token.status_reason != reason:
        token.status_reason = reason
        fields.add("status_reason")
    token.next_check_at = next_check(token, grants, now)
    fields.add("next_check_at")
