"""Page tokens: derived from a user token, stored encrypted, swept like every token.

Meta hands a Page token per Page on ``/me/accounts``. From a long-lived user token it has no
expiry of its own (``expires_at: 0``) but dies with the user token's access, so the user
token is what the portal watches and reminds about: a Page token's end is its parent's
(``AccessToken.ends_at``), its reminders are the parent's, and reconnecting the user token
derives new Page tokens that supersede the old ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from graph.errors import GraphError
from graph.types import PageToken, TokenInfo

from . import crypto
from .events import record_event
from .health import supersede_grants
from .models import AccessToken, Asset, AssetGrant

logger = logging.getLogger(__name__)

LIVE_GRANTS = (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING)


def derive_page_tokens(token: AccessToken, graph=None) -> list[AccessToken]:
    """Ask Meta for the Page tokens of a live user token's Pages and store the new ones.

    Two Graph calls (``/me/accounts`` and one ``debug_token`` batch), then one transaction.
    Raises the Graph client's errors; nothing is stored then.
    """
    if token.kind != AccessToken.Kind.USER or not token.is_live():
        return []
    if graph is None:
        from common.meta import graph_client

        graph = graph_client()
    pages = graph.page_tokens(token.value)
    infos = graph.debug_tokens([page.access_token for page in pages]) if pages else []
    usable = [
        (page, info)
        for page, info in zip(pages, infos, strict=True)
        if isinstance(info, TokenInfo) and info.is_valid and info.type == "PAGE" and info.profile_id == page.page_id
    ]
    return store_page_tokens(token, usable)


@transaction.atomic
def store_page_tokens(parent: AccessToken, pages: Iterable[tuple[PageToken, TokenInfo]]) -> list[AccessToken]:
    """One Page token per Page the parent has a live grant on; the same value twice is stored once.

    A live Page token of the same client for the same Page that came from another token (the
    user token this one replaced) is superseded by the new one.
    """
    parent = AccessToken.objects.select_for_update().get(pk=parent.pk)
    if not parent.is_live():
        return []
    granted = {
        grant.asset.meta_id: grant
        for grant in parent.grants.select_related("asset").filter(
            asset__kind=Asset.Kind.PAGE, status__in=LIVE_GRANTS
        )
    }
    now = timezone.now()
    stored = []
    for page, info in pages:
        grant = granted.get(page.page_id)
        if grant is None:
            continue  # a Page the person did not grant us (or no longer does)
        if AccessToken.objects.filter(fingerprint=crypto.fingerprint(page.access_token)).exists():
            continue
        token = AccessToken.objects.create(
            client_id=parent.client_id,
            configuration_id=parent.configuration_id,
            kind=AccessToken.Kind.PAGE,
            value=page.access_token,
            parent=parent,
            meta_app_id=str(info.app_id or parent.meta_app_id),
            meta_user_id=str(info.user_id or parent.meta_user_id),
            granted_by_id=parent.granted_by_id,
            scopes=list(info.scopes),
            granular_scopes=list(info.granular_scopes),
            issued_at=info.issued_at or now,
            expires_at=info.expires_at,
            data_access_expires_at=info.data_access_expires_at,
            last_checked_at=now,
            next_check_at=now,
        )
        AssetGrant.objects.create(token=token, asset=grant.asset, scopes=list(grant.scopes), last_checked_at=now)
        replaced = _supersede_older(token, grant.asset)
        record_event(
            "installed",
            token=token,
            actor="system",
            message=f"Page token for {grant.asset.name or page.page_id} derived from token #{parent.pk}.",
            data={"page": page.page_id, "parent": parent.pk, "replaces": replaced},
        )
        stored.append(token)
    return stored


def _supersede_older(token: AccessToken, page: Asset) -> list[int]:
    older = (
        AccessToken.objects.select_for_update()
        .filter(
            client_id=token.client_id,
            kind=AccessToken.Kind.PAGE,
            status__in=AccessToken.LIVE_STATUSES,
            grants__asset=page,
        )
        .exclude(pk=token.pk)
    )
    replaced = []
    for old in older:
        old.status = AccessToken.Status.SUPERSEDED
        old.status_reason = "Replaced by a Page token derived from a newer user token."
        old.superseded_by = token
        old.save(update_fields=["status", "status_reason", "superseded_by", "updated_at"])
        supersede_grants(old)
        record_event(
            AccessToken.Status.SUPERSEDED, token=old, actor="system", message=f"Superseded by Page token #{token.pk}."
        )
        replaced.append(old.pk)
    return replaced


def derive_quietly(token: AccessToken, graph=None) -> list[AccessToken]:
    """``derive_page_tokens`` for callers that must not fail on it (the OAuth callback):
    a Graph error is logged and the next sweep tries again."""
    try:
        return derive_page_tokens(token, graph)
    except GraphError as error:
        logger.info("Page tokens of token %s not derived now (%s)", token.pk, type(error).__name__)
        return []


def tokens_missing_pages(tokens: Iterable[AccessToken]) -> list[AccessToken]:
    """Live user tokens with a live Page grant but no live Page token for it (one query)."""
    user_tokens = {token.pk: token for token in tokens if token.kind == AccessToken.Kind.USER and token.is_live()}
    if not user_tokens:
        return []
    page_grants = AssetGrant.objects.filter(
        token_id__in=list(user_tokens), asset__kind=Asset.Kind.PAGE, status__in=LIVE_GRANTS
    ).values_list("token_id", "asset_id")
    derived = set(
        AccessToken.objects.filter(
            parent_id__in=list(user_tokens), kind=AccessToken.Kind.PAGE, status__in=AccessToken.LIVE_STATUSES
        ).values_list("parent_id", "grants__asset_id")
    )
    missing = {token_id for token_id, asset_id in page_grants if (token_id, asset_id) not in derived}
    return [user_tokens[pk] for pk in sorted(missing)]
