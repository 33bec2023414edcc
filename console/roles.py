"""Staff roles as groups: viewer, operator, administrator (docs/decisions.md D81).

The groups are created by a data migration (console 0001) and kept in step with this table
after every ``migrate`` (models added later get their permissions too, and a test database
flushed between tests gets its groups back). Superusers stand outside the roles.
"""

from __future__ import annotations

VIEWER, OPERATOR, ADMINISTRATOR = "Viewer", "Operator", "Administrator"
ROLES = (VIEWER, OPERATOR, ADMINISTRATOR)

# The apps whose data staff read. A new app of the portal is added here.
PORTAL_APPS = ("onboarding", "tokens", "verification", "staffjobs", "outbound", "connections", "api", "campaigns")

# Apps only administrators see at all: a service credential reaches every client's working tokens.
ADMINISTRATOR_ONLY_APPS = ("api",)

# What an operator may do beyond reading: act on clients and tokens (the admin's actions on
# a model need its "change" permission), keep contacts, resend reminders, revoke invitations.
OPERATOR_PERMISSIONS = {
    ("onboarding", "clientbusiness"): ("add", "change"),
    ("onboarding", "contact"): ("add", "change", "delete"),
    ("onboarding", "invitation"): ("change",),
    ("tokens", "accesstoken"): ("change",),
    ("tokens", "assetgrant"): ("change",),
    ("tokens", "reminder"): ("change",),
    # Operators run reconnect campaigns: start one, remind, close (campaigns.admin).
    ("campaigns", "campaign"): ("add", "change"),
    ("campaigns", "recipient"): ("change",),
}

# An administrator also runs the portal itself: configurations, verification, staff users and
# their devices, lockouts, API credentials (every permission of the portal's apps).
ADMINISTRATOR_EXTRA_APPS = ("auth", "otp_totp", "axes", "admin")


def role_permissions(permission_model) -> dict[str, set[int]]:
    """Permission ids per role, computed from the permissions that exist now."""
    rows = list(permission_model.objects.values_list("pk", "codename", "content_type__app_label",
                                                     "content_type__model"))
    viewer = {pk for pk, codename, app, model in rows
              if app in PORTAL_APPS and app not in ADMINISTRATOR_ONLY_APPS and codename == f"view_{model}"}
    operator = viewer | {
        pk for pk, codename, app, model in rows
        if any(codename == f"{verb}_{model}" for verb in OPERATOR_PERMISSIONS.get((app, model), ()))
    }
    administrator = {pk for pk, _, app, _ in rows if app in PORTAL_APPS or app in ADMINISTRATOR_EXTRA_APPS}
    return {VIEWER: viewer, OPERATOR: operator, ADMINISTRATOR: administrator}


def sync_roles(group_model, permission_model) -> None:
    """Create the groups if missing and give each exactly its role's permissions."""
    for name, permission_ids in role_permissions(permission_model).items():
        group, _ = group_model.objects.get_or_create(name=name)
        group.permissions.set(permission_ids)


def sync_roles_after_migrate(sender, app_config=None, apps=None, **kwargs) -> None:
    from django.apps import apps as live_apps

    # Once per migrate, after every app's permissions were created (they are made per app, in order).
    if app_config is not list(live_apps.get_app_configs())[-1]:
        return
    registry = apps or live_apps
    try:
        sync_roles(registry.get_model("auth", "Group"), registry.get_model("auth", "Permission"))
    except LookupError:
        return
