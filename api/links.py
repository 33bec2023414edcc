"""The reconnect link the API hands to a service: one per token for a day, not one per request (D43).

``tokens.links.reconnect_url`` makes a new single-use invitation on every call (so each email's
link is tracked). A service that asks for a token many times a second would make as many
invitations; so the API keeps the link it made for a token in the cache, encrypted with the
tokens' key (the invitation table keeps only hashes of keys, D11, and a cache dump must not hold
usable links), for ``REUSE_SECONDS``, well inside the invitation's own lifetime. A cache that
fails, or a key that no longer decrypts the entry, only means a new link.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from onboarding.invitations import InvitationRefused
from tokens import crypto, links

logger = logging.getLogger(__name__)

REUSE_SECONDS = 24 * 3600  # a day: the link stays valid INVITATION_TTL_DAYS (14) from when it was made


def _cache_key(token) -> str:
    # The creation time too: a database made anew (tests, a restore) reuses ids, never both.
    return f"api:reconnect-link:{token.pk}:{token.created_at.timestamp():.6f}"


def reconnect_link(token) -> str | None:
    """A reconnect link for the token's client and configuration, or None when none can be made."""
    reuse = min(REUSE_SECONDS, settings.INVITATION_TTL_DAYS * 86400 // 2)
    try:
        kept = cache.get(_cache_key(token))
        if kept is not None:
            return crypto.decrypt(kept)
    except Exception as error:  # a cache that fails or an entry no key reads: make a new link
        logger.warning("Reconnect link not reused (%s)", error.__class__.__name__)
    try:
        url = links.reconnect_url(token)
    except (ValueError, ImproperlyConfigured, InvitationRefused):  # nothing to reconnect through
        return None
    try:
        cache.set(_cache_key(token), crypto.encrypt(url), timeout=reuse)
    except Exception as error:
        logger.warning("Reconnect link not kept for reuse (%s)", error.__class__.__name__)
    return url
