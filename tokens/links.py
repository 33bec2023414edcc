"""The reconnect link a reminder email carries.

Links and invitations belong to onboarding, which depends on tokens, not the other way round:
onboarding registers its builder in ``OnboardingConfig.ready()``.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured

ReconnectUrlBuilder = Callable[[object], str]

_builder: ReconnectUrlBuilder | None = None


def register_reconnect_url_builder(builder: ReconnectUrlBuilder) -> None:
    """Set the function that turns a token into an absolute, signed reconnect link."""
    global _builder
    _builder = builder


def reconnect_url(token) -> str:
    """A signed, expiring link bound to the token's client and configuration."""
    if _builder is None:
        raise ImproperlyConfigured("No reconnect link builder is registered (onboarding registers one when loaded).")
    return _builder(token)
