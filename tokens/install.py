"""Storing what a client granted, and taking it away when Meta says so.

``install_token`` is the one way a token enters the database: token, assets and
grants in one transaction, the previous live token of the same client and
configuration superseded (never deleted), idempotent on the token's fingerprint.
Revocation and purge are driven by Meta's callbacks and webhooks.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from graph.permissions import asset_kind_for_scope

from . import crypto, health
from .events import record_event
from .models import AccessToken, Asset, AssetGrant
from .signals import (
    REVOKED_APP_REMOVED,
    REVOKED_BY_STAFF,
    REVOKED_DATA_DELETION,
    REVOKED_DEAUTHORIZED,
    token_installed,
    tokens_revoked,
)

logger = logging.getLogger(__name__)

@dataclass
class GrantedAsset:
    kind: str
    meta_id: str
    name: str = ""
    business_id: str | None = None
    scopes: list[str] = field(default_factory=list)


@dataclass
class InstallResult:
    token: AccessToken
    created: bool
    superseded: AccessToken | None = None
    grants: list[AssetGrant] = field(default_factory=list)


def as_datetime(value) -> datetime | None:
    """Meta's times: epoch seconds (0 = never) or already a datetime."""
    if value in (None, 0, ""):
        return None
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(int(value), tz=UTC)


def granted_assets(granular_scopes: Iterable[dict], asset_refs: Iterable) -> list[GrantedAsset]:
    """Merge the asset edges (with names) and granular_scopes target ids (what the token covers).

    ``asset_refs`` are ``graph.types.AssetRef``-like objects (kind, meta_id, name, business_id).
    """
    assets: dict[str, GrantedAsset] = {}
    valid_kinds = set(Asset.Kind.values)
    for ref in asset_refs:
        kind = getattr(ref, "kind", None)
        meta_id = str(getattr(ref, "meta_id", "") or "")
        if kind not in valid_kinds or not meta_id:
            logger.info("Ignoring an asset of unknown kind %r", kind)
            continue
        assets[meta_id] = GrantedAsset(
            kind=kind,
            meta_id=meta_id,
            name=getattr(ref, "name", "") or "",
            business_id=getattr(ref, "business_id", None),
        )
    for entry in granular_scopes or []:
        scope = entry.get("scope", "")
        for target in entry.get("target_ids") or []:
            target = str(target)
            if target not in assets:
                # Listed in granular_scopes but by no asset edge: the permission says what it is.
                kind = asset_kind_for_scope(scope)
                if kind is None:
                    continue
                assets[target] = GrantedAsset(kind=kind, meta_id=target)
            if scope not in assets[target].scopes:
                assets[target].scopes.append(scope)
    return list(assets.values())


def _upsert_assets(client, granted: list[GrantedAsset]) -> dict[str, Asset]:
    stored: dict[str, Asset] = {}
    for item in granted:
        asset, created = Asset.objects.get_or_create(
            kind=item.kind, meta_id=item.meta_id, defaults={"name": item.name, "client": client}
        )
        changed = []
        if item.name and asset.name != item.name:
            asset.name = item.name
            changed.append("name")
        if asset.client_id is None:
            asset.client = client
            changed.append("client")
        if changed and not created:
            asset.save(update_fields=[*changed, "updated_at"])
        stored[item.meta_id] = asset
    return stored


