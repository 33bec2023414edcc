"""Every admin page: no token value on any of them, every action audited, and queries per page that
do not grow with the rows listed."""

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext

from common.admin import AuditedActionsMixin
from console.roles import PORTAL_APPS
from testsupport.staff import console_pages

from .world import seed_world

pytestmark = pytest.mark.django_db



def portal_admins():
    return [model_admin for model, model_admin in admin.site._registry.items()
            if model._meta.app_label in PORTAL_APPS]


def test_every_model_admin_of_the_portal_audits_its_actions():
    assert portal_admins()
    assert [type(a).__name__ for a in portal_admins() if not isinstance(a, AuditedActionsMixin)] == []


def test_an_action_run_is_written_to_the_admin_log_with_who_and_what(admin_client):
    (token, *_) = seed_world(1)

    admin_client.post("/admin/tokens/accesstoken/", {"action": "check_now", "_selected_action": [token.pk]})

    entry = LogEntry.objects.get(object_id=str(token.pk))
    assert entry.user.username == "admin"
    assert entry.get_change_message() == (
        "Ran the action “Check now with Meta (validity, expiry, assets)” (check_now) on 1 selected."
    )


def test_no_admin_page_shows_a_token_value(admin_client):
    tokens = seed_world(2)
    values = [token.value for token in tokens]
    urls = ["/admin/", "/admin/dashboard/", *console_pages(tokens[0].configuration_id)]
    for model, model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(f"/admin/{info[0]}/{info[1]}/")
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            urls.append(f"/admin/{info[0]}/{info[1]}/{first.pk}/change/")
    for token in tokens:
        urls.append(f"/admin/tokens/accesstoken/{token.pk}/change/")

    for url in urls:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        leaked = [value for value in values if value in page]
        assert not leaked, f"{url} shows a token value"


def test_queries_per_page_do_not_grow_with_rows(admin_client, django_assert_max_num_queries):
    configuration = seed_world(2)[0].configuration
    pages = console_pages(configuration.pk)
    few = {}
    for url in pages:
        admin_client.get(url)  # warm per-process caches (content types, sessions) before counting
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(url).status_code == 200, url
        few[url] = len(queries)

    seed_world(5, configuration=configuration)
    for url in pages:
        with django_assert_max_num_queries(few[url], info=url):
            assert admin_client.get(url).status_code == 200, url
