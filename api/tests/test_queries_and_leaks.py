"""A constant number of queries per token lookup, and the token's value nowhere but the response body."""

from __future__ import annotations

import logging

import pytest
from django.test import Client

from api.credentials import create_credential
from api.models import ApiUse, Scope
from testsupport.factories import make_asset, make_client, make_grant, make_token

PAGE_ID = "100200300"
# The credential (with whether it is limited), the grants, the chosen value, the audit row, and
# last_used_at once a minute. A limited credential adds one per kind of limit; a reconnect link,
# when one is due, adds the invitation's.
MAX_QUERIES = 5


def world(grants: int):
    acme = make_client()
    page = make_asset(acme, meta_id=PAGE_ID)
    for _ in range(grants):
        make_grant(make_token(acme), page)
    system = make_token(acme, kind="system_user", value="EAAB-the-system-user-token-value")
    make_grant(system, page)
    granular = make_token(acme, kind="granular_system_user", parent=system, configuration=None, purpose="publishing")
    make_grant(granular, page)
    user = make_token(acme)
    make_grant(make_token(acme, kind="page", parent=user, configuration=None), page)
    return system


@pytest.mark.django_db
@pytest.mark.parametrize("grants", [1, 40])
def test_a_token_lookup_costs_the_same_queries_whatever_the_number_of_grants(grants, django_assert_max_num_queries):
    world(grants)
    credential, secret = create_credential("Publisher", [Scope.TOKENS_READ])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")

    with django_assert_max_num_queries(MAX_QUERIES):
        first = client.get(f"/api/v1/assets/{PAGE_ID}/token")
    with django_assert_max_num_queries(MAX_QUERIES - 1):  # last_used_at is fresh: not written again
        second = client.get(f"/api/v1/assets/{PAGE_ID}/token")
    with django_assert_max_num_queries(MAX_QUERIES - 1):
        by_purpose = client.get(f"/api/v1/assets/{PAGE_ID}/token", {"purpose": "publishing"})
    credential.clients.set([make_client("Other")])
    with django_assert_max_num_queries(MAX_QUERIES - 1):
        hidden = client.get(f"/api/v1/assets/{PAGE_ID}/token")

    assert first.status_code == second.status_code == 200 and second.json()["kind"] == "system_user"
    assert by_purpose.json()["kind"] == "granular_system_user"
    assert hidden.status_code == 404


@pytest.mark.django_db(transaction=True)
def test_the_token_value_is_in_no_log_url_admin_page_or_audit_row(caller, credential_factory, admin_client, caplog):
    system = world(2)
    credential, secret = credential_factory("Publisher", [Scope.TOKENS_READ])
    caplog.set_level(logging.DEBUG)

    answer = caller.with_secret(secret).get(f"/api/v1/assets/{PAGE_ID}/token")

    assert answer.json()["access_token"] == system.value
    assert system.value not in answer.url and secret not in answer.url
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert "/api/v1/assets/" in logged  # the access record was heard...
    assert system.value not in logged and secret not in logged  # ...without the value or the secret
    use = ApiUse.objects.get()
    assert system.value not in str(list(ApiUse.objects.values().get().values()))
    for url in ("/admin/api/apiuse/", f"/admin/api/apiuse/{use.pk}/change/", "/admin/api/servicecredential/",
                f"/admin/api/servicecredential/{credential.pk}/change/",
                f"/admin/onboarding/clientbusiness/{system.client_id}/change/"):
        page = admin_client.get(url)
        assert page.status_code == 200, url
        assert system.value not in page.content.decode() and secret not in page.content.decode(), url
