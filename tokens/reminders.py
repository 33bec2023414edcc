"""Reminders: who must be told, about what, and when; and sending them exactly once.

Planning looks at what ends (a token's expiry or data-access expiry, a person's access
to an asset through ``user_access_expire_time``, a token Meta says is invalid) and
creates one row per (subject, reason, stage, recipient). The unique key on those four
makes planning idempotent; only the *current* stage is planned (a token first seen 5
days before its end gets the 7-day reminder, not the 14-day one as well).

Sending claims due rows (``select_for_update(skip_locked=True)`` where the database
has it, and always a conditional ``UPDATE ... WHERE status='pending'``), re-checks that
each reminder's reason still holds, marks the one message about to be sent, sends it
over one shared connection, and records the outcome. See docs/decisions.md for what
happens to a message whose worker died between "marked" and "recorded".
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import get_connection
from django.db import DatabaseError, transaction
from django.db import connection as db_connection
from django.db.models import F, Q
from django.utils import timezone

from common.rows import planned_once

from . import health, outage
from .events import build_event, record_event
from .models import AccessToken, AssetGrant, MailOutage, Reminder, TokenEvent
from .signals import StageDue, reminder_stages_due

logger = logging.getLogger(__name__)

STAGE_ENDED = "ended"
PAGE_SIZE = 1000  # rows per query when planning: memory stays flat whatever the number of tokens
GRANT_LIVE_STATUSES = (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING, AssetGrant.Status.ENDED)
# A superseded token's grants are superseded (tokens.health, D24): what the client grants is the
# newer token's, and an asset it left out at reconnect was dropped on purpose: nothing to remind.
GRANT_TOKEN_STATUSES = AccessToken.LIVE_STATUSES


# ---------------------------------------------------------------------------------------------
# Stages


def stage_days() -> list[int]:
    return sorted({int(days) for days in settings.REMINDER_STAGES_DAYS})


def current_stage(ends_at: datetime | None, now: datetime) -> tuple[str, datetime] | None:
    """The stage due now for something ending at ``ends_at``, and when it became due.

    None when the end is further away than the earliest stage.
    """
    if ends_at is None:
        return None
    if now >= ends_at:
        return STAGE_ENDED, ends_at
    left = ends_at - now
    for days in stage_days():
        if left <= timedelta(days=days):
            return f"{days}d", ends_at - timedelta(days=days)
    return None


def token_end(token: AccessToken) -> tuple[str, datetime] | None:
    """The reason and moment a live token stops working (the earlier of its two expiries)."""
    ends = token.ends_at()
    if ends is None:
        return None
    if token.data_access_expires_at and (token.expires_at is None or token.data_access_expires_at < token.expires_at):
        return Reminder.Reason.DATA_ACCESS_EXPIRING, ends
    return Reminder.Reason.TOKEN_EXPIRING, ends


# ---------------------------------------------------------------------------------------------
# What currently deserves a reminder


@dataclass(frozen=True)
class Subject:
    """Something that ends, with the reason it deserves a reminder."""

    token: AccessToken
    reason: str
    ends_at: datetime
    grant: AssetGrant | None = None

    @property
    def key(self) -> str:
        return f"grant:{self.grant.pk}" if self.grant is not None else f"token:{self.token.pk}"

    def at(self, stage: str) -> StageDue:
        return StageDue(self.token.pk, self.grant.pk if self.grant else None, self.reason, stage, self.ends_at)


def token_subject(token: AccessToken) -> Subject | None:
    if token.kind == AccessToken.Kind.PAGE:
        return None  # its user token is what ends, and that token's reminders say so
    if token.status == AccessToken.Status.INVALID:
        # Meta said it is dead: one "ended" reminder, dated when we learnt it.
        return Subject(token, Reminder.Reason.TOKEN_INVALID, token.last_checked_at or token.updated_at)
    if token.status not in AccessToken.LIVE_STATUSES:
        return None
    end = token_end(token)
    return Subject(token, end[0], end[1]) if end else None


def permission_subject(token: AccessToken) -> Subject | None:
    """A live token on which the person removed a permission: one reminder, dated when we learnt it."""
    if (
        token.kind == AccessToken.Kind.PAGE
        or token.status not in AccessToken.LIVE_STATUSES
        or not token.missing_permissions
        or token.permissions_removed_at is None
    ):
        return None
    return Subject(token, Reminder.Reason.PERMISSION_REMOVED, token.permissions_removed_at)


# Reasons about something that has already happened: one "ended" reminder, never stages.
HAPPENED = (Reminder.Reason.TOKEN_INVALID, Reminder.Reason.PERMISSION_REMOVED)


def grant_subject(grant: AssetGrant, covered: bool) -> Subject | None:
    if (
        grant.token.kind == AccessToken.Kind.PAGE
        or covered
        or grant.user_access_expire_time is None
        or grant.status not in GRANT_LIVE_STATUSES
        or grant.token.status not in GRANT_TOKEN_STATUSES
    ):
        return None
    return Subject(grant.token, Reminder.Reason.ASSET_ACCESS_ENDING, grant.user_access_expire_time, grant)


def covered_grant_ids(grants: list[AssetGrant]) -> set[int]:
    """Grants whose asset another live token of the same client covers for longer.

    That is the case once the person reconnected and re-selected the asset: access through
    the new token does not end (or ends later), so the old grant's reminder has no reason left.
    One query for the whole list.
    """
    if not grants:
        return set()
    covers: dict[tuple[int, int], list[tuple[int, datetime | None]]] = defaultdict(list)
    rows = (
        AssetGrant.objects.filter(
            asset_id__in={grant.asset_id for grant in grants},
            status__in=(AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING),
            token__status__in=AccessToken.LIVE_STATUSES,
        )
        # A Page token's grant ends with its user token's: it covers nothing for longer.
        .exclude(token__kind=AccessToken.Kind.PAGE)
        .values_list("asset_id", "token__client_id", "token_id", "user_access_expire_time")
    )
    for asset_id, client_id, token_id, expires in rows:
        covers[(client_id, asset_id)].append((token_id, expires))
    covered = set()
    for grant in grants:
        for token_id, expires in covers[(grant.token.client_id, grant.asset_id)]:
            if token_id != grant.token_id and (expires is None or expires > grant.user_access_expire_time):
                covered.add(grant.pk)
                break
    return covered


def recipients(token: AccessToken) -> list[tuple[str, int | None]]:
    """(email, contact id) pairs: the person who granted, then the client's notification addresses.

    A grantor who turned ``receives_reminders`` off is left out. Other contacts are not
    written to: for a user token only the person who granted it can grant again, and the
    notification addresses are where a client wants everything else to go (decisions.md).
    """
    seen: dict[str, int | None] = {}
    grantor = token.granted_by
    if grantor is not None and grantor.receives_reminders and grantor.email:
        seen[grantor.email.lower()] = grantor.pk
    for address in token.client.notification_email_list():
        seen.setdefault(address.lower(), None)
    return list(seen.items())


# ---------------------------------------------------------------------------------------------
# Planning


@dataclass
class PlanResult:
    planned: int = 0  # rows wanted now (created or already there)
    reactivated: int = 0
    cancelled: int = 0


def _pages(queryset, page_size: int = PAGE_SIZE) -> Iterator[list]:
    """Keyset pagination by primary key: constant memory, no OFFSET scans."""
    last = 0
    while True:
        page = list(queryset.filter(pk__gt=last).order_by("pk")[:page_size])
        if not page:
            return
        yield page
        last = page[-1].pk


def due_stages(subjects: Iterable[Subject], now: datetime) -> list[tuple[Subject, str, datetime]]:
    """(subject, stage, when it became due) for the subjects at a stage now."""
    due = []
    for subject in subjects:
        stage = current_stage(subject.ends_at, now)
        if subject.reason in HAPPENED:
            stage = (STAGE_ENDED, subject.ends_at)
        if stage is not None:
            due.append((subject, *stage))
    return due


def _wanted_rows(stages: list[tuple[Subject, str, datetime]], now: datetime) -> list[Reminder]:
    rows = []
    for subject, name, due_at in stages:
        common = {
            "client_id": subject.token.client_id,
            "token_id": subject.token.pk,
            "grant_id": subject.grant.pk if subject.grant else None,
            "subject_key": subject.key,
            "reason": subject.reason,
            "stage": name,
            "ends_at": subject.ends_at,
            "due_at": due_at,
        }
        people = recipients(subject.token)
        if not people:
            # Nobody to write to: one row per stage says so, for staff (an alert, the first screen; D67).
            rows.append(
                Reminder(
                    **common,
                    recipient_email="",
                    status=Reminder.Status.NOBODY,
                    given_up_at=now,
                    last_error="No grantor who receives reminders and no notification address.",
                )
            )
        rows += [
            Reminder(**common, recipient_email=email, recipient_contact_id=contact_id, next_attempt_at=due_at)
            for email, contact_id in people
        ]
    return rows


def _plan(subjects: Iterable[Subject], now: datetime, result: PlanResult, *, announce: bool = True) -> None:
    """One page of subjects: its reminder rows, and the signal that says which stages are due, together."""
    stages = due_stages(subjects, now)
    rows = _wanted_rows(stages, now)
    with transaction.atomic():
        result.planned += len(rows)
        result.reactivated += _store(rows)
        if stages and announce:
            # The day it breaks that receivers read (outbound's connection.expiring) is current.
            health.refresh_clients({subject.token.client_id for subject, _, _ in stages}, now)
            reminder_stages_due.send(sender=Reminder, stages=[subject.at(name) for subject, name, _ in stages])


def _store(rows: list[Reminder]) -> int:
    """Insert what is missing; bring back rows cancelled earlier whose reason holds again."""
    if not rows:
        return 0
    Reminder.objects.bulk_create(rows, ignore_conflicts=True)
    wanted = {(row.subject_key, row.reason, row.stage, row.recipient_email): row for row in rows}
    cancelled = Reminder.objects.filter(
        subject_key__in={row.subject_key for row in rows}, status=Reminder.Status.CANCELLED
    ).values_list("pk", "subject_key", "reason", "stage", "recipient_email")
    revive = [pk for pk, *key in cancelled if tuple(key) in wanted]
    if revive:
        Reminder.objects.filter(pk__in=revive, status=Reminder.Status.CANCELLED).update(
            status=Reminder.Status.PENDING, next_attempt_at=timezone.now(), last_error=""
        )
    return len(revive)


def plan_reminders(now: datetime | None = None) -> PlanResult:
    """Create the reminders due now, and cancel pending ones whose reason is gone. Idempotent."""
    now = now or timezone.now()
    result = PlanResult()
    horizon = now + timedelta(days=max(stage_days()))
    floor = now - timedelta(days=settings.REMINDER_ENDED_WINDOW_DAYS)

    tokens = (
        AccessToken.objects.filter(
            Q(status__in=AccessToken.LIVE_STATUSES, expires_at__range=(floor, horizon))
            | Q(status__in=AccessToken.LIVE_STATUSES, data_access_expires_at__range=(floor, horizon))
            | Q(status=AccessToken.Status.INVALID, updated_at__gte=floor)
        )
        .select_related("client", "granted_by")
        .defer("value")
    )  # reminders never need the value
    for page in _pages(tokens):
        _plan(filter(None, map(token_subject, page)), now, result)

    removed = (
        AccessToken.objects.filter(status__in=AccessToken.LIVE_STATUSES, permissions_removed_at__gte=floor)
        .exclude(kind=AccessToken.Kind.PAGE)
        .select_related("client", "granted_by")
        .defer("value")
    )
    for page in _pages(removed):
        # Not announced as a stage (reminder_stages_due): its receivers read an "ended" stage as a
        # broken connection, and a removed permission breaks nothing but what needed it.
        _plan(filter(None, map(permission_subject, page)), now, result, announce=False)

    grants = (
        AssetGrant.objects.filter(
            user_access_expire_time__range=(floor, horizon),
            status__in=GRANT_LIVE_STATUSES,
            token__status__in=GRANT_TOKEN_STATUSES,
        )
        .select_related("token__client", "token__granted_by")
        .defer("token__value")
    )
    for page in _pages(grants):
        covered = covered_grant_ids(page)
        _plan(filter(None, (grant_subject(grant, grant.pk in covered) for grant in page)), now, result)

    pending = Reminder.objects.filter(status=Reminder.Status.PENDING)
    for page in _pages(_with_subjects(pending)):
        stale = stale_reminders(page, now)
        if stale:
            result.cancelled += _cancel(stale, now)
    return result


# ---------------------------------------------------------------------------------------------
# Is the reason still there?


def _with_subjects(queryset):
    return queryset.select_related(
        "client", "recipient_contact", "token__client", "token__granted_by", "token__configuration",
        "grant__asset", "grant__token__client",
    ).defer("token__value", "grant__token__value")  # never needed: a token is never put in an email


# What sending never reads (the checks of _why_stale, the email, the link, the audit rows): left out of
# the batch's read. A batch read 19 timestamps and 6 JSON documents per reminder, 0.3 CPU ms of it.
_TOKEN_UNREAD = (
    "value", "fingerprint", "meta_app_id", "meta_user_id", "scopes", "granular_scopes", "issued_at", "status_reason",
    "error_code", "error_subcode", "next_check_at", "consecutive_check_failures", "purpose", "revoked_at",
    "created_at", "claim_id", "claimed_until", "sweep_pending", "sweep_run",
)
_CLIENT_UNREAD = ("notes", "status_changed_at", "created_at", "updated_at")
SENDING_UNREAD = (
    "next_attempt_at", "claimed_at", "claimed_by", "last_error", "sent_at", "created_at", "send_started_at",
    "given_up_at", *(f"client__{name}" for name in _CLIENT_UNREAD),
    "recipient_contact__created_at", "recipient_contact__meta_user_id",
    *(f"token__{name}" for name in _TOKEN_UNREAD), *(f"token__client__{name}" for name in _CLIENT_UNREAD),
    "token__granted_by__created_at", "token__granted_by__meta_user_id",
    "token__configuration__permissions", "token__configuration__asset_types", "token__configuration__description",
    "token__configuration__created_at", "token__configuration__updated_at",
    *(f"grant__token__{name}" for name in _TOKEN_UNREAD), *(f"grant__token__client__{name}" for name in _CLIENT_UNREAD),
)  # fmt: skip


@dataclass(frozen=True)
class Stale:
    """Why a reminder must not be sent any more; ``late`` when its moment passed before it went out."""

    why: str
    late: bool = False


def stale_reminders(reminders: list[Reminder], now: datetime) -> dict[int, Stale]:
    """{reminder id: why} for reminders that must not be sent any more. Two queries at most."""
    grants = [reminder.grant for reminder in reminders if reminder.grant_id]
    covered = covered_grant_ids(grants)
    stale = {}
    for reminder in reminders:
        if reminder.grant_id:
            subject = grant_subject(reminder.grant, reminder.grant_id in covered)
        elif reminder.reason == Reminder.Reason.PERMISSION_REMOVED:
            subject = permission_subject(reminder.token)
        else:
            subject = token_subject(reminder.token)
        why = _why_stale(reminder, subject, now)
        if why:
            stale[reminder.pk] = why
    return stale


def _why_stale(reminder: Reminder, subject: Subject | None, now: datetime) -> Stale | None:
    if subject is None or subject.reason != reminder.reason:
        if reminder.grant_id:
            return Stale("Access to this asset no longer ends (reconnected, covered by a newer token, or removed).")
        if reminder.reason == Reminder.Reason.PERMISSION_REMOVED:
            return Stale("The permission was granted again, or the token was reconnected, replaced or revoked.")
        return Stale("The token was reconnected, replaced or revoked.")
    window = timedelta(days=settings.REMINDER_ENDED_WINDOW_DAYS)
    if reminder.stage == STAGE_ENDED and now > reminder.due_at + window:
        # The notice that access ended is worth sending for as long as an "ended" one is planned.
        return Stale(f"Not delivered within {settings.REMINDER_ENDED_WINDOW_DAYS} days of the end.", late=True)
    if subject.reason in HAPPENED:
        return None
    stage = current_stage(subject.ends_at, now)
    if stage is None:
        return Stale("The end date moved further away.")
    if stage[0] != reminder.stage:
        why = f"Superseded by the “{stage[0]}” stage (the end date is {subject.ends_at:%Y-%m-%d %H:%M} UTC)."
        # Late when, by the end it was planned for, its own stage is over: it was due and never went
        # out (the mail server was down, or kept deferring it). An end that moved closer is not late.
        own = current_stage(reminder.ends_at, now) if reminder.ends_at else stage
        late = own is None or own[0] != reminder.stage
        return Stale(f"Not delivered in time. {why}" if late else why, late=late)
    return None


def _cancel(stale: dict[int, Stale], now: datetime | None = None) -> int:
    """Cancel stale rows; those whose moment passed undelivered become "not delivered in time" (D66)."""
    now = now or timezone.now()
    by_outcome: dict[Stale, list[int]] = defaultdict(list)
    for pk, why in stale.items():
        by_outcome[why].append(pk)
    cancelled = 0
    for why, pks in by_outcome.items():
        outcome = (
            {"status": Reminder.Status.UNDELIVERED, "given_up_at": now}
            if why.late
            else {"status": Reminder.Status.CANCELLED}
        )
        cancelled += Reminder.objects.filter(
            pk__in=pks, status__in=(Reminder.Status.PENDING, Reminder.Status.SENDING)
        ).update(last_error=why.why, claimed_by="", send_started_at=None, **outcome)
    return cancelled


# ---------------------------------------------------------------------------------------------
# Sending


@dataclass
class SendResult:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    cancelled: int = 0
    released: int = 0
    messages: int = 0  # emails: reminders for several assets of one token travel together
    outage: bool = False  # the mail server could not be used: the gate was closed, or closed now
    sent_ids: list[int] = field(default_factory=list)


IN_DOUBT = "The worker stopped while sending; it may or may not have been delivered. Retrying."


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff: base, 2x base, 4x base ... capped."""
    seconds = settings.REMINDER_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.REMINDER_RETRY_CAP_SECONDS))


