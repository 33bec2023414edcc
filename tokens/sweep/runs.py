"""A sweep's bookkeeping: which tokens are due, the SweepRun that follows their chunks, its end."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F
from django.utils import timezone

from ..models import AccessToken, SweepRun
from .state import ChunkResult

JOB = "health_sweep"


def due_tokens(now: datetime):
    return AccessToken.objects.filter(status__in=AccessToken.LIVE_STATUSES, next_check_at__lte=now)


def start_sweep(now: datetime | None = None, chunk_size: int | None = None) -> tuple[SweepRun, list[list[int]]]:
    """Record a SweepRun, claim the due tokens and split them into chunks of ids.

    The claim moves ``next_check_at`` forward by SWEEP_CLAIM_SECONDS, so the next beat does
    not pick the same tokens while these chunks are queued; a chunk that is lost lets its
    tokens come due again after that.
    """
    now = now or timezone.now()
    chunk_size = chunk_size or settings.SWEEP_CHUNK_SIZE
    claim_until = now + timedelta(seconds=settings.SWEEP_CLAIM_SECONDS)
    with transaction.atomic():
        # A run whose chunks were lost (worker killed, queue purged) would show "running" forever.
        SweepRun.objects.filter(
            job=JOB,
            status=SweepRun.Status.RUNNING,
            started_at__lt=now - timedelta(seconds=settings.SWEEP_CLAIM_SECONDS),
        ).update(
            status=SweepRun.Status.FAILED,
            finished_at=now,
            last_error="Some chunks never reported; their tokens came due again and were swept later.",
        )
        ids = list(due_tokens(now).order_by("next_check_at", "pk").values_list("pk", flat=True))
        if ids:
            # Bounded IN lists: SQLite caps bound parameters.
            for start in range(0, len(ids), 5000):
                due_tokens(now).filter(pk__in=ids[start : start + 5000]).update(next_check_at=claim_until)
        chunks = [ids[start : start + chunk_size] for start in range(0, len(ids), chunk_size)]
        run = SweepRun.objects.create(
            job=JOB,
            started_at=now,
            chunks_total=len(chunks),
            items_total=len(ids),
            status=SweepRun.Status.RUNNING if chunks else SweepRun.Status.FINISHED,
            finished_at=None if chunks else now,
        )
    return run, chunks


def record_progress(run: SweepRun | None, result: ChunkResult, asked: int) -> None:
    """A chunk reported: count it, and close the run if it was the last."""
    if run is None:
        return
    SweepRun.objects.filter(pk=run.pk).update(
        chunks_done=F("chunks_done") + 1,
        items_done=F("items_done") + asked,
        errors=F("errors") + result.errors,
    )
    result.finished_run = finish_sweep(run.pk)


def record_chunk_failure(run_id: int | None, asked: int, error: BaseException) -> None:
    """A chunk crashed: count it as done with an error so the run still finishes; its tokens come due again."""
    if not run_id:
        return
    SweepRun.objects.filter(pk=run_id).update(
        chunks_done=F("chunks_done") + 1,
        items_done=F("items_done") + asked,
        errors=F("errors") + 1,
        last_error=f"{type(error).__name__}: {error}"[:1000],
    )
    finish_sweep(run_id)


def finish_sweep(run_id: int) -> bool:
    """Close the run once every chunk reported; the totals are read from the tokens themselves."""
    run = SweepRun.objects.filter(pk=run_id, status=SweepRun.Status.RUNNING).first()
    if run is None or run.chunks_done < run.chunks_total:
        return False
    statuses = dict(
        AccessToken.objects.filter(last_checked_at__gte=run.started_at)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
    )
    return bool(
        SweepRun.objects.filter(pk=run_id, status=SweepRun.Status.RUNNING).update(
            status=SweepRun.Status.FINISHED, finished_at=timezone.now(), totals={"statuses": statuses}
        )
    )
