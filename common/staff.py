"""Who hears about trouble the portal can't fix on its own (verification deadlines, upkeep, webhook endpoints)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model


def staff_alert_recipients() -> list[str]:
    """Active superusers with an email, plus VERIFICATION_STAFF_ALERT_EMAILS."""
    users = get_user_model().objects.filter(is_superuser=True, is_active=True).exclude(email="")
    addresses = {email.strip().lower() for email in users.values_list("email", flat=True)}
    addresses |= {email.strip().lower() for email in settings.VERIFICATION_STAFF_ALERT_EMAILS if email.strip()}
    return sorted(addresses)
