"""System checks for the outgoing-webhook settings."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

MIN_RETRY_WINDOW_HOURS = 24  # a receiver down for a day still gets every event


def retry_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    errors = []
    if settings.OUTBOUND_RETRY_WINDOW_HOURS < MIN_RETRY_WINDOW_HOURS:
        errors.append(checks.Error(
            f"OUTBOUND_RETRY_WINDOW_HOURS is {settings.OUTBOUND_RETRY_WINDOW_HOURS}: deliveries must be retried "
            f"for at least {MIN_RETRY_WINDOW_HOURS} hours.", id="outbound.E001",
        ))  # fmt: skip
    base, cap = settings.OUTBOUND_RETRY_BASE_SECONDS, settings.OUTBOUND_RETRY_CAP_SECONDS
    if base < 1 or cap < base:
        errors.append(checks.Error(
            "OUTBOUND_RETRY_BASE_SECONDS must be at least 1 and OUTBOUND_RETRY_CAP_SECONDS at least the base.",
            id="outbound.E002",
        ))  # fmt: skip
    if settings.OUTBOUND_DISABLE_AFTER_DAYS < 1:
        errors.append(checks.Error("OUTBOUND_DISABLE_AFTER_DAYS must be at least 1.", id="outbound.E003"))
    return errors


def register() -> None:
    checks.register(retry_settings, "outbound")
