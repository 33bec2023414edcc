"""Rows for tests, one plain function per model (the models are small; no factory library).

Each call makes distinct Meta ids (a sequence), so tests can make as many as they need.
"""

from __future__ import annotations

import itertools
from datetime import datetime

from django.conf import settings

from onboarding.models import ClientBusiness, Contact, LoginConfiguration
from tokens.models import AccessToken, Asset, AssetGrant
from verification.models import TechProviderVerification

_seq = itertools.count(1)
_DEFAULT = object()


def make_client(name: str = "Acme Bakery", notification_emails: str = "ops@acme.test", **fields) -> ClientBusiness:
    """An onboarded client (status active, a Meta business id) unless ``fields`` say otherwise."""
    n = next(_seq)
    fields.setdefault("meta_business_id", f"9{n:08d}")
    fields.setdefault("status", ClientBusiness.Status.ACTIVE)
    return ClientBusiness.objects.create(name=name, notification_emails=notification_emails, **fields)


def make_contact(client: ClientBusiness, email: str | None = None, **fields) -> Contact:
    n = next(_seq)
    return Contact.objects.create(
        client=client, email=email or f"person{n}@client.test", name=fields.pop("name", "Ana"), **fields
    )


def make_configuration(token_type: str = "user", **fields) -> LoginConfiguration:
    n = next(_seq)
    fields.setdefault("permissions", ["pages_show_list", "ads_read"])
    fields.setdefault("asset_types", ["page", "ad_account"])
    return LoginConfiguration.objects.create(
        name=fields.pop("name", f"Config {n}"), config_id=fields.pop("config_id", f"5{n:08d}"),
        token_type=token_type, **fields,
    )  # fmt: skip


def make_simulated_configuration(meta, token_type: str = "system_user", **fields) -> LoginConfiguration:
    """A configuration in the portal and the same one registered with the simulator (``simulated_meta``)."""
    configuration = make_configuration(token_type, **fields)
    meta.api.register_configuration(
        configuration.config_id, token_type, configuration.permissions, configuration.asset_types,
        configuration.token_expiry, app_id=meta.app_id,
    )  # fmt: skip
    return configuration


def install_simulated_token(meta, client, *, token_type: str = "user", contact=None, **issue) -> AccessToken:
    """A token as the OAuth callback stores it: issued by the simulator (``issue`` goes to
    ``api.issue_token``), inspected, its assets listed, installed with a configuration of its own."""
    from common.meta import graph_client
    from graph.permissions import USER_ONLY
    from tokens.install import granted_assets, install_token

    value = meta.api.issue_token(token_type=token_type, **issue)
    graph = graph_client()
    info = graph.debug_token(value)
    system_user_id = info.user_id if token_type != "user" else None
    assets = granted_assets(info.granular_scopes, graph.list_assets(value, system_user_id=system_user_id))
    return install_token(
        client=client,
        configuration=make_configuration(token_type, permissions=[s for s in info.scopes if s not in USER_ONLY]),
        kind=AccessToken.Kind.USER if token_type == "user" else AccessToken.Kind.SYSTEM_USER,
        value=value,
        info=info,
        assets=assets,
        granted_by=contact,
    ).token


def make_token(
    client: ClientBusiness | None = None,
    *,
    configuration=_DEFAULT,
    kind: str = AccessToken.Kind.USER,
    expires_at: datetime | None = None,
    granted_by: Contact | None = None,
    value: str | None = None,
    **fields,
) -> AccessToken:
    """A token as install stores it; ``configuration=None`` for one without (a granular token's)."""
    n = next(_seq)
    fields.setdefault("meta_user_id", f"7{n:08d}")
    return AccessToken.objects.create(
        client=client or make_client(name=f"Client {n}"),
        configuration=make_configuration() if configuration is _DEFAULT else configuration,
        kind=kind,
        value=value or f"EAAB-secret-token-value-{n}",
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


def make_verification_record(
    status: str = "not_required", is_provider: bool = True, **fields
) -> TechProviderVerification:
    """A Tech Provider verification record put straight into a status (tests of change_status start anywhere)."""
    n = next(_seq)
    record = TechProviderVerification.objects.create(
        name=fields.pop("name", f"Business {n}"), meta_business_id=f"7{n:08d}", is_provider=is_provider, **fields
    )
    TechProviderVerification.objects.filter(pk=record.pk).update(status=status)
    record.refresh_from_db()
    return record


def reconnect_url_stub(token: AccessToken) -> str:
    """Stands in for onboarding.links.reconnect_url in tests that don't need the real link (stub_reconnect_links)."""
    return f"{settings.PORTAL_BASE_URL}/invite/reconnect-{token.client_id}-{token.configuration_id}/"
