from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from common.ratelimit import rate_limit

from . import views

# /healthz and /readyz are answered by config.health.HealthCheckMiddleware, before any URL here.
urlpatterns = [
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon),
    path("admin/dashboard/", include("verification.urls")),  # staff risk dashboard (before the admin's catch-all)
    # Attempts to log in, per client IP; per-account lockout can sit beside it later (D33).
    path("admin/login/", rate_limit("admin-login", methods=["POST"])(admin.site.login)),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),  # the provider's API: /api/v1/ (JSON everywhere under /api/)
    path("", include("onboarding.urls")),
]

if settings.META_SIMULATOR:
    urlpatterns.append(path("simulator/", include("simulator.urls")))

handler500 = "config.views.server_error"
