from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ConsoleConfig(AppConfig):
    """The staff console: the admin site (brand, two factors), roles, the first screen, the client page."""

    name = "console"
    verbose_name = "Staff console"
    default = True

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from .roles import sync_roles_after_migrate

        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="console.sync_roles")


class PortalAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, with the portal's site as ``admin.site``."""

    default = False
    default_site = "console.sites.PortalAdminSite"
