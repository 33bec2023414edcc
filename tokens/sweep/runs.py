"""A sweep's bookkeeping: which tokens are due, the SweepRun that follows them, its end, the reaper.

A run owns its tokens from ``start_sweep`` on (``sweep_run``, ``sweep_pending``). A chunk
handles a token once: Meta answered (checked), Meta gave no usable answer (an error), or it
was not asked (deferred); each outcome is counted in the transaction that writes it, so the
run's figures are exact however often a chunk is delivered. The run finishes when none of
its live tokens is pending; ``reap`` (beat) gives orphaned leases and overdue runs to new
chunks, and fails a run that still has unhandled tokens after its second deadline, with
their count (decisions.md D60-D62).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from ..models import AccessToken, SweepRun
from .state import ChunkResult

JOB = "health_sweep"
ID_BATCH = 5000  # bounded IN lists: SQLite caps bound parameters


def due_tokens(now: datetime):
    return AccessToken.objects.filter(status__in=AccessToken.LIVE_STATUSES, next_check_at__lte=now)


def pending_tokens(run_id: int):
    """The run's live tokens that no chunk has handled yet."""
    return AccessToken.objects.filter(
        sweep_run_id=run_id, sweep_pending=True, status__in=AccessToken.LIVE_STATUSES
    )


def run_deadline(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.SWEEP_RUN_DEADLINE_SECONDS)


def chunked(ids: list[int], size: int) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def start_sweep(now: datetime | None = None, chunk_size: int | None = None) -> tuple[SweepRun, list[list[int]]]:
    """Record a SweepRun, give it the due tokens and split them into chunks of ids.

    The tokens' ``next_check_at`` moves to the run's deadline, so the next beat does not pick
    them while their chunks are queued; a token the run never handles is due again then.
    """
    now = now or timezone.now()
    chunk_size = chunk_size or settings.SWEEP_CHUNK_SIZE
    deadline = run_deadline(now)
    with transaction.atomic():
        run = SweepRun.objects.create(job=JOB, started_at=now, deadline=deadline)
        ids = list(due_tokens(now).order_by("next_check_at", "pk").values_list("pk", flat=True))
        taken = 0
        for batch in chunked(ids, ID_BATCH):
            # The same condition again: a token another sweep took meanwhile is not counted here.
            taken += (
                due_tokens(now)
                .filter(pk__in=batch)
                .update(next_check_at=deadline, sweep_run=run, sweep_pending=True, claim_id="", claimed_until=None)
            )
        chunks = chunked(ids, chunk_size)
        run.chunks_total, run.items_total = len(chunks), taken
        if not taken:
            run.status, run.finished_at, run.totals = SweepRun.Status.FINISHED, now, totals_of(run)
        run.save(update_fields=["chunks_total", "items_total", "status", "finished_at", "totals"])
    return run, chunks


def record_outcomes(run: SweepRun | None, result: ChunkResult) -> None:
    """Count what a chunk wrote, in the transaction that wrote it."""
    if run is None or not result.handled:
        return
    SweepRun.objects.filter(pk=run.pk).update(
        chunks_done=F("chunks_done") + 1,
        items_done=F("items_done") + result.checked + result.invalid,
        items_invalid=F("items_invalid") + result.invalid,
        items_expiring=F("items_expiring") + result.expiring,
        items_deferred=F("items_deferred") + result.deferred,
        errors=F("errors") + result.errors,
    )


def record_chunk_failure(run_id: int | None, error: BaseException) -> None:
    """A chunk crashed: say why on the run. Its tokens stay pending; the reaper gives them to a new chunk."""
    if run_id:
        SweepRun.objects.filter(pk=run_id).update(last_error=f"{type(error).__name__}: {error}"[:1000])


def totals_of(run: SweepRun) -> dict:
    return {
        "checked": run.items_done,
        "statuses": {
            "active": run.items_done - run.items_invalid - run.items_expiring,
            "expiring": run.items_expiring,
            "invalid": run.items_invalid,
        },
        "deferred": run.items_deferred,
        "errors": run.errors,
        "unchecked": run.items_unchecked,
    }


def finish_if_done(run_id: int, now: datetime | None = None) -> bool:
    """Close the run once none of its live tokens is pending. Call it after the chunk's commit:
    two chunks finishing together each see the other's tokens handled only then."""
    if pending_tokens(run_id).exists():
        return False
    with transaction.atomic():
        run = SweepRun.objects.select_for_update().filter(pk=run_id, status=SweepRun.Status.RUNNING).first()
        if run is None:
            return False
        # Tokens revoked or superseded while pending: nothing left to do for them.
        AccessToken.objects.filter(sweep_run_id=run_id, sweep_pending=True).update(
            sweep_pending=False, claim_id="", claimed_until=None
        )
        run.status, run.finished_at, run.totals = SweepRun.Status.FINISHED, now or timezone.now(), totals_of(run)
        run.save(update_fields=["status", "finished_at", "totals"])
    return True


