from django.urls import path, re_path

from . import views

app_name = "simulator"

urlpatterns = [
    re_path(r"^graph/(?P<rest>.*)$", views.graph, name="graph"),
    path("www/<str:version>/dialog/oauth", views.oauth_dialog, name="dialog"),
    path("www/<str:version>/dialog/oauth/", views.oauth_dialog),
    path("controls/", views.controls, name="controls"),
]
