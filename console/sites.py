"""The portal's admin site: branded with PORTAL_NAME, two factors required, the console's pages."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.shortcuts import redirect
from django.urls import path
from django.views.decorators.cache import never_cache

from . import two_factor


class PortalAdminSite(admin.AdminSite):
    login_form = two_factor.StaffLoginForm
    login_template = "admin/console/login.html"
    index_title = "Who breaks next"
    # The navigation column costs a third of a 1366-pixel screen; lists need it for their columns.
    enable_nav_sidebar = False

    @property
    def site_header(self) -> str:
        return settings.PORTAL_NAME

    @property
    def site_title(self) -> str:
        return f"{settings.PORTAL_NAME} staff"

    def has_permission(self, request) -> bool:
        """Every admin page (and every view wrapped by ``admin_view``) needs the second factor."""
        if not super().has_permission(request):
            return False
        return not two_factor.two_factor_required() or request.user.is_verified()

    def login(self, request, extra_context=None):
        user = request.user
        if (
            two_factor.two_factor_required()
            and user.is_authenticated
            and user.is_active
            and user.is_staff
            and not user.is_verified()
            and two_factor.confirmed_device(user) is None
        ):
            return redirect("admin:two_factor_setup")
        return super().login(request, extra_context)

    def index(self, request, extra_context=None):
        from .charts import access_ending_svg
        from .first_screen import break_soonest, current

        if not request.user.has_perm("onboarding.view_clientbusiness"):
            return super().index(request, extra_context)  # staff in no role see no figures
        screen, computed_at = current()
        context = {
            "screen": screen,
            "computed_at": computed_at,
            "chart_svg": access_ending_svg(screen.chart, screen.chart_max),
            "break_soonest": break_soonest(),
            "can_act": request.user.has_perm("tokens.change_accesstoken"),
            **(extra_context or {}),
        }
        return super().index(request, context)

    def get_urls(self):
        return [
            path("two-factor/setup/", never_cache(self.two_factor_setup), name="two_factor_setup"),
            *super().get_urls(),
        ]

    def two_factor_setup(self, request):
        return two_factor.setup_view(self, request)
