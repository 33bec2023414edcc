"""Staff operations on system-user tokens through Meta's token management endpoint (docs/design.md, flow 6).

``POST /{client_business_id}/system_user_access_tokens`` with ``appsecret_proof``:
``fetch_only`` reads the business integration system user's current token; otherwise a
granular token is derived for a subset of the original's assets and scopes, optionally
expiring in 60 days (then it gets reminders like any expiring token). The token values
never leave this module except into the encrypted field.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from graph.types import graph_id

from .events import record_event
from .models import AccessToken, Asset, AssetGrant, TokenEvent

SYSTEM_USER_KINDS = (AccessToken.Kind.SYSTEM_USER,)


class SystemUserTokenError(Exception):
    """A clear, secret-free reason the operation can't be done."""


def _require_system_user_token(token: AccessToken) -> None:
    if token.kind not in SYSTEM_USER_KINDS:
        raise SystemUserTokenError(f"Token #{token.pk} is not a system-user token.")
    if not token.is_live():
        raise SystemUserTokenError(f"Token #{token.pk} is {token.get_status_display().lower()}, not live.")
    if not token.client.meta_business_id:
        raise SystemUserTokenError(f"{token.client} has no Meta business id yet.")
    if not token.meta_user_id:
        raise SystemUserTokenError(f"Token #{token.pk} has no system user id.")


@sensitive_variables("current")
def fetch_current_system_user_token(token: AccessToken, *, actor_user=None, client=None) -> bool:
    """Read the system user's current token from Meta; store it if it changed. Returns True if it did."""
    _require_system_user_token(token)
    client = client or _graph()
    current = client.system_user_token(token.client.meta_business_id, token.value, token.meta_user_id, fetch_only=True)
    changed = current != token.value
    # Meta is asked everything first: no transaction (and no row lock) is held across a Graph call.
    info = client.debug_token(current) if changed else None
    with transaction.atomic():
        if changed:
            token = AccessToken.objects.select_for_update().get(pk=token.pk)
            token.value = current
            token.expires_at = info.expires_at
            token.data_access_expires_at = info.data_access_expires_at
            token.next_check_at = timezone.now()
            token.save(update_fields=["value", "fingerprint", "expires_at", "data_access_expires_at", "next_check_at"])
        record_event(
            TokenEvent.Kind.STAFF_ACTION,
            token=token,
            actor_user=actor_user,
            message="Fetched the current system-user token from Meta: "
            + ("it had changed and was stored." if changed else "unchanged."),
        )
    return changed


@sensitive_variables("value")
def create_granular_token(
    parent: AccessToken,
    *,
    assets: Sequence[Asset],
    scopes: Sequence[str],
    expires_in_60_days: bool = False,
    purpose: str = "",
    actor_user=None,
    client=None,
) -> AccessToken:
    """Derive a granular system-user token limited to these assets and scopes."""
    _require_system_user_token(parent)
    covered = set(
        parent.grants.filter(status__in=(AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING)).values_list(
            "asset_id", flat=True
        )
    )
    outside = [str(asset) for asset in assets if asset.pk not in covered]
    if outside:
        raise SystemUserTokenError(f"Not covered by token #{parent.pk}: {', '.join(outside)}.")
    unknown = [scope for scope in scopes if scope not in parent.scopes]
    if unknown:
        raise SystemUserTokenError(f"Not granted to token #{parent.pk}: {', '.join(unknown)}.")
    if not assets or not scopes:
        raise SystemUserTokenError("Choose at least one asset and one permission.")
    client = client or _graph()
    value = client.system_user_token(
        parent.client.meta_business_id,
        parent.value,
        parent.meta_user_id,
        assets=[graph_id(asset.kind, asset.meta_id) for asset in assets],
        scopes=list(scopes),
        expires_in_60_days=expires_in_60_days,
    )
    info = client.debug_token(value)
    now = timezone.now()
    with transaction.atomic():
        token = AccessToken.objects.create(
            client=parent.client,
            configuration=parent.configuration,
            kind=AccessToken.Kind.GRANULAR_SYSTEM_USER,
            value=value,
            parent=parent,
            meta_app_id=info.app_id or parent.meta_app_id,
            meta_user_id=info.user_id or parent.meta_user_id,
            granted_by=parent.granted_by,
            scopes=list(info.scopes or scopes),
            granular_scopes=list(info.granular_scopes),
            issued_at=info.issued_at or now,
            expires_at=info.expires_at,
            data_access_expires_at=info.data_access_expires_at,
            purpose=purpose[:200],
            last_checked_at=now,
            next_check_at=now,
        )
        AssetGrant.objects.bulk_create(
            [AssetGrant(token=token, asset=asset, scopes=list(scopes), last_checked_at=now) for asset in assets]
        )
        record_event(
            TokenEvent.Kind.GRANULAR_CREATED,
            token=token,
            actor_user=actor_user,
            message=f"Granular token from #{parent.pk}: {len(assets)} asset(s), {', '.join(scopes)}"
            + (", expires in 60 days." if expires_in_60_days else ", never expires."),
            data={"parent": parent.pk, "assets": [asset.meta_id for asset in assets], "scopes": list(scopes)},
        )
    return token


def _graph():
    from common.meta import graph_client

    return graph_client()
