"""Small factories for the lifecycle tests (plain functions: the model is small)."""

from __future__ import annotations

import itertools
from datetime import datetime

from django.apps import apps
from django.conf import settings

from tokens.models import AccessToken, Asset, AssetGrant

_seq = itertools.count(1)


def reconnect_url_stub(token: AccessToken) -> str:
    """Stands in for onboarding.links.reconnect_url in tests that don't need the real link (stub_reconnect_links)."""
    return f"{settings.PORTAL_BASE_URL}/invite/reconnect-{token.client_id}-{token.configuration_id}/"


def make_client(name: str = "Acme Bakery", notification_emails: str = "ops@acme.test", **fields):
    ClientBusiness = apps.get_model("onboarding", "ClientBusiness")
    n = next(_seq)
    fields.setdefault("meta_business_id", f"9{n:08d}")
    return ClientBusiness.objects.create(name=name, status="active", notification_emails=notification_emails, **fields)


def make_contact(client, email: str = "ana@acme.test", **fields):
    Contact = apps.get_model("onboarding", "Contact")
    return Contact.objects.create(client=client, email=email, name=fields.pop("name", "Ana"), **fields)


def make_configuration(token_type: str = "user", **fields):
    LoginConfiguration = apps.get_model("onboarding", "LoginConfiguration")
    n = next(_seq)
    return LoginConfiguration.objects.create(
        name=fields.pop("name", f"Config {n}"),
        config_id=f"5{n:08d}",
        token_type=token_type,
        permissions=["pages_show_list", "ads_read"],
        asset_types=["page", "ad_account"],
        **fields,
    )


def make_token(
    client,
    *,
    configuration=None,
    kind: str = AccessToken.Kind.USER,
    expires_at: datetime | None = None,
    granted_by=None,
    value: str | None = None,
    **fields,
) -> AccessToken:
    n = next(_seq)
    return AccessToken.objects.create(
        client=client,
        configuration=configuration if configuration is not None else make_configuration(),
        kind=kind,
        value=value or f"EAAB-secret-token-value-{n}",
        meta_user_id=f"7{n:08d}",
        expires_at=expires_at,
        granted_by=granted_by,
        **fields,
    )


def make_asset(client, name: str = "Acme Page", kind: str = Asset.Kind.PAGE, meta_id: str | None = None) -> Asset:
    return Asset.objects.create(client=client, kind=kind, name=name, meta_id=meta_id or f"3{next(_seq):08d}")


def make_grant(token: AccessToken, asset: Asset, user_access_expire_time: datetime | None = None, **fields):
    return AssetGrant.objects.create(
        token=token, asset=asset, user_access_expire_time=user_access_expire_time, **fields
    )
