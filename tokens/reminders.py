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

import logging
import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import get_connection
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from .events import record_event
from .models import AccessToken, AssetGrant, Reminder, TokenEvent
from .signals import StageDue, reminder_stages_due

logger = logging.getLogger(__name__)

STAGE_ENDED = "ended"
PAGE_SIZE = 1000  # rows per query when planning: memory stays flat whatever the number of tokens
GRANT_LIVE_STATUSES = (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING, AssetGrant.Status.ENDED)
# A superseded token's grants still work at Meta until their own end: the person reconnected but
# may not have re-selected every asset, so reminders about the missing ones must continue.
GRANT_TOKEN_STATUSES = (AccessToken.Status.ACTIVE, AccessToken.Status.EXPIRING, AccessToken.Status.SUPERSEDED)


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


def _wanted_rows(stages: list[tuple[Subject, str, datetime]]) -> list[Reminder]:
    rows = []
    for subject, name, due_at in stages:
        for email, contact_id in recipients(subject.token):
            rows.append(
                Reminder(
                    client_id=subject.token.client_id,
                    token_id=subject.token.pk,
                    grant_id=subject.grant.pk if subject.grant else None,
                    subject_key=subject.key,
                    reason=subject.reason,
                    stage=name,
                    recipient_email=email,
                    recipient_contact_id=contact_id,
                    ends_at=subject.ends_at,
                    due_at=due_at,
                    next_attempt_at=due_at,
                )
            )
    return rows


def _plan(subjects: Iterable[Subject], now: datetime, result: PlanResult, *, announce: bool = True) -> None:
    """One page of subjects: its reminder rows, and the signal that says which stages are due, together."""
    stages = due_stages(subjects, now)
    rows = _wanted_rows(stages)
    with transaction.atomic():
        result.planned += len(rows)
        result.reactivated += _store(rows)
        if stages and announce:
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
            result.cancelled += _cancel(stale)
    return result


# ---------------------------------------------------------------------------------------------
# Is the reason still there?


def _with_subjects(queryset):
    return queryset.select_related(
        "client", "recipient_contact", "token__client", "token__granted_by", "grant__asset", "grant__token__client"
    ).defer("token__value", "grant__token__value")  # never needed: a token is never put in an email


def stale_reminders(reminders: list[Reminder], now: datetime) -> dict[int, str]:
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


def _why_stale(reminder: Reminder, subject: Subject | None, now: datetime) -> str:
    if subject is None or subject.reason != reminder.reason:
        if reminder.grant_id:
            return "Access to this asset no longer ends (reconnected, covered by a newer token, or removed)."
        if reminder.reason == Reminder.Reason.PERMISSION_REMOVED:
            return "The permission was granted again, or the token was reconnected, replaced or revoked."
        return "The token was reconnected, replaced or revoked."
    if subject.reason in HAPPENED:
        return ""
    stage = current_stage(subject.ends_at, now)
    if stage is None:
        return "The end date moved further away."
    if stage[0] != reminder.stage:
        return f"Superseded by the “{stage[0]}” stage (the end date is {subject.ends_at:%Y-%m-%d %H:%M} UTC)."
    return ""


