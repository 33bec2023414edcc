"""Celery tasks of the token lifecycle: thin callers of tokens.reminders and tokens.sweep.

Arguments are ids, never tokens. Every task re-reads the rows it is given and does
nothing when the work is no longer due, so a redelivered or duplicated message is harmless.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import transaction

from . import reminders


@shared_task(name="tokens.plan_reminders")
def plan_reminders() -> dict:
    result = reminders.plan_reminders()
    if reminders.due_reminder_count():
        transaction.on_commit(send_reminders.delay)
    return {"planned": result.planned, "reactivated": result.reactivated, "cancelled": result.cancelled}


@shared_task(name="tokens.send_reminders")
def send_reminders() -> dict:
    """Send one batch; a full batch re-queues the task, so a backlog drains without long tasks."""
    result = reminders.send_due_reminders(worker=send_reminders.request.hostname or "")
    if result.claimed >= settings.REMINDER_BATCH_SIZE:
        transaction.on_commit(send_reminders.delay)
    return {
        "claimed": result.claimed,
        "sent": result.sent,
        "retried": result.retried,
        "failed": result.failed,
        "cancelled": result.cancelled,
        "released": result.released,
    }
