from django.urls import path

from . import views

app_name = "onboarding"

urlpatterns = [
    path("invite/<str:key>/", views.invitation, name="invitation"),
    path("connect/start/", views.start, name="start"),
    path("connect/callback/", views.callback, name="callback"),
    path("connect/result/<int:attempt_id>/", views.result, name="result"),
    path("meta/deauthorize/", views.deauthorize, name="deauthorize"),
    path("meta/data-deletion/", views.data_deletion, name="data_deletion"),
    path("meta/data-deletion/<str:code>/", views.data_deletion_status, name="data_deletion_status"),
    path("meta/webhooks/", views.webhooks, name="webhooks"),
]
