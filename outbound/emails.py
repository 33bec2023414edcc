"""Emails about outgoing webhooks (to staff): one function per email, templates side by side."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from common.emails import send_templated_email


def send_endpoint_disabled(endpoint, recipients: list[str]) -> str:
    context = {
        "endpoint": endpoint,
        "portal_name": settings.PORTAL_NAME,
        "endpoint_url": settings.PORTAL_BASE_URL + reverse("admin:outbound_webhookendpoint_change", args=[endpoint.pk]),
        "retry_window_hours": settings.OUTBOUND_RETRY_WINDOW_HOURS,
    }
    return send_templated_email("webhook_endpoint_disabled", context, recipients)
