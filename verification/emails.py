"""Emails to staff administrators: one function per email, subject/text/html templates side by side."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from common.emails import send_templated_email


def _send(name: str, context: dict, recipients: list[str]) -> str:
    context = {**context, "dashboard_url": settings.PORTAL_BASE_URL + reverse("verification_dashboard"),
               "portal_name": settings.PORTAL_NAME}
    return send_templated_email(name, context, recipients)


def send_verification_deadline(record, stage: int, days_left: int, recipients: list[str]) -> str:
    return _send(
        "verification_deadline",
        {"record": record, "stage": stage, "days_left": days_left, "passed": days_left < 0},
        recipients,
    )


def send_upkeep_at_risk(figures, recipients: list[str]) -> str:
    return _send("upkeep_at_risk", {"figures": figures, "rule": figures.rule, "problems": figures.problems()},
                 recipients)


def send_reminders_undelivered(figures: dict, recipients: list[str]) -> str:
    return _send("staff_reminders_undelivered", figures, recipients)


def send_reminders_nobody(figures: dict, recipients: list[str]) -> str:
    return _send("staff_reminders_nobody", figures, recipients)
