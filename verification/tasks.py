"""Periodic jobs (beat entries in config/settings.py, "verification" block). Thin callers of the services."""

from __future__ import annotations

from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from . import alerts, ledger


@shared_task(name="verification.send_deadline_alerts")
def send_deadline_alerts() -> int:
    return alerts.send_deadline_alerts()


@shared_task(name="verification.check_upkeep")
def check_upkeep() -> bool:
    return alerts.check_upkeep()


@shared_task(name="verification.flush_ledger")
def flush_ledger() -> int:
    return ledger.flush()


@shared_task(name="verification.prune_ledger")
def prune_ledger() -> int:
    return ledger.prune(timezone.now() - timedelta(days=settings.VERIFICATION_LEDGER_RETENTION_DAYS))


@shared_task(name="verification.check_reminder_alerts")
def check_reminder_alerts() -> dict:
    return alerts.check_reminder_alerts()
