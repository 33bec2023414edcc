"""Sending an email from its three templates: ``emails/<name>_subject.txt``, ``<name>.txt``, ``<name>.html``."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import translation


def templated_email(
    name: str,
    context: dict,
    to: list[str],
    *,
    connection=None,
    headers: dict | None = None,
    language: str | None = None,
) -> EmailMultiAlternatives:
    """Render one message (plain text with an HTML alternative), ready to send.

    Rendered in ``language`` (default LANGUAGE_CODE), whatever language a request or task had active.
    """
    with translation.override(language or settings.LANGUAGE_CODE):
        subject = " ".join(render_to_string(f"emails/{name}_subject.txt", context).split())
        text = render_to_string(f"emails/{name}.txt", context)
        html = render_to_string(f"emails/{name}.html", context)
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=to,
        connection=connection,
        headers=headers,
    )
    message.attach_alternative(html, "text/html")
    return message


def send_templated_email(name: str, context: dict, to: list[str], **options) -> str:
    """Render and send one message (``templated_email``'s arguments); returns its subject."""
    message = templated_email(name, context, to, **options)
    message.send()
    return message.subject