def _cancel(stale: dict[int, str]) -> int:
    by_reason: dict[str, list[int]] = defaultdict(list)
    for pk, why in stale.items():
        by_reason[why].append(pk)
    cancelled = 0
    for why, pks in by_reason.items():
        cancelled += Reminder.objects.filter(
            pk__in=pks, status__in=(Reminder.Status.PENDING, Reminder.Status.SENDING)
        ).update(status=Reminder.Status.CANCELLED, last_error=why, claimed_by="", send_started_at=None)
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
    sent_ids: list[int] = field(default_factory=list)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff: base, 2x base, 4x base ... capped."""
    seconds = settings.REMINDER_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.REMINDER_RETRY_CAP_SECONDS))


def release_expired_leases(now: datetime | None = None) -> int:
    """Give back reminders claimed by a worker that died (its lease ran out).

    Never handed to the mail server (no ``send_started_at``): back to pending, no attempt
    spent. Handed over but the outcome never recorded: the mail server may or may not
    have accepted it. We retry (at-least-once at that one instant, decisions.md D-reminder):
    a duplicate warning costs less than a missed one, and the stable Message-ID lets mail
    clients fold a duplicate away.
    """
    now = now or timezone.now()
    expired = Reminder.objects.filter(
        status=Reminder.Status.SENDING, claimed_at__lt=now - timedelta(seconds=settings.REMINDER_LEASE_SECONDS)
    )
    released = expired.filter(send_started_at__isnull=True).update(
        status=Reminder.Status.PENDING, claimed_by="", claimed_at=None
    )
    in_doubt = list(
        expired.filter(send_started_at__isnull=False).select_related("client", "token").defer("token__value")
    )
    for reminder in in_doubt:
        error = "The worker stopped while sending; it may or may not have been delivered. Retrying."
        # Retried at once: the worker died, not the mail server, and the lease already cost time.
        released += bool(_record_failure(reminder, reminder.claimed_by, error, now, retry_at=now))
    return released


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


def _record_failure(
    reminder: Reminder, claim_id: str, error: str, now: datetime, *, retry_at: datetime | None = None
) -> str:
    """After an attempt failed: retry later, or give up after the last try and tell staff.

    Returns the new status, or "" when the claim was no longer ours.
    """
    mine = Reminder.objects.filter(pk=reminder.pk, claimed_by=claim_id, status=Reminder.Status.SENDING)
    attempts = Reminder.objects.filter(pk=reminder.pk).values_list("attempts", flat=True).first() or 0
    if attempts >= settings.REMINDER_MAX_ATTEMPTS:
        changed = mine.update(status=Reminder.Status.FAILED, last_error=error[:1000], claimed_by="")
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
        next_attempt_at=retry_at or now + retry_delay(attempts),
    )
    return Reminder.Status.PENDING if changed else ""


def send_due_reminders(*, now: datetime | None = None, limit: int | None = None, worker: str = "") -> SendResult:
    """Claim one batch of due reminders and send it over one mail connection."""
    from .emails import send_reminder_email

    now = now or timezone.now()
    limit = limit or settings.REMINDER_BATCH_SIZE
    result = SendResult(released=release_expired_leases(now))
    claim_id = f"{worker or socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    ids = claim_due_reminders(claim_id, now, limit)
    result.claimed = len(ids)
    if not ids:
        return result

    reminders = list(
        _with_subjects(Reminder.objects.filter(pk__in=ids)).prefetch_related("token__grants__asset").order_by("pk")
    )
    stale = stale_reminders(reminders, now)
    result.cancelled = _cancel(stale)
    mail = get_connection()
    _open(mail)
    try:
        for group in group_reminders([r for r in reminders if r.pk not in stale]):
            _send_group(group, claim_id, mail, send_reminder_email, result)
    finally:
        mail.close()
    return result


def group_reminders(reminders: list[Reminder]) -> list[list[Reminder]]:
    """One email per recipient, token, reason and stage: every asset whose access ends together."""
    groups: dict[tuple, list[Reminder]] = defaultdict(list)
    for reminder in reminders:
        key = (reminder.recipient_email.lower(), reminder.token_id, reminder.reason, reminder.stage)
        groups[key].append(reminder)
    return list(groups.values())


def _send_group(group: list[Reminder], claim_id: str, mail, send_email, result: SendResult) -> None:
    pks = [reminder.pk for reminder in group]
    # Recorded before sending: if this process dies now, the lease recovery knows these
    # are the rows whose delivery is in doubt (one message).
    ours = Reminder.objects.filter(pk__in=pks, claimed_by=claim_id, status=Reminder.Status.SENDING)
    started = ours.update(send_started_at=timezone.now(), attempts=F("attempts") + 1)
    if started != len(pks):  # part of our claim was taken over: send only what is still ours
        still = set(ours.values_list("pk", flat=True))
        group = [reminder for reminder in group if reminder.pk in still]
        pks = [reminder.pk for reminder in group]
        if not group:
            return
    try:
        send_email(group, connection=mail)
    except Exception as exc:
        logger.warning("Reminder(s) %s failed: %s", pks, type(exc).__name__)
        mail.close()  # a broken SMTP session must not fail the rest of the batch
        _open(mail)
        for reminder in group:
            outcome = _record_failure(reminder, claim_id, f"{type(exc).__name__}: {exc}", timezone.now())
            result.failed += outcome == Reminder.Status.FAILED
            result.retried += outcome == Reminder.Status.PENDING
        return
    with transaction.atomic():  # one commit for the outcome and its audit entries
        Reminder.objects.filter(pk__in=pks, claimed_by=claim_id, status=Reminder.Status.SENDING).update(
            status=Reminder.Status.SENT,
            sent_at=timezone.now(),
            last_error="",  # claimed_by kept: who sent it
        )
        for reminder in group:
            record_event(
                TokenEvent.Kind.REMINDER_SENT,
                client=reminder.client,
                token=reminder.token,
                asset=reminder.grant.asset if reminder.grant_id else None,
                message=f"{reminder.get_reason_display()} ({reminder.stage}) sent to {reminder.recipient_email}.",
                data={"reminder": reminder.pk, "reason": reminder.reason, "stage": reminder.stage, "email": pks},
            )
    result.messages += 1
    result.sent += len(group)
    result.sent_ids.extend(pks)


def _open(mail) -> None:
    """Open the shared connection; if the server is down, each send fails and is recorded as such."""
    try:
        mail.open()
    except Exception as exc:
        logger.warning("Mail connection could not be opened: %s", type(exc).__name__)


def due_reminder_count(now: datetime | None = None) -> int:
    now = now or timezone.now()
    return Reminder.objects.filter(status=Reminder.Status.PENDING, next_attempt_at__lte=now).count()


def retry_reminders(ids: list[int]) -> int:
    """Staff: send failed (or waiting) reminders again at the next run, with fresh attempts."""
    return Reminder.objects.filter(pk__in=ids, status__in=(Reminder.Status.FAILED, Reminder.Status.PENDING)).update(
        status=Reminder.Status.PENDING, attempts=0, next_attempt_at=timezone.now(), claimed_by=""
    )
