"""Starting a staff job from an admin action, and running it in a worker (docs/decisions.md D83).

An action calls ``start_job``: the job row is written and queued after the request's commit.
The worker's ``run_job`` claims it (a conditional UPDATE, so a redelivered message does nothing),
calls the handler with a ``JobContext``, and records how it ended. No transaction is open while a
handler runs: each progress write commits on its own, so a handler's calls to Meta or to a mail
server are never inside one (the handlers' own writes are short transactions of their own).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from .models import StaffJob
from .registry import handler_for

logger = logging.getLogger(__name__)

SUCCESS, WARNING, ERROR = "success", "warning", "error"


def start_job(kind: str, *, title: str, target_ids: Sequence[int] = (), params: dict | None = None, user=None):
    if handler_for(kind) is None:
        raise LookupError(f"No staff job is registered as {kind!r}.")
    job = StaffJob.objects.create(
        kind=kind,
        title=title[:200],
        requested_by=user if getattr(user, "pk", None) else None,
        target_ids=[int(pk) for pk in target_ids],
        params=params or {},
        items_total=len(target_ids),
    )
    from .tasks import run_staff_job

    transaction.on_commit(lambda: run_staff_job.delay(job.pk))
    return job


class JobContext:
    """What a handler uses to report: progress as items finish, lines of outcome, a link to the result."""

    def __init__(self, job: StaffJob):
        self.job = job
        self.user = job.requested_by
        self.outcome: list[dict] = list(job.outcome)

    def note(self, level: str, text: str) -> None:
        self.outcome.append({"level": level, "text": text[:500]})
        StaffJob.objects.filter(pk=self.job.pk).update(outcome=self.outcome)

    def advance(self, items: int = 1) -> None:
        StaffJob.objects.filter(pk=self.job.pk).update(items_done=F("items_done") + items)

    def set_total(self, items: int) -> None:
        StaffJob.objects.filter(pk=self.job.pk).update(items_total=items)

    def set_result_url(self, url: str) -> None:
        StaffJob.objects.filter(pk=self.job.pk).update(result_url=url[:300])


def run_job(job_id: int) -> StaffJob | None:
    claimed = StaffJob.objects.filter(pk=job_id, status=StaffJob.Status.QUEUED).update(
        status=StaffJob.Status.RUNNING, started_at=timezone.now()
    )
    if not claimed:
        return None  # already run, or running elsewhere: a duplicate message
    job = StaffJob.objects.select_related("requested_by").get(pk=job_id)
    context = JobContext(job)
    status = StaffJob.Status.FINISHED
    try:
        handler_for(job.kind)(context, list(job.target_ids), **job.params)
    except Exception as error:
        # The message is ours, never the exception's text: it may carry a payload or a secret.
        logger.exception("Staff job %s (%s) failed", job.pk, job.kind)
        context.note(ERROR, f"The job stopped on an unexpected error ({error.__class__.__name__}); "
                            "what is listed above was done, nothing after it. Tell the developers.")
        status = StaffJob.Status.FAILED
    StaffJob.objects.filter(pk=job.pk).update(status=status, finished_at=timezone.now())
    job.refresh_from_db()
    return job