def claim_name(worker: str = "", task_id: str = "") -> str:
    """``<worker node>:<pid>:<task id>``: a restarted node, a redelivered task and a pid find their claims."""
    return f"{worker or socket.gethostname()}:{os.getpid()}:{task_id or uuid.uuid4().hex[:12]}"


def _release(claims, now: datetime) -> int:
    """Give back rows of a sender known or presumed dead (decisions.md D9, D65).

    Never handed to the mail server (no ``send_started_at``): back to pending, no attempt
    spent. Handed over but the outcome never recorded: the mail server may or may not have
    accepted it. Retried at once (at-least-once at that one instant): a duplicate warning
    costs less than a missed one, and the stable Message-ID lets mail clients fold it away.
    """
    claims = claims.filter(status=Reminder.Status.SENDING)
    released = claims.filter(send_started_at__isnull=True).update(
        status=Reminder.Status.PENDING, claimed_by="", claimed_at=None
    )
    released += claims.filter(send_started_at__isnull=False).update(
        status=Reminder.Status.PENDING, claimed_by="", claimed_at=None, next_attempt_at=now, last_error=IN_DOUBT
    )
    return released


def release_expired_leases(now: datetime | None = None) -> int:
    """Claims not renewed for REMINDER_LEASE_SECONDS: a live sender renews its claim at every message."""
    now = now or timezone.now()
    expired = now - timedelta(seconds=settings.REMINDER_LEASE_SECONDS)
    return _release(Reminder.objects.filter(claimed_at__lt=expired), now)


