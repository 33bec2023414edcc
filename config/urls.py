from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/dashboard/", include("verification.urls")),  # staff risk dashboard (before the admin's catch-all)
    path("admin/", admin.site.urls),
    path("", include("onboarding.urls")),
]

if settings.META_SIMULATOR:
    urlpatterns.append(path("simulator/", include("simulator.urls")))
