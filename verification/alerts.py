"""Staff alerts: each is claimed by a unique key before it is sent, so it goes out once per stage/episode."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.urls import reverse
from django.utils import timezone

from common.staff import staff_alert_recipients
from tokens.models import MailOutage, Reminder

from . import emails
from .models import StaffAlert, TechProviderVerification
from .upkeep import active_rule, upkeep_figures

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
DEADLINE = "verification_deadline"
UPKEEP = "upkeep_at_risk"
REMINDERS_UNDELIVERED = "reminders_undelivered"
REMINDERS_NOBODY = "reminders_nobody"


def claim(key: str, kind: str) -> StaffAlert | None:
    """The alert row, if this caller won the right to send it; None if it is sent or being sent."""
    try:
        with transaction.atomic():
            return StaffAlert.objects.create(key=key, kind=kind, attempts=1)
    except IntegrityError:
        pass
    retried = StaffAlert.objects.filter(key=key, status=StaffAlert.Status.FAILED, attempts__lt=MAX_ATTEMPTS).update(
        status=StaffAlert.Status.SENDING, attempts=F("attempts") + 1
    )
    return StaffAlert.objects.get(key=key) if retried else None


def deliver(alert: StaffAlert, send: Callable[[list[str]], str]) -> bool:
    """Send a claimed alert and record the outcome; a failure is kept for a later retry."""
    recipients = staff_alert_recipients()
    try:
        if not recipients:
            raise ValueError(
                "No staff administrator has an email address (add one, or set VERIFICATION_STAFF_ALERT_EMAILS)."
            )
        subject = send(recipients)
    except Exception as exc:
        logger.warning("Staff alert %s not sent: %s", alert.key, exc.__class__.__name__)
        StaffAlert.objects.filter(pk=alert.pk).update(status=StaffAlert.Status.FAILED, last_error=str(exc)[:1000])
        return False
    StaffAlert.objects.filter(pk=alert.pk).update(
        status=StaffAlert.Status.SENT, sent_at=timezone.now(), subject=subject[:300],
        recipients=", ".join(recipients), last_error="",
    )
    return True


def due_stage(days_left: int, stages: list[int]) -> int | None:
    """The most urgent stage reached: with 10 days left and stages 30/14/7, that is 14."""
    reached = [stage for stage in stages if days_left <= stage]
    return min(reached) if reached else None


def send_deadline_alerts(today: date | None = None) -> int:
    """Email staff administrators as each verification deadline nears; once per record, deadline and stage."""
    today = today or timezone.localdate()
    stages = sorted(set(settings.VERIFICATION_DEADLINE_ALERT_DAYS))
    sent = 0
    running = TechProviderVerification.objects.filter(
        status__in=TechProviderVerification.DEADLINE_STATUSES, deadline__isnull=False
    )
    for record in running:
        days_left = record.days_until_deadline(today)
        stage = due_stage(days_left, stages)
        if stage is None:
            continue
        # The deadline is part of the key: a new notification date starts the stages again.
        alert = claim(f"deadline:{record.pk}:{record.deadline.isoformat()}:{stage}d", DEADLINE)
        if alert is None:
            continue
        if deliver(alert, lambda to, r=record, s=stage, d=days_left: emails.send_verification_deadline(r, s, d, to)):
            sent += 1
    return sent


def check_upkeep(now: datetime | None = None) -> bool:
    """Email staff once when the active rule's calls or error rate is at risk; a recovery closes the episode."""
    now = now or timezone.now()
    rule = active_rule()
    if rule is None:
        return False
    figures = upkeep_figures(rule, now)
    alerts = StaffAlert.objects.filter(kind=UPKEEP)
    if not figures.at_risk:
        alerts.filter(resolved_at__isnull=True).update(resolved_at=now)
        return False
    open_alert = alerts.filter(resolved_at__isnull=True).first()
    # Episodes are numbered, so two workers that both see none open race for the same key.
    key = open_alert.key if open_alert else f"upkeep:{alerts.count() + 1}"
    alert = claim(key, UPKEEP)
    return bool(alert and deliver(alert, lambda to: emails.send_upkeep_at_risk(figures, to)))


