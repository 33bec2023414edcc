"""The reconnect link a reminder email carries.

Links and invitations belong to onboarding, which depends on tokens, not the other way round:
onboarding registers its builder in ``OnboardingConfig.ready()``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError

ReconnectUrlBuilder = Callable[[object], str]
# Many links at once (one INSERT): a list in the tokens' order, an item that could not be made being
# the exception that says why.
ReconnectUrlsBuilder = Callable[[list], list]

_builder: ReconnectUrlBuilder | None = None
_many_builder: ReconnectUrlsBuilder | None = None


def register_reconnect_url_builder(builder: ReconnectUrlBuilder, many: ReconnectUrlsBuilder | None = None) -> None:
    """Set the function that turns a token into an absolute, signed reconnect link (and, ``many``, a list)."""
    global _builder, _many_builder
    _builder, _many_builder = builder, many


def reconnect_url(token) -> str:
    """A signed, expiring link bound to the token's client and configuration."""
    if _builder is None:
        raise ImproperlyConfigured("No reconnect link builder is registered (onboarding registers one when loaded).")
    return _builder(token)


def reconnect_urls(tokens: list) -> list:
    """A new link for each token (a token twice: two links), in order; an item that could not be made
    is the exception that says why. Stored in one INSERT when the builder can; one at a time if not.
    """
    if _many_builder is not None:
        return _many_builder(tokens)
    links = []
    for token in tokens:
        try:
            links.append(reconnect_url(token))
        except DatabaseError:
            raise
        except Exception as exc:  # this token's link only
            links.append(exc)
    return links
