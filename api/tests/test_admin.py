"""Staff create a credential (its secret shown once, kept as a hash), revoke it, and read its uses on
the client's page; only administrators see credentials at all."""

from __future__ import annotations

import hashlib
import re

import pytest

from api.credentials import create_credential
from api.models import ApiUse, ServiceCredential
from console.roles import ADMINISTRATOR, OPERATOR, VIEWER
from testsupport.factories import make_client
from testsupport.staff import make_staff, sign_in

pytestmark = pytest.mark.django_db
CREDENTIALS = "/admin/api/servicecredential/"


def test_the_add_form_shows_the_secret_once_and_stores_only_its_hash(admin_client):
    acme = make_client()

    created = admin_client.post(f"{CREDENTIALS}add/", {"name": "Publisher", "scopes": ["tokens:read", "graph:proxy"],
                                                        "clients": [acme.pk], "notes": ""})

    page = created.content.decode()
    credential = ServiceCredential.objects.get()
    secret = re.search(r'readonly value="([^"]+)"', page).group(1)
    assert created.status_code == 200 and created["Cache-Control"].startswith("no-store")
    assert secret.startswith("svc_") and len(secret) > 40 and "shown this once" in page
    assert credential.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(list(ServiceCredential.objects.values().get().values()))
    assert credential.scopes == ["graph:proxy", "tokens:read"] and list(credential.clients.all()) == [acme]
    assert credential.created_by.username == "admin"
    for url in (CREDENTIALS, f"{CREDENTIALS}{credential.pk}/change/"):
        shown = admin_client.get(url).content.decode()
        assert secret not in shown and credential.secret_hint in shown


def test_an_unknown_scope_is_refused_by_the_form(admin_client):
    refused = admin_client.post(f"{CREDENTIALS}add/", {"name": "Publisher", "scopes": ["tokens:write"]})
    assert refused.status_code == 200 and "not one of the available choices" in refused.content.decode()
    assert ServiceCredential.objects.count() == 0


def test_revoke_is_an_audited_action(admin_client):
    credential, _ = create_credential("Publisher", ["tokens:read"])

    admin_client.post(CREDENTIALS, {"action": "revoke", "_selected_action": [credential.pk]})

    credential.refresh_from_db()
    assert credential.revoked_at is not None and credential.revoked_by == "staff:admin"


@pytest.mark.parametrize("role,status", [(VIEWER, 403), (OPERATOR, 403), (ADMINISTRATOR, 200)])
def test_only_administrators_see_credentials(client, role, status):
    sign_in(client, make_staff(role.lower(), role))
    assert client.get(CREDENTIALS).status_code == status
    assert client.get("/admin/api/apiuse/").status_code == status


def test_the_client_page_shows_its_api_use(admin_client):
    acme, other = make_client(), make_client("Other")
    credential, _ = create_credential("Publisher", ["tokens:read"])
    ApiUse.objects.create(credential=credential, action="asset_token", method="GET", client=acme,
                          asset_meta_id="100200300", status_code=409, outcome="needs_reauthorization")
    ApiUse.objects.create(credential=credential, action="asset_token", method="GET", client=other,
                          asset_meta_id="999", status_code=200, outcome="ok")

    page = admin_client.get(f"/admin/onboarding/clientbusiness/{acme.pk}/change/").content.decode()
    section = page.split('id="api-use"', 1)[1].split("</div>", 1)[0]

    assert "Publisher" in section and "100200300" in section and "needs_reauthorization" in section
    assert "999" not in section
    listing = admin_client.get(f"/admin/api/apiuse/?client__id__exact={acme.pk}")
    assert listing.status_code == 200 and "100200300" in listing.content.decode()


def test_uses_older_than_the_retention_are_pruned_in_batches(settings, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from api import audit

    settings.API_USE_RETENTION_DAYS = 30
    monkeypatch.setattr(audit, "PRUNE_BATCH", 2)
    credential, _ = create_credential("Publisher", ["tokens:read"])
    now = timezone.now()
    for days in (40, 35, 31, 29, 1):
        ApiUse.objects.create(credential=credential, action="asset_token", method="GET", status_code=200,
                              outcome="ok", at=now - timedelta(days=days))

    assert audit.prune(now) == 3
    assert audit.prune(now) == 0  # a second run changes nothing
    assert ApiUse.objects.count() == 2
