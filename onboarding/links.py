"""Absolute links into the onboarding flow, for other apps (through tokens.links) and emails."""

from __future__ import annotations

from .invitations import invitation_url, new_invitation
from .models import Invitation


def _reconnect_invitation(token) -> tuple[Invitation, str]:
    configuration = token.configuration or (token.parent.configuration if token.parent_id else None)
    if configuration is None:
        raise ValueError(f"Token #{token.pk} has no login configuration to reconnect through.")
    contact = token.granted_by
    return new_invitation(
        token.client,
        configuration,
        contact=contact,
        email=contact.email if contact else "",
        mode=Invitation.Mode.RECONNECT,
    )


def reconnect_url(token) -> str:
    """A signed, expiring reconnect link for the token's client and configuration.

    Registered with tokens.links (OnboardingConfig.ready) for reminder emails. Each call creates
    a new reconnect Invitation (so each email's link can be tracked and expires).
    """
    invitation, link_key = _reconnect_invitation(token)
    invitation.save(force_insert=True)
    return invitation_url(link_key)


def reconnect_urls(tokens) -> list[str | Exception]:
    """``reconnect_url`` for each token in turn (one new invitation each), stored in one INSERT.

    Where no link can be made for a token (an offboarded client, no configuration) its item is the
    exception saying why, so the others are still made. A database error raises.
    """
    links: list[str | Exception] = []
    invitations = []
    for token in tokens:
        try:
            invitation, link_key = _reconnect_invitation(token)
        except Exception as exc:  # this token's link only; the sender fails its message with it
            links.append(exc)
            continue
        invitations.append(invitation)
        links.append(invitation_url(link_key))
    Invitation.objects.bulk_create(invitations)
    return links
