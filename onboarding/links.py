"""Absolute links into the onboarding flow, for other apps (through tokens.links) and emails."""

from __future__ import annotations

from .invitations import create_invitation, invitation_url
from .models import Invitation


def reconnect_url(token) -> str:
    """A signed, expiring reconnect link for the token's client and configuration.

    Registered with tokens.links (OnboardingConfig.ready) for reminder emails. Each call creates
    a new reconnect Invitation (so each email's link can be tracked and expires).
    """
    configuration = token.configuration or (token.parent.configuration if token.parent_id else None)
    if configuration is None:
        raise ValueError(f"Token #{token.pk} has no login configuration to reconnect through.")
    contact = token.granted_by
    _, link_key = create_invitation(
        token.client,
        configuration,
        contact=contact,
        email=contact.email if contact else "",
        mode=Invitation.Mode.RECONNECT,
    )
    return invitation_url(link_key)
