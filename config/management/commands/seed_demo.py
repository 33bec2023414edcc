"""Idempotent demo data: a staff login, configurations, clients in every status, tokens
expiring at different times, and the simulator's fake Meta world to match."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from onboarding.models import ClientBusiness, Contact, LoginConfiguration
from tokens.models import AccessToken, Asset, AssetGrant
from verification import services as verification_services
from verification.models import AppRole, TechProviderVerification

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

# The simulator's fake world (simulator.api.BUSINESSES / PEOPLE): clients with tokens map onto it.
ACME, BISTRO, COBALT, GLOBEX = "9100000000000001", "9100000000000002", "9100000000000003", "9100000000000004"
ALICE, CARLA, GUS = "1000000000000001", "1000000000000003", "1000000000000005"


@dataclass(frozen=True)
class DemoClient:
    name: str
    status: str
    configuration: int | None = None  # index into CONFIGURATIONS
    business_id: str | None = None  # in the simulator
    person_id: str | None = None  # who granted a user token
    days_left: int | None = None  # token expiry; None = never


CLIENTS = [
    DemoClient("Blue Harbor Coffee", "invited"),
    DemoClient("Northwind Outfitters", "onboarding"),
    DemoClient("Acme Bakery", "active", 0, ACME),
    DemoClient("Bistro Nord", "active", 1, BISTRO, ALICE, days_left=20),
    DemoClient("Cobalt Cycles", "needs_reauth", 1, COBALT, CARLA, days_left=5),
    DemoClient("Globex Media", "active", 3, GLOBEX, days_left=2),
    DemoClient("Granite Fitness", "disconnected"),
    DemoClient("Old Mill Books", "offboarded"),
]


def slug(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())[:20]


class Command(BaseCommand):
    help = "Create (or refresh) the demo data. Safe to run any number of times."

    def handle(self, *args, **options):
        password = os.environ.get("DEMO_STAFF_PASSWORD", DEFAULT_STAFF_PASSWORD)
        simulator_on = apps.is_installed("simulator")
        with transaction.atomic():
            self.seed_staff(password)
            configurations = [self.seed_configuration(spec) for spec in CONFIGURATIONS]
            if simulator_on:
                self.seed_simulator(configurations)
            for demo in CLIENTS:
                self.seed_client(configurations, demo, with_token=simulator_on)
            self.seed_verification()
            # Every client's connection, the day it breaks and why, as install and the sweep keep them.
            from tokens.health import refresh_due

            refresh_due(everything=True)
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

    def seed_client(self, configurations, demo: DemoClient, *, with_token: bool) -> None:
        client, created = ClientBusiness.objects.get_or_create(
            name=demo.name,
            defaults={
                "status": demo.status,
                "meta_business_id": demo.business_id,
                "notification_emails": f"alerts@{slug(demo.name)}.test",
            },
        )
        contact, _ = Contact.objects.get_or_create(
            client=client, email=f"owner@{slug(demo.name)}.test", defaults={"name": f"{demo.name} owner"}
        )
        if created and with_token and demo.configuration is not None:
            self.seed_token(client, contact, configurations[demo.configuration], demo)

    def seed_token(self, client, contact, configuration: LoginConfiguration, demo: DemoClient) -> None:
        """A real simulator token, stored as onboarding would have stored it."""
        from simulator import api as simulator
        from simulator.models import SimAsset

        assets = list(
            SimAsset.objects.filter(owner__business_id=demo.business_id, kind__in=configuration.asset_types)
        )
        asset_ids = [asset.asset_id for asset in assets]
        is_user = configuration.token_type == "user"
        value = simulator.issue_token(
            token_type=configuration.token_type,
            business_id=demo.business_id,
            person_id=demo.person_id,
            config_id=configuration.config_id,
            asset_ids=asset_ids,
            expires_in=timedelta(days=demo.days_left) if demo.days_left is not None else None,
        )
        now = timezone.now()
        expires_at = now + timedelta(days=demo.days_left) if demo.days_left is not None else None
        token = AccessToken.objects.create(
            client=client,
            configuration=configuration,
            kind=configuration.token_type,
            value=value,
            meta_app_id=settings.META_APP_ID,
            meta_user_id=demo.person_id if is_user else simulator.system_user_id(demo.business_id),
            granted_by=contact,
            scopes=configuration.permissions,
            granular_scopes=[{"scope": scope, "target_ids": asset_ids} for scope in configuration.permissions],
            issued_at=now,
            expires_at=expires_at,
            data_access_expires_at=now + timedelta(days=90) if is_user else None,
            status=self.token_status(demo),
            # The client that needs reauthorization does so because Meta stopped accepting its token.
            status_reason="Meta: the session was invalidated (demo)." if demo.status == "needs_reauth" else "",
            last_checked_at=now,
        )
        for sim_asset in assets:
            asset, _ = Asset.objects.get_or_create(
                kind=sim_asset.kind, meta_id=sim_asset.asset_id, defaults={"name": sim_asset.name, "client": client}
            )
            AssetGrant.objects.get_or_create(token=token, asset=asset)

    @staticmethod
    def token_status(demo: DemoClient) -> str:
        if demo.status == "needs_reauth":
            return "invalid"
        return "expiring" if demo.days_left is not None and demo.days_left <= 14 else "active"

    def seed_verification(self) -> None:
        provider, created = TechProviderVerification.objects.get_or_create(
            meta_business_id="9199999999999999", defaults={"name": "Our provider business", "is_provider": True}
        )
        if created:
            # Meta's email arrived 40 days ago: 20 days left to get verified.
            verification_services.change_status(
                provider, "required", note="Demo data", notified_on=timezone.localdate() - timedelta(days=40)
            )
        AppRole.objects.get_or_create(
            meta_user_id=ALICE, defaults={"name": "Alice Admin", "role": "developer", "email": "alice@acme.example"}
        )

    def seed_simulator(self, configurations) -> None:
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
                name=configuration.name,
            )