def release_task_claims(task_id: str, now: datetime | None = None) -> int:
    """A task delivered again (its worker process was lost): what its earlier delivery held, at once."""
    if not task_id:
        return 0
    return _release(Reminder.objects.filter(claimed_by__endswith=f":{task_id}"), now or timezone.now())


def release_node_claims(node: str, before: datetime, now: datetime | None = None) -> int:
    """A worker node starting: what the same node held before it started belongs to its dead predecessor."""
    claims = Reminder.objects.filter(claimed_by__startswith=f"{node}:", claimed_at__lt=before)
    return _release(claims, now or timezone.now())


def claim_due_reminders(claim_id: str, now: datetime, limit: int) -> list[int]:
    # Reminders that travel in one email (same token, recipient and stage) are claimed together.
    due = Reminder.objects.filter(status=Reminder.Status.PENDING, next_attempt_at__lte=now).order_by(
        "next_attempt_at", "token_id", "recipient_email", "pk"
    )
    with transaction.atomic():
        if db_connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        ids = list(due.values_list("pk", flat=True)[:limit])
        if ids:
            # The status condition is the claim on databases without row locks (SQLite).
            Reminder.objects.filter(pk__in=ids, status=Reminder.Status.PENDING).update(
                status=Reminder.Status.SENDING, claimed_by=claim_id, claimed_at=now, send_started_at=None
            )
    return list(
        Reminder.objects.filter(claimed_by=claim_id, status=Reminder.Status.SENDING)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _record_failure(reminder: Reminder, claim_id: str, error: str, now: datetime, *, counted: bool) -> str:
    """One message failed on its own (the server is up): retry it later, or give it up.

    Only a refusal (5xx) or an error on our side counts towards REMINDER_MAX_ATTEMPTS; a deferral
    (4xx) is retried with the same backoff until its stage passes. Returns the new status, or ""
    when the claim was no longer ours.
    """
    mine = Reminder.objects.filter(pk=reminder.pk, claimed_by=claim_id, status=Reminder.Status.SENDING)
    attempts = Reminder.objects.filter(pk=reminder.pk).values_list("attempts", flat=True).first() or 0
    if counted and attempts >= settings.REMINDER_MAX_ATTEMPTS:
        changed = mine.update(status=Reminder.Status.FAILED, last_error=error[:1000], claimed_by="", given_up_at=now)
        if changed:
            record_event(
                TokenEvent.Kind.REMINDER_FAILED,
                client=reminder.client,
                token=reminder.token,
                message=f"Gave up on the {reminder.stage} reminder to {reminder.recipient_email} "
                f"after {attempts} attempts: {error}",
                data={"reminder": reminder.pk, "reason": reminder.reason, "stage": reminder.stage},
            )
        return Reminder.Status.FAILED if changed else ""
    changed = mine.update(
        status=Reminder.Status.PENDING,
        last_error=error[:1000],
        claimed_by="",
        next_attempt_at=now + retry_delay(attempts),
    )
    return Reminder.Status.PENDING if changed else ""


def _stop_batch(claim_id: str, error: BaseException, result: SendResult) -> None:
    """The mail server can't be used: hand the rest of the batch back untried and close the gate.

    The message that hit the failure gets its attempt back: nothing reached a mailbox (or, if the
    connection dropped after the server took it, it is in doubt and retried: at-least-once).
    Nothing else of the batch is tried against a dead server.
    """
    now = timezone.now()
    text = f"Mail server unreachable ({type(error).__name__}: {error}); the whole batch waits for it."[:1000]
    ours = Reminder.objects.filter(claimed_by=claim_id, status=Reminder.Status.SENDING)
    ours.filter(send_started_at__isnull=False).update(attempts=F("attempts") - 1)
    result.released += ours.update(
        status=Reminder.Status.PENDING, claimed_by="", claimed_at=None, send_started_at=None, last_error=text
    )
    result.outage = True
    outage.record_outage(now, f"{type(error).__name__}: {error}")
    logger.warning("Mail server unreachable (%s): reminder batch stopped", type(error).__name__)


def send_due_reminders(
    *, now: datetime | None = None, limit: int | None = None, worker: str = "", task_id: str = ""
) -> SendResult:
    """Claim one batch of due reminders and send it over one mail connection."""
    from .emails import reminder_email, reminder_links, reminder_renderer

    now = now or timezone.now()
    limit = limit or settings.REMINDER_BATCH_SIZE
    result = SendResult(released=release_expired_leases(now) + release_task_claims(task_id, now))
    if not outage.may_send(now):
        result.outage = True
        return result
    claim_id = claim_name(worker, task_id)
    ids = claim_due_reminders(claim_id, now, limit)
    result.claimed = len(ids)
    if not ids:
        return result

    reminders = list(
        _with_subjects(Reminder.objects.filter(pk__in=ids))
        .defer(*SENDING_UNREAD)
        .prefetch_related("token__grants__asset")
        .order_by("pk")
    )
    stale = stale_reminders(reminders, now)
    result.cancelled = _cancel(stale, now)
    groups = group_reminders([r for r in reminders if r.pk not in stale])
    # Every email's reconnect link (an invitation row each) in one INSERT, before anything is handed
    # over: a link is used once its email goes out; one made for an email that never does is never seen.
    links = reminder_links(groups)
    build_email = functools.partial(reminder_email, renderer=reminder_renderer())  # each shape rendered once
    batch = Batch(claim_id, get_connection(), build_email, result, renewed_at=now)
    try:
        batch.connection.open()
    except Exception as exc:
        _stop_batch(claim_id, exc, result)
        return result
    try:
        for group, link in zip(groups, links, strict=True):
            if not batch.send(group, link):
                break
        batch.finish()
    finally:
        batch.close()
        batch.held.close()  # its cursor
    return result


def group_reminders(reminders: list[Reminder]) -> list[list[Reminder]]:
    """One email per recipient, token, reason and stage: every asset whose access ends together."""
    groups: dict[tuple, list[Reminder]] = defaultdict(list)
    for reminder in reminders:
        key = (reminder.recipient_email.lower(), reminder.token_id, reminder.reason, reminder.stage)
        groups[key].append(reminder)
    return list(groups.values())


REASON_LABELS = dict(Reminder.Reason.choices)  # what get_reason_display() gives, without building it per call


def _sent_message(reminder: Reminder) -> str:
    reason = REASON_LABELS.get(reminder.reason, reminder.reason)
    return f"{reason} ({reminder.stage}) sent to {reminder.recipient_email}."


def _sent_data(reminder: Reminder, email: list[int]) -> dict:
    return {"reminder": reminder.pk, "reason": reminder.reason, "stage": reminder.stage, "email": email}


def _sent_event(reminder: Reminder, email: list[int]) -> TokenEvent:
    return build_event(
        TokenEvent.Kind.REMINDER_SENT,
        client=reminder.client,
        token=reminder.token,
        asset=reminder.grant.asset if reminder.grant_id else None,
        message=_sent_message(reminder),
        data=_sent_data(reminder, email),
    )


@functools.cache
def _sent_audit_sql() -> str:
    """The audit rows of ``_sent_event`` as an INSERT from one array per column (D78)."""
    column = {name: TokenEvent._meta.get_field(name).column for name in ("client", "token", "asset")}
    # Table and column names come from the models' _meta; every value is a parameter.
    return (
        f"audit AS (INSERT INTO {TokenEvent._meta.db_table} "  # noqa: S608
        f"(kind, actor, message, data, created_at, {column['client']}, {column['token']}, {column['asset']}) "
        "SELECT %s, %s, left(m, 500), d::jsonb, %s, c, t, a "
        "FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::bigint[]) AS rows (m, d, c, t, a))"
    )


def _settle(claim_id: str, delivered: list[Reminder], now: datetime) -> None:
    """The message delivered last: its rows sent (``claimed_by`` kept: who sent it), and its audit rows."""
    if not delivered:
        return
    pks = [reminder.pk for reminder in delivered]
    Reminder.objects.filter(pk__in=pks, claimed_by=claim_id, status=Reminder.Status.SENDING).update(
        status=Reminder.Status.SENT, sent_at=now, last_error=""
    )
    TokenEvent.objects.bulk_create([_sent_event(reminder, pks) for reminder in delivered])


def _settle_and_mark_in_one_statement(
    cursor, claim_id: str, delivered: list[Reminder], pks: list[int], now: datetime
) -> set[int]:
    """``_settle`` for the message delivered last and the mark of the next one, as one PostgreSQL statement.

    Data-modifying CTEs: the two updates touch different rows, the audit rows are inserted
    whatever the first matched (the message was delivered either way). Returns the ids marked.
    """
    table = Reminder._meta.db_table
    params: list = [now, [r.pk for r in delivered], claim_id]
    # Table and column names come from the models' _meta; every value is a parameter.
    sql = [
        f"WITH sent AS (UPDATE {table} SET status = 'sent', sent_at = %s, last_error = '' "  # noqa: S608
        f"WHERE id = ANY(%s) AND claimed_by = %s AND status = 'sending' RETURNING id), "
        f"started AS (UPDATE {table} SET claimed_at = %s, send_started_at = %s, attempts = attempts + 1 "
        f"WHERE id = ANY(%s) AND claimed_by = %s AND status = 'sending' RETURNING id)"
    ]
    params += [now, now, pks, claim_id]
    if delivered:
        email = [r.pk for r in delivered]
        sql.append(", " + _sent_audit_sql())
        params += [
            TokenEvent.Kind.REMINDER_SENT,
            TokenEvent._meta.get_field("actor").default,
            now,
            [_sent_message(r) for r in delivered],
            [json.dumps(_sent_data(r, email)) for r in delivered],
            [r.client_id for r in delivered],
            [r.token_id for r in delivered],
            [r.grant.asset_id if r.grant_id else None for r in delivered],
        ]
    sql.append(" SELECT ARRAY(SELECT id FROM started)")
    cursor.execute("".join(sql), params)
    return set(cursor.fetchone()[0])


@dataclass
class Batch:
    """One sender's claimed batch on one mail connection.

    Per message, one statement records the previous message as sent (with its audit rows) and
    marks this one as handed over; this message is rendered (its reconnect link was made with the
    batch's, D78) and goes to the mail server outside any transaction. So at every instant at most
    one message is delivered-but-unrecorded or handed-over-but-unknown (the in-doubt message of
    D9), and a message costs one commit (decisions.md D68).
    """

    claim_id: str
    connection: object
    build_email: object
    result: SendResult
    renewed_at: datetime  # when the whole claim's lease was last renewed
    delivered: list[Reminder] = field(default_factory=list)  # accepted by the server, not yet recorded
    held: ExitStack = field(default_factory=ExitStack)  # the batch's cursor, closed with it
    cursor: object = None

    def _renew(self, now: datetime) -> None:
        """Renew the whole claim when a quarter of the lease has gone by since the last renewal (D65).

        The rows of each message are renewed as they are marked; the rest of the batch every
        15 s, so a live sender never loses its claim and no message rewrites the whole batch.
        """
        if now - self.renewed_at > timedelta(seconds=settings.REMINDER_LEASE_SECONDS / 4):
            Reminder.objects.filter(claimed_by=self.claim_id, status=Reminder.Status.SENDING).update(claimed_at=now)
            self.renewed_at = now

    def _settle_and_mark(self, group: list[Reminder]) -> list[Reminder]:
        """Record the message delivered last as sent (with its audit rows) and mark this one as handed over.

        One statement on PostgreSQL (so one commit and one round trip per message), a transaction
        elsewhere. Returns the rows of ``group`` still ours: part of a claim can be taken over if its
        lease ran out under us, and only what is still ours is sent.
        """
        now = timezone.now()
        self._renew(now)
        delivered, self.delivered = self.delivered, []
        pks = [reminder.pk for reminder in group]
        if db_connection.vendor == "postgresql":
            if self.cursor is None:
                # Bound on the server and prepared (no arrays quoted into the SQL in Python, no plan per
                # message), one for the batch (made per message it cost 0.1 CPU ms).
                self.cursor = self.held.enter_context(planned_once())
            started = _settle_and_mark_in_one_statement(self.cursor, self.claim_id, delivered, pks, now)
        else:
            with transaction.atomic():
                _settle(self.claim_id, delivered, now)
                ours = Reminder.objects.filter(claimed_by=self.claim_id, status=Reminder.Status.SENDING, pk__in=pks)
                ours.update(claimed_at=now, send_started_at=now, attempts=F("attempts") + 1)
                started = set(ours.filter(send_started_at=now).values_list("pk", flat=True))
        self._count_sent(delivered)
        return [reminder for reminder in group if reminder.pk in started]

    def send(self, group: list[Reminder], link: str | Exception | None = None) -> bool:
        """Send one email (``link``: its reconnect link, made beforehand); False when the mail server
        can't be used (the batch stops there)."""
        error = message = None
        group = self._settle_and_mark(group)
        if not group:
            return True
        try:
            # Rendering (which makes the reconnect link when none was made before); the message goes out after.
            message = self.build_email(group, connection=self.connection, link=link)
        except DatabaseError:
            # Never handed over: not in doubt, and no attempt spent (if the database lets us say so).
            Reminder.objects.filter(pk__in=[r.pk for r in group], claimed_by=self.claim_id).update(
                send_started_at=None, attempts=F("attempts") - 1
            )
            raise
        except Exception as exc:  # a template or a link that can't be made: this message only
            error = exc
        if message is not None:
            try:
                self.connection.send_messages([message])
            except Exception as exc:
                error = exc
        if error is None:
            self.delivered = group
            return True
        return self._failed(group, error)

    def _failed(self, group: list[Reminder], error: BaseException) -> bool:
        kind = outage.classify(error)
        if kind == outage.OUTAGE:
            _stop_batch(self.claim_id, error, self.result)
            return False
        pks = [reminder.pk for reminder in group]
        logger.warning("Reminder(s) %s failed (%s): %s", pks, kind, type(error).__name__)
        now = timezone.now()
        for reminder in group:
            status = _record_failure(
                reminder, self.claim_id, f"{type(error).__name__}: {error}", now, counted=kind != outage.DEFERRED
            )
            self.result.failed += status == Reminder.Status.FAILED
            self.result.retried += status == Reminder.Status.PENDING
        return self._reopen()

    def _count_sent(self, group: list[Reminder]) -> None:
        if not group:
            return
        if not self.result.messages:
            outage.record_delivery()  # the first delivery of a batch reopens the gate after an outage
        self.result.messages += 1
        self.result.sent += len(group)
        self.result.sent_ids.extend(reminder.pk for reminder in group)

    def finish(self) -> None:
        """Record the last message delivered."""
        delivered, self.delivered = self.delivered, []
        if delivered:
            with transaction.atomic():
                _settle(self.claim_id, delivered, timezone.now())
            self._count_sent(delivered)

    def _reopen(self) -> bool:
        """A refused message may leave the SMTP session in any state: start a fresh one."""
        self.close()
        try:
            self.connection.open()
        except Exception as exc:
            _stop_batch(self.claim_id, exc, self.result)
            return False
        return True

    def close(self) -> None:
        try:
            self.connection.close()
        except Exception as exc:  # a server gone away while we said goodbye
            logger.info("Mail connection closed uncleanly: %s", type(exc).__name__)


def senders_wanted(now: datetime | None = None) -> int:
    """How many more batches to send at once: one per full batch due, up to REMINDER_SENDERS (D68)."""
    now = now or timezone.now()
    row = MailOutage.objects.filter(pk=1, failures__gt=0, retry_at__gt=now).exists()
    if row:
        return 0
    due = due_reminder_count(now)
    if not due:
        return 0
    fresh = now - timedelta(seconds=settings.REMINDER_LEASE_SECONDS)
    running = (
        Reminder.objects.filter(status=Reminder.Status.SENDING, claimed_at__gte=fresh)
        .values("claimed_by")
        .distinct()
        .count()
    )
    return max(0, min(-(-due // settings.REMINDER_BATCH_SIZE), settings.REMINDER_SENDERS) - running)


def due_reminder_count(now: datetime | None = None) -> int:
    now = now or timezone.now()
    return Reminder.objects.filter(status=Reminder.Status.PENDING, next_attempt_at__lte=now).count()


def retry_reminders(ids: list[int]) -> int:
    """Staff: send failed (or waiting) reminders again at the next run, with fresh attempts."""
    return Reminder.objects.filter(pk__in=ids, status__in=(Reminder.Status.FAILED, Reminder.Status.PENDING)).update(
        status=Reminder.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), claimed_by=""
    )