@dataclass
class Reaped:
    """What the reaper did: chunks to enqueue per run, runs finished, runs failed."""

    requeue: list[tuple[int, list[int]]] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    released: int = 0


def reap(now: datetime | None = None, chunk_size: int | None = None) -> Reaped:
    """Beat, every SWEEP_REAPER_SECONDS: nothing a dead worker held waits for long.

    - Tokens whose chunk lease ran out (the worker died, or passed its time limit) go to new
      chunks of the same run, at once.
    - A run past its deadline with unhandled tokens (a chunk message lost) queues them again
      once, with a new deadline; past that one it fails, with the count, and they are due again.
    - A running run with nothing pending (its last chunk died before closing it) is closed.
    """
    now = now or timezone.now()
    chunk_size = chunk_size or settings.SWEEP_CHUNK_SIZE
    reaped = Reaped()
    orphaned: dict[int, list[int]] = defaultdict(list)
    rows = AccessToken.objects.filter(
        sweep_pending=True,
        claimed_until__lt=now,
        status__in=AccessToken.LIVE_STATUSES,
        sweep_run__status=SweepRun.Status.RUNNING,
    ).values_list("sweep_run_id", "pk")
    for run_id, pk in rows.order_by("pk"):
        orphaned[run_id].append(pk)
    for run_id, ids in orphaned.items():
        with transaction.atomic():
            released = 0
            for batch in chunked(ids, ID_BATCH):
                # Releasing the lease also fences off a worker that was only slow: its write is refused.
                released += (
                    AccessToken.objects.filter(pk__in=batch, sweep_pending=True, claimed_until__lt=now)
                    .update(claim_id="", claimed_until=None)
                )  # fmt: skip
            chunks = chunked(ids, chunk_size)
            SweepRun.objects.filter(pk=run_id).update(chunks_total=F("chunks_total") + len(chunks))
        reaped.released += released
        reaped.requeue.extend((run_id, chunk) for chunk in chunks)

    pending = dict(
        AccessToken.objects.filter(
            sweep_pending=True, status__in=AccessToken.LIVE_STATUSES, sweep_run__status=SweepRun.Status.RUNNING
        )
        .order_by()
        .values_list("sweep_run_id")
        .annotate(n=Count("pk"))
    )
    for run in SweepRun.objects.filter(job=JOB, status=SweepRun.Status.RUNNING).order_by("pk"):
        if not pending.get(run.pk):
            if finish_if_done(run.pk, now):
                reaped.finished.append(run.pk)
            continue
        if run.deadline is None or run.deadline >= now or run.pk in orphaned:
            continue
        if run.requeues < settings.SWEEP_RUN_REQUEUES:
            reaped.requeue.extend((run.pk, chunk) for chunk in _requeue(run, now, chunk_size))
        else:
            _fail(run, now)
            reaped.failed.append(run.pk)
    return reaped


def _requeue(run: SweepRun, now: datetime, chunk_size: int) -> list[list[int]]:
    """The run's deadline passed with tokens unhandled: queue them again once, with a new deadline."""
    deadline = run_deadline(now)
    with transaction.atomic():
        # Tokens under a live lease are being checked right now: leave them to that chunk.
        free = pending_tokens(run.pk).exclude(claimed_until__gte=now)
        ids = list(free.order_by("pk").values_list("pk", flat=True))
        for batch in chunked(ids, ID_BATCH):
            free.filter(pk__in=batch).update(next_check_at=deadline, claim_id="", claimed_until=None)
        chunks = chunked(ids, chunk_size)
        SweepRun.objects.filter(pk=run.pk).update(
            deadline=deadline, requeues=F("requeues") + 1, chunks_total=F("chunks_total") + len(chunks)
        )
    return chunks


def _fail(run: SweepRun, now: datetime) -> None:
    """Past its last deadline: the run fails with the count of tokens it never handled; they are due again."""
    with transaction.atomic():
        run = SweepRun.objects.select_for_update().get(pk=run.pk)
        unchecked = pending_tokens(run.pk).update(
            sweep_pending=False, claim_id="", claimed_until=None, next_check_at=now
        )
        AccessToken.objects.filter(sweep_run_id=run.pk, sweep_pending=True).update(sweep_pending=False)
        run.items_unchecked = unchecked
        run.status, run.finished_at = SweepRun.Status.FAILED, now
        run.totals = totals_of(run)
        run.last_error = (
            f"{unchecked} token(s) were never checked by the deadline (queued again {run.requeues} time(s)); "
            "they are due again and the next sweep takes them."
        )
        run.save(update_fields=["items_unchecked", "status", "finished_at", "totals", "last_error"])