@transaction.atomic
@sensitive_variables("value")
def install_token(
    *,
    client,
    configuration,
    kind: str,
    value: str,
    info,
    assets: list[GrantedAsset],
    granted_by=None,
    actor: str = "client",
) -> InstallResult:
    """Store a token with its assets and grants; supersede the previous live token of the same pair.

    ``info`` is a ``graph.types.TokenInfo``-like object (app_id, user_id, scopes,
    granular_scopes, issued_at, expires_at, data_access_expires_at). Installing the
    same token value twice returns the stored row and changes nothing.
    """
    # Serialises installs for one client, so two callbacks can't both supersede.
    type(client).objects.select_for_update().filter(pk=client.pk).first()
    existing = AccessToken.objects.filter(fingerprint=crypto.fingerprint(value)).first()
    if existing is not None:
        # Meta may hand back the very token we hold (a system user's token is per business and
        # app): no second row, but the person's latest choice of assets is what it covers now.
        if existing.is_live() and assets:
            apply_token_assets(existing, info, assets, actor=actor)
        return InstallResult(token=existing, created=False, grants=list(existing.grants.select_related("asset")))

    previous = (
        AccessToken.objects.select_for_update()
        .filter(client=client, configuration=configuration, status__in=AccessToken.LIVE_STATUSES)
        .exclude(kind__in=AccessToken.DERIVED_KINDS)
        .first()
    )
    # Tokens Meta already called invalid are replaced as well: their "ended" reminders stop (D72).
    broken = list(
        AccessToken.objects.select_for_update()
        .filter(client=client, configuration=configuration, status=AccessToken.Status.INVALID)
        .exclude(kind__in=AccessToken.DERIVED_KINDS)
        .order_by("-pk")
    )
    for replaced in filter(None, [previous, *broken]):
        replaced.status = AccessToken.Status.SUPERSEDED
        replaced.status_reason = "Replaced by a new token from the same configuration."
        replaced.save(update_fields=["status", "status_reason", "updated_at"])
    previous = previous or next(iter(broken), None)

    now = timezone.now()
    try:
        with transaction.atomic():
            token = AccessToken.objects.create(
                client=client,
                configuration=configuration,
                kind=kind,
                value=value,
                meta_app_id=str(getattr(info, "app_id", "") or ""),
                meta_user_id=str(getattr(info, "user_id", "") or ""),
                granted_by=granted_by,
                scopes=list(getattr(info, "scopes", None) or []),
                granular_scopes=list(getattr(info, "granular_scopes", None) or []),
                issued_at=as_datetime(getattr(info, "issued_at", None)) or now,
                expires_at=as_datetime(getattr(info, "expires_at", None)),
                data_access_expires_at=as_datetime(getattr(info, "data_access_expires_at", None)),
                last_checked_at=now,
                next_check_at=now,
            )
    except IntegrityError:
        # Another request stored this very token between our lookup and insert.
        existing = AccessToken.objects.filter(fingerprint=crypto.fingerprint(value)).first()
        if existing is None:
            raise
        transaction.set_rollback(True)
        return InstallResult(token=existing, created=False, grants=list(existing.grants.select_related("asset")))

    stored_assets = _upsert_assets(client, assets)
    grants = [
        AssetGrant.objects.create(
            token=token, asset=stored_assets[item.meta_id], scopes=item.scopes, last_checked_at=now
        )
        for item in assets
    ]

    asset_ids = [item.meta_id for item in assets]
    status, reason = health.token_status(token, health.token_soonest_end(token), now)
    if (status, reason) != (token.status, token.status_reason):
        token.status, token.status_reason = status, reason
        token.save(update_fields=["status", "status_reason", "updated_at"])
    for replaced in [each for each in dict.fromkeys([previous, *broken]) if each is not None]:
        replaced.superseded_by = token
        replaced.save(update_fields=["superseded_by", "updated_at"])
        health.supersede_grants(replaced)
        record_event(
            AccessToken.Status.SUPERSEDED,
            token=replaced,
            actor=actor,
            message=f"Superseded by token #{token.pk}.",
            data={"superseded_by": token.pk},
        )
    if previous is not None:
        record_event(
            "reconnected",
            token=token,
            actor=actor,
            message=f"Reconnected with {len(grants)} asset(s), replacing token #{previous.pk}.",
            data={"assets": asset_ids, "replaces": previous.pk},
        )
    else:
        record_event(
            "installed",
            token=token,
            actor=actor,
            message=f"Installed with {len(grants)} asset(s).",
            data={"assets": asset_ids},
        )
    health.refresh_clients([client.pk])
    token_installed.send(sender=AccessToken, token_id=token.pk, replaced_token_id=previous.pk if previous else None)
    return InstallResult(token=token, created=True, superseded=previous, grants=grants)


def _tokens_of_user(meta_user_id: str):
    # Resolved to ids: row locks can't be taken across the outer join to the grantor (PostgreSQL).
    ids = AccessToken.objects.filter(
        Q(meta_user_id=meta_user_id) | Q(granted_by__meta_user_id=meta_user_id)
    ).values_list("pk", flat=True)
    return AccessToken.objects.filter(pk__in=list(ids))


