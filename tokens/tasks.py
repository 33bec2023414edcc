"""Celery tasks of the token lifecycle: thin callers of tokens.reminders and tokens.sweep.

Arguments are ids, never tokens. Every task re-reads the rows it is given and does
nothing when the work is no longer due, so a redelivered or duplicated message is harmless.
"""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import transaction

from . import reminders, sweep


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
        "messages": result.messages,
        "retried": result.retried,
        "failed": result.failed,
        "cancelled": result.cancelled,
        "released": result.released,
    }


@shared_task(name="tokens.start_health_sweep")
def start_health_sweep() -> dict:
    """Beat: claim the due tokens and fan chunks of ids out to any number of workers."""
    run, chunks = sweep.start_sweep()
    for chunk in chunks:
        transaction.on_commit(lambda chunk=chunk: check_token_chunk.delay(run.pk, chunk))
    return {"run": run.pk, "tokens": run.items_total, "chunks": len(chunks)}


@shared_task(name="tokens.check_token_chunk")
def check_token_chunk(run_id: int, token_ids: list[int]) -> dict:
    try:
        result = sweep.check_tokens(token_ids, run_id=run_id)
    except Exception as error:
        sweep.record_chunk_failure(run_id, len(token_ids), error)
        raise
    if result.finished_run:
        transaction.on_commit(plan_reminders.delay)
    return {**result.totals(), "skipped": result.skipped}

