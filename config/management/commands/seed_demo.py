"""Idempotent demo data: a staff login, configurations, clients in every status, tokens
expiring at different times, and the simulator's fake Meta world to match."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from onboarding.models import ClientBusiness, Contact, LoginConfiguration
from tokens.models import AccessToken, Asset, AssetGrant

STAFF_USERNAME = "staff"
DEFAULT_STAFF_PASSWORD = "demo-staff-password"

CONFIGURATIONS = [
    {
        "config_id": "700100000000001",
        "name": "Ads management (system user)",
        "token_type": "system_user",
        "variant": "standard",
        "permissions": ["ads_management", "ads_read", "business_management", "pages_show_list"],
        "asset_types": ["ad_account", "page"],
        "token_expiry": "never",
        "description": "Lets us run and report on your ad campaigns.",
    },
    {
        "config_id": "700100000000002",
        "name": "Pages and Instagram (user)",
        "token_type": "user",
        "variant": "standard",
        "permissions": ["pages_show_list", "pages_read_engagement", "instagram_basic", "public_profile"],
        "asset_types": ["page", "instagram_account"],
        "token_expiry": "60_days",
        "description": "Lets us read engagement on your Pages and Instagram account.",
    },
    {
        "config_id": "700100000000003",
        "name": "WhatsApp Embedded Signup",
        "token_type": "system_user",
        "variant": "whatsapp_embedded_signup",
        "permissions": ["whatsapp_business_management", "whatsapp_business_messaging", "business_management"],
        "asset_types": ["whatsapp_business_account"],
        "token_expiry": "60_days",
        "description": "Connects your WhatsApp Business account so we can message your customers.",
    },
    {
        "config_id": "700100000000004",
        "name": "Catalog sync (system user, 60 days)",
        "token_type": "system_user",
        "variant": "standard",
        "permissions": ["catalog_management", "business_management"],
        "asset_types": ["catalog"],
        "token_expiry": "60_days",
        "description": "Keeps your product catalog in sync with your shop.",
    },
]

# (name, status, configuration index or None, token kind, days until expiry or None, assets)
CLIENTS = [
    ("Blue Harbor Coffee", "invited", None, None, None, []),
    ("Northwind Outfitters", "onboarding", None, None, None, []),
    ("Acme Bakery", "active", 0, "system_user", None, [("ad_account", "Acme Ads"), ("page", "Acme Bakery")]),
    ("Sunrise Yoga", "active", 1, "user", 20, [("page", "Sunrise Yoga"), ("instagram_account", "@sunriseyoga")]),
    ("Lumen Dental", "needs_reauth", 1, "user", 5, [("page", "Lumen Dental Clinic")]),
    ("Harbor Freight Lines", "active", 2, "system_user", 12, [("whatsapp_business_account", "Harbor Freight WA")]),
    ("Maple Home Goods", "active", 3, "system_user", 2, [("catalog", "Maple Home Catalog")]),
    ("Granite Fitness", "disconnected", 0, "system_user", None, [("ad_account", "Granite Ads")]),
    ("Old Mill Books", "offboarded", None, None, None, []),
]


def slug(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())[:20]


class Command(BaseCommand):
    help = "Create (or refresh) the demo data. Safe to run any number of times."

    def handle(self, *args, **options):
        password = os.environ.get("DEMO_STAFF_PASSWORD", DEFAULT_STAFF_PASSWORD)
        with transaction.atomic():
            self.seed_staff(password)
            configurations = [self.seed_configuration(spec) for spec in CONFIGURATIONS]
            for row in CLIENTS:
                self.seed_client(configurations, *row)
        self.seed_simulator(configurations)
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
        self.stdout.write(f"Staff login: username={STAFF_USERNAME} password={password}")
        self.stdout.write(f"Admin: {settings.PORTAL_BASE_URL}/admin/")

    def seed_staff(self, password: str) -> None:
        user, _ = get_user_model().objects.get_or_create(
            username=STAFF_USERNAME, defaults={"email": "staff@provider.test"}
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()

    def seed_configuration(self, spec: dict) -> LoginConfiguration:
        configuration, _ = LoginConfiguration.objects.update_or_create(config_id=spec["config_id"], defaults=spec)
        return configuration

    def seed_client(self, configurations, name, status, config_index, kind, days_left, assets) -> None:
        client, created = ClientBusiness.objects.get_or_create(
            name=name,
            defaults={"status": status, "notification_emails": f"alerts@{slug(name)}.test"},
        )
        contact, _ = Contact.objects.get_or_create(
            client=client, email=f"owner@{slug(name)}.test", defaults={"name": f"{name} owner"}
        )
        if not created or config_index is None:
            return
        now = timezone.now()
        token_status = "active"
        if status == "disconnected":
            token_status = "invalid"
        elif days_left is not None and days_left <= 14:
            token_status = "expiring"
        token = AccessToken.objects.create(
            client=client,
            configuration=configurations[config_index],
            kind=kind,
            value=f"EAADEMO{secrets.token_urlsafe(48)}",
            meta_app_id=settings.META_APP_ID,
            meta_user_id=str(10_000_000 + client.pk),
            granted_by=contact,
            scopes=configurations[config_index].permissions,
            issued_at=now - timedelta(days=30),
            expires_at=now + timedelta(days=days_left) if days_left is not None else None,
            data_access_expires_at=now + timedelta(days=60) if kind == "user" else None,
            status=token_status,
            status_reason="Error validating access token: the session has been invalidated (190/492)"
            if token_status == "invalid"
            else "",
            error_code=190 if token_status == "invalid" else None,
        )
        for index, (asset_kind, asset_name) in enumerate(assets):
            asset, _ = Asset.objects.get_or_create(
                kind=asset_kind,
                meta_id=f"{client.pk:03d}{index:03d}000{len(asset_name)}",
                defaults={"name": asset_name, "client": client},
            )
            AssetGrant.objects.get_or_create(
                token=token,
                asset=asset,
                defaults={
                    "user_access_expire_time": now + timedelta(days=days_left + 3)
                    if kind == "user" and days_left
                    else None
                },
            )

    def seed_simulator(self, configurations) -> None:
        if not apps.is_installed("simulator"):
            return
        from simulator import api as simulator

        simulator.seed_world()
        base = settings.PORTAL_BASE_URL
        simulator.register_app(
            app_id=settings.META_APP_ID,
            app_secret=settings.META_APP_SECRET,
            redirect_uris=[f"{base}/connect/callback/"],
            deauthorize_url=f"{base}/meta/deauthorize/",
            data_deletion_url=f"{base}/meta/data-deletion/",
            webhook_url=f"{base}/meta/webhooks/",
        )
        for configuration in configurations:
            simulator.register_configuration(
                config_id=configuration.config_id,
                token_type=configuration.token_type,
                permissions=configuration.permissions,
                asset_types=configuration.asset_types,
                token_expiry=configuration.token_expiry,
            )
