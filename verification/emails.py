"""Emails to staff administrators: one function per email, subject/text/html templates side by side."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse


def _send(name: str, context: dict, recipients: list[str]) -> str:
    context = {**context, "dashboard_url": settings.PORTAL_BASE_URL + reverse("verification_dashboard"),
               "portal_name": settings.PORTAL_NAME}
    subject = " ".join(render_to_string(f"emails/{name}_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"emails/{name}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
    )
    message.attach_alternative(render_to_string(f"emails/{name}.html", context), "text/html")
    message.send()
    return subject


def send_verification_deadline(record, stage: int, days_left: int, recipients: list[str]) -> str:
    return _send(
        "verification_deadline",
        {"record": record, "stage": stage, "days_left": days_left, "passed": days_left < 0},
        recipients,
    )


def send_upkeep_at_risk(figures, recipients: list[str]) -> str:
    return _send("upkeep_at_risk", {"figures": figures, "rule": figures.rule, "problems": figures.problems()},
                 recipients)
