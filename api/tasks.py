"""Celery tasks of the API: thin callers."""

from __future__ import annotations

from celery import shared_task

from . import audit


@shared_task(name="api.prune_uses")
def prune_uses() -> int:
    return audit.prune()
