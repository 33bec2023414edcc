"""Seed Meta's two upkeep rules, the two access levels and the permission catalogue."""

from decimal import Decimal

from django.db import migrations

from graph import permissions


def seed(apps, schema_editor):
    UpkeepRule = apps.get_model("verification", "UpkeepRule")
    MarketingAccessLevel = apps.get_model("verification", "MarketingAccessLevel")
    PermissionAccess = apps.get_model("verification", "PermissionAccess")
    if not UpkeepRule.objects.exists():
        UpkeepRule.objects.create(
            name="Marketing API Access Tier (Meta, 2026-05-04)",
            min_calls=500,
            calls_window_days=15,
            max_error_rate=Decimal("15"),
            error_window="calls",
            error_window_calls=500,
            is_active=True,
            source="Meta renamed Ads Management Standard Access to the Marketing API Access Tier on 2026-05-04.",
        )
        UpkeepRule.objects.create(
            name="Ads Management Standard Access (seed document)",
            min_calls=1500,
            calls_window_days=15,
            max_error_rate=Decimal("10"),
            error_window="days",
            error_window_days=15,
            is_active=False,
            source="The seed document's rule.",
        )
    if not MarketingAccessLevel.objects.exists():
        MarketingAccessLevel.objects.create(level="standard", system_users=1, admin_system_users=1, is_current=True)
        MarketingAccessLevel.objects.create(level="advanced", system_users=10, admin_system_users=1)
    known = set(PermissionAccess.objects.values_list("permission", flat=True))
    PermissionAccess.objects.bulk_create(
        PermissionAccess(permission=name)
        for name in sorted((permissions.FLFB_SUPPORTED | permissions.TECH_PROVIDER_GATED) - known)
    )


class Migration(migrations.Migration):
    dependencies = [("verification", "0002_standing_ledger_rules_alerts")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