def _revoke(tokens, *, actor: str, reason: str, cause: str, actor_user=None) -> list[AccessToken]:
    revoked = []
    now = timezone.now()
    for token in tokens.select_for_update().exclude(status=AccessToken.Status.REVOKED):
        token.status = AccessToken.Status.REVOKED
        token.status_reason = reason[:300]
        token.revoked_at = now
        token.save(update_fields=["status", "status_reason", "revoked_at", "updated_at"])
        token.grants.exclude(status=AssetGrant.Status.REVOKED).update(status=AssetGrant.Status.REVOKED)
        record_event(AccessToken.Status.REVOKED, token=token, actor=actor, actor_user=actor_user, message=reason)
        revoked.append(token)
    if revoked:
        health.refresh_clients({token.client_id for token in revoked})
        tokens_revoked.send(sender=AccessToken, token_ids=[token.pk for token in revoked], cause=cause)
    return revoked


def _with_granular_children(tokens):
    ids = list(tokens.values_list("pk", flat=True))
    return AccessToken.objects.filter(Q(pk__in=ids) | Q(parent_id__in=ids))


@transaction.atomic
def revoke_tokens_for_user(meta_user_id: str, *, actor: str = "meta", reason: str = "") -> list[AccessToken]:
    """The person removed our app (deauthorize callback): their tokens, and tokens derived from them, end."""
    if not meta_user_id:
        return []
    reason = reason or "The person who granted access removed the app."
    tokens = _with_granular_children(_tokens_of_user(str(meta_user_id)))
    return _revoke(tokens, actor=actor, reason=reason, cause=REVOKED_DEAUTHORIZED)


@transaction.atomic
def revoke_tokens_for_business(
    business_id: str, *, config_id: str | None = None, actor: str = "meta", reason: str = ""
) -> list[AccessToken]:
    """The business uninstalled our integration: every token of that client (for that configuration) ends."""
    if not business_id:
        return []
    tokens = AccessToken.objects.filter(client__meta_business_id=str(business_id))
    if config_id:
        tokens = tokens.filter(
            Q(configuration__config_id=str(config_id)) | Q(parent__configuration__config_id=config_id)
        )
    reason = reason or "The business removed the integration."
    return _revoke(_with_granular_children(tokens), actor=actor, reason=reason, cause=REVOKED_APP_REMOVED)


def revoke_token(token: AccessToken, *, actor_user=None, graph=None) -> list[AccessToken]:
    """Staff revoke one token: Meta removes our app's permissions for it, then it (and the granular
    tokens derived from it) are marked revoked with who did it. Returns the tokens revoked.

    Meta is asked first and outside any transaction; a token Meta already calls invalid has nothing
    left to remove there and is revoked here all the same. Any other error from Meta propagates and
    changes nothing, so staff can try again.
    """
    from graph.errors import InvalidTokenError

    if token.status == AccessToken.Status.REVOKED:
        return []
    value = token.value
    if value:
        if graph is None:
            from common.meta import graph_client

            graph = graph_client()
        with contextlib.suppress(InvalidTokenError):  # already dead at Meta: nothing left to remove there
            graph.revoke_permissions(value)
    who = actor_user.get_username() if actor_user is not None else "staff"
    with transaction.atomic():
        return _revoke(
            _with_granular_children(AccessToken.objects.filter(pk=token.pk)),
            actor=f"staff:{who}",
            actor_user=actor_user,
            reason=f"Revoked by {who}: the app's permissions were removed at Meta.",
            cause=REVOKED_BY_STAFF,
        )


@transaction.atomic
def purge_user_data(meta_user_id: str, *, actor: str = "meta") -> int:
    """Data deletion request: the person's tokens are revoked and their values and ids erased.

    Rows stay (as revoked, empty) so the audit trail keeps its shape; nothing that
    identifies the person or grants access remains. Returns how many tokens were purged.
    """
    if not meta_user_id:
        return 0
    tokens = _with_granular_children(_tokens_of_user(str(meta_user_id)))
    _revoke(tokens, actor=actor, reason="Deleted at the person's request.", cause=REVOKED_DATA_DELETION)
    purged = 0
    for token in tokens.select_for_update():
        token.value = None
        token.fingerprint = None
        token.meta_user_id = ""
        token.save(update_fields=["value", "fingerprint", "meta_user_id", "updated_at"])
        record_event("data_deleted", token=token, actor=actor, message="Token value and user id erased.")
        purged += 1
    return purged


