"""Mounted at /admin/dashboard/ (config/urls.py); every view goes through the admin's staff check."""

from django.contrib import admin
from django.urls import path

from . import views

urlpatterns = [
    path("", admin.site.admin_view(views.dashboard), name="verification_dashboard"),
    path("at-risk/<str:when>/", admin.site.admin_view(views.at_risk), name="verification_at_risk"),
]
