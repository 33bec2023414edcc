"""Sending an email from its three templates: ``emails/<name>_subject.txt``, ``<name>.txt``, ``<name>.html``."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string


def send_templated_email(
    name: str, context: dict, to: list[str], *, connection=None, headers: dict | None = None
) -> str:
    """Render and send one message (plain text with an HTML alternative); returns its subject."""
    subject = " ".join(render_to_string(f"emails/{name}_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"emails/{name}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=to,
        connection=connection,
        headers=headers,
    )
    message.attach_alternative(render_to_string(f"emails/{name}.html", context), "text/html")
    message.send()
    return subject