def refresh_token_assets(token: AccessToken, graph=None, *, actor: str = "system") -> dict[str, list[str]]:
    """Re-read what a token covers from Meta; add new grants, mark vanished ones removed.

    Raises the Graph client's errors (nothing is changed then).
    """
    if graph is None:
        from common.meta import graph_client

        graph = graph_client()
    value = token.value
    info = graph.debug_token(value)
    system_user_id = info.user_id if token.kind != AccessToken.Kind.USER else None
    refs = graph.list_assets(value, system_user_id=system_user_id)
    granted = granted_assets(info.granular_scopes or [], refs)
    return apply_token_assets(token, info, granted, actor=actor)


@transaction.atomic
def apply_token_assets(token: AccessToken, info, granted: list[GrantedAsset], *, actor: str = "system") -> dict:
    token = AccessToken.objects.select_for_update().get(pk=token.pk)
    now = timezone.now()
    token.scopes = list(getattr(info, "scopes", None) or token.scopes)
    token.granular_scopes = list(getattr(info, "granular_scopes", None) or [])
    token.last_checked_at = now
    token.save(update_fields=["scopes", "granular_scopes", "last_checked_at", "updated_at"])

    stored_assets = _upsert_assets(token.client, granted)
    current = {grant.asset.meta_id: grant for grant in token.grants.select_related("asset")}
    added, removed = [], []
    for item in granted:
        grant = current.get(item.meta_id)
        if grant is None:
            AssetGrant.objects.create(
                token=token, asset=stored_assets[item.meta_id], scopes=item.scopes, last_checked_at=now
            )
            added.append(item.meta_id)
        else:
            if grant.status == AssetGrant.Status.REMOVED:
                grant.status = AssetGrant.Status.ACTIVE
                grant.removed_at = None
                added.append(item.meta_id)
            grant.scopes = item.scopes
            grant.last_checked_at = now
            grant.save(update_fields=["status", "removed_at", "scopes", "last_checked_at"])
    seen = {item.meta_id for item in granted}
    for meta_id, grant in current.items():
        if meta_id not in seen and grant.status in (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING):
            grant.status = AssetGrant.Status.REMOVED
            grant.removed_at = now
            grant.save(update_fields=["status", "removed_at"])
            removed.append(meta_id)
    if added or removed:
        record_event(
            "assets_changed",
            token=token,
            actor=actor,
            message=f"{len(added)} asset(s) added, {len(removed)} removed.",
            data={"added": added, "removed": removed},
        )
    health.refresh_clients([token.client_id])
    return {"added": added, "removed": removed}


@transaction.atomic
def revoke_permission(meta_user_id: str, permission: str, *, target_ids=None, actor: str = "meta") -> list[AssetGrant]:
    """The person revoked one permission (``permissions`` webhook): the grants it affected are marked.

    A grant that keeps other permissions stays, minus the revoked one; a grant left with none
    is "permission removed" (the person can grant it again by reconnecting; nothing is dead).
    The permission moves from the tokens' scopes to their ``missing_permissions``, as the
    sweep does when Meta stops listing it.
    """
    if not meta_user_id or not permission:
        return []
    targets = {str(t) for t in target_ids or []}
    affected = []
    clients: set[int] = set()
    tokens = _tokens_of_user(str(meta_user_id)).filter(status__in=AccessToken.LIVE_STATUSES).select_for_update()
    for token in tokens:
        if permission in token.scopes and not targets:
            token.scopes = [scope for scope in token.scopes if scope != permission]
            token.granular_scopes = [entry for entry in token.granular_scopes if entry.get("scope") != permission]
            token.missing_permissions = sorted({*token.missing_permissions, permission})
            token.permissions_removed_at = token.permissions_removed_at or timezone.now()
            token.status_reason = token.permission_note()
            token.save(
                update_fields=[
                    "scopes", "granular_scopes", "missing_permissions", "permissions_removed_at", "status_reason",
                    "updated_at",
                ]
            )  # fmt: skip
        for grant in token.grants.select_related("asset").exclude(status=AssetGrant.Status.REVOKED):
            if permission not in grant.scopes or (targets and grant.asset.meta_id not in targets):
                continue
            grant.scopes = [scope for scope in grant.scopes if scope != permission]
            if not grant.scopes:
                grant.status = AssetGrant.Status.PERMISSION_REMOVED
            grant.save(update_fields=["scopes", "status"])
            affected.append(grant)
        record_event(
            "assets_changed",
            token=token,
            actor=actor,
            message=f"Permission {permission} revoked by the person.",
            data={"permission": permission, "grants": [grant.pk for grant in affected if grant.token_id == token.pk]},
        )
        clients.add(token.client_id)
    health.refresh_clients(clients)
    return affected
