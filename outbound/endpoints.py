"""Registering endpoints: a URL staff may point at, a secret shown once, enabling again after a disabling."""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from . import signing
from .models import WebhookEndpoint


def validate_endpoint_url(url: str) -> None:
    """https (http only where OUTBOUND_REQUIRE_HTTPS is off), a host, no credentials, no fragment."""
    parts = urlsplit(url)
    allowed = ("https",) if settings.OUTBOUND_REQUIRE_HTTPS else ("https", "http")
    if parts.scheme not in allowed:
        raise ValidationError(f"The URL must start with {' or '.join(f'{scheme}://' for scheme in allowed)}.")
    if not parts.hostname:
        raise ValidationError("The URL has no host.")
    if parts.username or parts.password:
        raise ValidationError(
            "Put no user name or password in the URL: it is shown in the admin. Receivers check the signature instead."
        )
    if parts.fragment:
        raise ValidationError("A URL with a #fragment can't be called: remove it.")


def issue_secret(endpoint: WebhookEndpoint, now: datetime | None = None) -> str:
    """Give an endpoint a new signing secret (not saved here); returns it, for showing once.

    The previous secret, if any, keeps signing alongside for OUTBOUND_SECRET_OVERLAP_HOURS.
    """
    now = now or timezone.now()
    secret = signing.new_secret()
    if endpoint.pk and endpoint.secret:
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_until = now + timedelta(hours=settings.OUTBOUND_SECRET_OVERLAP_HOURS)
    endpoint.secret = secret
    endpoint.secret_set_at = now
    return secret


def rotate_secret(endpoint: WebhookEndpoint) -> str:
    secret = issue_secret(endpoint)
    endpoint.save(update_fields=["secret", "previous_secret", "previous_secret_until", "secret_set_at", "updated_at"])
    return secret


def enable_again(endpoint_ids) -> int:
    """Disabled endpoints go back to work with a clean record of failures."""
    return WebhookEndpoint.objects.filter(pk__in=list(endpoint_ids), is_active=False).update(
        is_active=True, failing_since=None, disabled_at=None, disabled_reason="", staff_alert_error="",
        updated_at=timezone.now(),
    )  # fmt: skip


def disable(endpoint_ids, reason: str) -> int:
    """Staff turn endpoints off by hand (no alert: they know)."""
    now = timezone.now()
    return WebhookEndpoint.objects.filter(pk__in=list(endpoint_ids), is_active=True).update(
        is_active=False, disabled_at=now, disabled_reason=reason[:300], staff_told_at=now, updated_at=now
    )
