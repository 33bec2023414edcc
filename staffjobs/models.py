from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class StaffJob(models.Model):
    """One admin action run by a Celery worker: who asked, for what, how far it got, what came of it.

    The admin action only records the job and queues it; the worker calls the handler registered
    under ``kind`` (staffjobs.registry) and writes progress as it goes, so staff can watch the page.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting for a worker"
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Stopped by an error"

    kind = models.CharField(max_length=64, help_text="The registered handler that does the work.")
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_ids = models.JSONField(default=list, blank=True, help_text="Primary keys of the rows the job works on.")
    params = models.JSONField(default=dict, blank=True)
    items_total = models.PositiveIntegerField(default=0)
    items_done = models.PositiveIntegerField(default=0)
    outcome = models.JSONField(default=list, blank=True, help_text="[{level, text}]: what staff read when it ends.")
    result_url = models.CharField(max_length=300, blank=True, help_text="Where the job's result can be seen.")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"], name="staffjob_status_idx")]

    def __str__(self) -> str:
        return f"{self.title} ({self.get_status_display().lower()})"

    @property
    def is_done(self) -> bool:
        return self.status in (self.Status.FINISHED, self.Status.FAILED)

    def percent(self) -> int:
        if self.status == self.Status.FINISHED:
            return 100
        return round(100 * self.items_done / self.items_total) if self.items_total else 0
