"""Which clients a campaign asks: one function per filter, each answering (client, configuration) pairs.

The configuration is the one the client connected through (the link reconnects through it, or, when a
campaign moves clients to a system user, the one the page explains the move from). Clients the portal
would refuse (offboarded) are left out by the caller, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from onboarding.models import ClientBusiness, LoginConfiguration
from tokens.models import AccessToken, AssetGrant

from .models import Campaign

GRANT_LIVE = (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING, AssetGrant.Status.ENDED)


@dataclass(frozen=True)
class Target:
    client_id: int
    configuration_id: int


def _pairs(rows) -> list[Target]:
    """(client, configuration, parent's configuration) rows, a derived token's configuration being its parent's."""
    found = dict.fromkeys(Target(client, configuration or parent) for client, configuration, parent in rows
                          if configuration or parent)  # fmt: skip
    return list(found)


def _token_rows(tokens):
    return tokens.values_list("client_id", "configuration_id", "parent__configuration_id").distinct()


def access_ending(days: int, now=None) -> list[Target]:
    """Every live token whose own access ends within ``days``, and every asset grant whose access does."""
    now = now or timezone.now()
    horizon = now + timedelta(days=int(days))
    tokens = AccessToken.objects.annotate(ends=AccessToken.ends_at_expression()).filter(
        status__in=AccessToken.LIVE_STATUSES, ends__lte=horizon
    )
    grants = AccessToken.objects.filter(
        status__in=AccessToken.LIVE_STATUSES,
        grants__status__in=GRANT_LIVE,
        grants__user_access_expire_time__lte=horizon,
    )
    return _pairs([*_token_rows(tokens), *_token_rows(grants)])


def invalid_tokens() -> list[Target]:
    """Every token Meta says is invalid and nobody has replaced yet."""
    return _pairs(_token_rows(AccessToken.objects.filter(status=AccessToken.Status.INVALID)))


def of_configuration(configuration_id: int) -> list[Target]:
    """Every client with a live or broken token of the configuration."""
    tokens = AccessToken.objects.filter(
        Q(configuration_id=configuration_id) | Q(parent__configuration_id=configuration_id),
        status__in=(*AccessToken.LIVE_STATUSES, AccessToken.Status.INVALID),
    )
    return _pairs(_token_rows(tokens))


def migrating_business(business_id: str = "") -> list[Target]:
    """Clients connected by a person's token whose grants Meta now says end (a managed-accounts move):
    the personal grant ends, a system user's does not. ``business_id``: only that client business."""
    tokens = AccessToken.objects.filter(
        kind=AccessToken.Kind.USER,
        status__in=AccessToken.LIVE_STATUSES,
        configuration__token_type=LoginConfiguration.TokenType.USER,
        grants__user_access_expire_time__isnull=False,
        grants__status__in=GRANT_LIVE,
    )
    if business_id:
        tokens = tokens.filter(client__meta_business_id=str(business_id))
    return _pairs(_token_rows(tokens))


def select(selection: str, params: dict) -> list[Target]:
    if selection == Campaign.Selection.ACCESS_ENDING:
        return access_ending(int(params.get("days") or 30))
    if selection == Campaign.Selection.INVALID_TOKENS:
        return invalid_tokens()
    if selection == Campaign.Selection.CONFIGURATION:
        return of_configuration(int(params["configuration_id"]))
    if selection == Campaign.Selection.MIGRATING_BUSINESS:
        return migrating_business(str(params.get("business_id") or ""))
    raise ValueError(f"Unknown selection {selection!r}.")


def clients_of(targets: list[Target]) -> dict[int, ClientBusiness]:
    return ClientBusiness.objects.in_bulk({target.client_id for target in targets})