# ---------------------------------------------------------------------------------------------
# Reminders given up, and reminders with nobody to tell (decisions.md D67)


def _claim_digest(key: str, kind: str, now: datetime) -> StaffAlert | None:
    """Like ``claim``, but a failed digest is retried however many times it failed.

    It is sent through the mail server the reminders could not reach: it must outlast the outage.
    ``created_at`` becomes the moment this attempt counts up to.
    """
    try:
        with transaction.atomic():
            return StaffAlert.objects.create(key=key, kind=kind, attempts=1, created_at=now)
    except IntegrityError:
        pass
    retried = StaffAlert.objects.filter(key=key, status=StaffAlert.Status.FAILED).update(
        status=StaffAlert.Status.SENDING, attempts=F("attempts") + 1, created_at=now
    )
    return StaffAlert.objects.get(key=key) if retried else None


def _digest(kind: str, rows, now: datetime, send: Callable[[int, dict, list[str]], str]) -> bool:
    """At most one email per REMINDER_ALERT_INTERVAL_SECONDS, counting the rows given up since the last one sent.

    The key names the previous digest's moment, so two workers checking at once claim the same key
    and one of them sends; a digest that failed is retried under the same key with a later count.
    """
    last = StaffAlert.objects.filter(kind=kind, status=StaffAlert.Status.SENT).order_by("-created_at").first()
    if last and last.created_at > now - timedelta(seconds=settings.REMINDER_ALERT_INTERVAL_SECONDS):
        return False
    since = last.created_at if last else None
    rows = rows.filter(given_up_at__lte=now, **({"given_up_at__gt": since} if since else {}))
    if not rows.exists():
        return False
    alert = _claim_digest(f"{kind}:after:{since.isoformat() if since else 'start'}", kind, now)
    if alert is None:
        return False
    return deliver(alert, lambda to: send(rows, since, to))


def _reminder_list_url(status: str) -> str:
    return f"{settings.PORTAL_BASE_URL}{reverse('admin:tokens_reminder_changelist')}?status__exact={status}"


def _send_undelivered(rows, since, to: list[str]) -> str:
    counts = rows.aggregate(
        late=Count("pk", filter=Q(status=Reminder.Status.UNDELIVERED)),
        refused=Count("pk", filter=Q(status=Reminder.Status.FAILED)),
    )
    gate = MailOutage.objects.filter(pk=1).first()
    state = (
        f"it has failed {gate.failures} time(s) in a row since {gate.since:%d %b %Y %H:%M} UTC: {gate.last_error}"
        if gate and gate.failures
        else "it is answering again now"
    )
    status = Reminder.Status.UNDELIVERED if counts["late"] else Reminder.Status.FAILED
    figures = {**counts, "count": counts["late"] + counts["refused"], "since": since, "outage": state,
               "list_url": _reminder_list_url(status)}
    return emails.send_reminders_undelivered(figures, to)


def _send_nobody(rows, since, to: list[str]) -> str:
    figures = {"count": rows.count(), "since": since, "list_url": _reminder_list_url(Reminder.Status.NOBODY)}
    return emails.send_reminders_nobody(figures, to)


def check_reminder_alerts(now: datetime | None = None) -> dict[str, bool]:
    """Beat: tell staff about reminders given up (not delivered in time, refused) and nobody to tell."""
    now = now or timezone.now()
    given_up = Reminder.objects.filter(status__in=(Reminder.Status.UNDELIVERED, Reminder.Status.FAILED))
    nobody = Reminder.objects.filter(status=Reminder.Status.NOBODY)
    return {
        REMINDERS_UNDELIVERED: _digest(REMINDERS_UNDELIVERED, given_up, now, _send_undelivered),
        REMINDERS_NOBODY: _digest(REMINDERS_NOBODY, nobody, now, _send_nobody),
    }
