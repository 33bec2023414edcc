"""Celery tasks of the token lifecycle: thin callers of tokens.reminders and tokens.sweep.

Arguments are ids, never tokens. Every task re-reads the rows it is given and does
nothing when the work is no longer due, so a redelivered or duplicated message is harmless.
"""

from __future__ import annotations

from celery import shared_task
from celery.signals import celeryd_after_setup
from django.conf import settings
from django.db import transaction

from . import health, reminders, sweep


@shared_task(name="tokens.plan_reminders")
def plan_reminders() -> dict:
    result = reminders.plan_reminders()
    transaction.on_commit(dispatch_reminders.delay)
    return {"planned": result.planned, "reactivated": result.reactivated, "cancelled": result.cancelled}


@shared_task(name="tokens.dispatch_reminders")
def dispatch_reminders() -> dict:
    """Beat, and after planning: one sender per full batch due, up to REMINDER_SENDERS at once (D68)."""
    wanted = reminders.senders_wanted()
    for _ in range(wanted):
        transaction.on_commit(send_reminders.delay)
    return {"senders": wanted}


@shared_task(name="tokens.send_reminders")
def send_reminders() -> dict:
    """Send one batch; a full batch queues its successor, so each of the senders drains the backlog."""
    request = send_reminders.request
    # The task id is part of the claim: delivered again after its worker process was lost, the
    # task gives back at once what its first delivery held (decisions.md D65).
    result = reminders.send_due_reminders(worker=request.hostname or "", task_id=request.id or "")
    if result.claimed >= settings.REMINDER_BATCH_SIZE and not result.outage:
        transaction.on_commit(send_reminders.delay)
    return {
        "claimed": result.claimed,
        "sent": result.sent,
        "messages": result.messages,
        "retried": result.retried,
        "failed": result.failed,
        "cancelled": result.cancelled,
        "released": result.released,
        "outage": result.outage,
    }


@celeryd_after_setup.connect
def release_claims_of_a_previous_start(sender=None, **kwargs) -> None:
    """A worker node (re)starting: the reminders the same node held before belong to a dead process."""
    from django.db import connections
    from django.utils import timezone

    if not sender:
        return
    try:
        reminders.release_node_claims(str(sender), before=timezone.now())
    finally:
        connections.close_all()  # prefork children must not inherit this connection


@shared_task(name="tokens.start_health_sweep")
def start_health_sweep() -> dict:
    """Beat: give the due tokens to a run and fan chunks of ids out to any number of workers."""
    run, chunks = sweep.start_sweep()
    _enqueue([(run.pk, chunk) for chunk in chunks])
    return {"run": run.pk, "tokens": run.items_total, "chunks": len(chunks)}


@shared_task(
    name="tokens.check_token_chunk",
    time_limit=settings.SWEEP_CHUNK_TIME_LIMIT,
    soft_time_limit=settings.SWEEP_CHUNK_SOFT_TIME_LIMIT,
)
def check_token_chunk(run_id: int, token_ids: list[int]) -> dict:
    # The task id is the lease's owner: a message delivered again after its worker process
    # died (same id) takes its tokens back at once instead of waiting for the lease to run out.
    try:
        result = sweep.check_tokens(token_ids, run_id=run_id, task_id=check_token_chunk.request.id)
    except Exception as error:
        sweep.record_chunk_failure(run_id, error)
        raise
    if result.finished_run:
        transaction.on_commit(plan_reminders.delay)
    return {**result.totals(), "skipped": result.skipped}


@shared_task(name="tokens.reap_sweeps")
def reap_sweeps() -> dict:
    """Beat: orphaned leases and overdue runs go to new chunks; a run past its last deadline fails."""
    reaped = sweep.reap()
    _enqueue(reaped.requeue)
    if reaped.finished:
        transaction.on_commit(plan_reminders.delay)
    return {"requeued": len(reaped.requeue), "released": reaped.released, "finished": reaped.finished,
            "failed": reaped.failed}  # fmt: skip


def _enqueue(chunks: list[tuple[int, list[int]]]) -> None:
    for run_id, chunk in chunks:
        transaction.on_commit(lambda run_id=run_id, chunk=chunk: check_token_chunk.delay(run_id, chunk))


@shared_task(name="tokens.refresh_connection_health")
def refresh_connection_health(everything: bool = False) -> dict:
    """Beat: the connections whose state time changed; every client when the provider's standing did."""
    return health.refresh_due(everything=everything)
