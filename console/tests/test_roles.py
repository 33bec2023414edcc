"""Roles, enforced in the admin: a viewer reads, an operator acts on clients and tokens, an
administrator also runs the portal (configurations, verification, staff users)."""

import pytest
from django.contrib.auth.models import Group

from console.roles import ADMINISTRATOR, OPERATOR, VIEWER
from staffjobs.models import StaffJob
from testsupport.factories import make_client, make_configuration, make_token, make_verification_record
from testsupport.staff import make_staff, sign_in

pytestmark = pytest.mark.django_db
TOKENS = "/admin/tokens/accesstoken/"
CLIENTS = "/admin/onboarding/clientbusiness/"


@pytest.fixture
def as_role(client):
    def signed_in(role):
        return sign_in(client, make_staff(role.lower(), role))

    return signed_in


def run_check_now(client, token):
    return client.post(TOKENS, {"action": "check_now", "_selected_action": [token.pk]})


def test_the_migration_creates_the_three_roles():
    assert set(Group.objects.values_list("name", flat=True)) >= {VIEWER, OPERATOR, ADMINISTRATOR}
    viewer = set(Group.objects.get(name=VIEWER).permissions.values_list("codename", flat=True))
    assert "view_accesstoken" in viewer and "view_clientbusiness" in viewer
    assert not {codename for codename in viewer if not codename.startswith("view_")}


def test_a_viewer_reads_every_list_but_runs_no_action_and_changes_nothing(as_role):
    token = make_token(make_client())
    viewer = as_role(VIEWER)

    listing = viewer.get(TOKENS)
    refused = run_check_now(viewer, token)
    edit = viewer.post(f"{CLIENTS}{token.client.pk}/change/", {"name": "Renamed", "status": "active"})

    assert listing.status_code == 200 and 'name="action"' not in listing.content.decode()
    assert StaffJob.objects.count() == 0 and refused.status_code in (200, 302, 403)
    assert edit.status_code == 403
    token.client.refresh_from_db()
    assert token.client.name == "Acme Bakery"
    for url in ("/admin/", CLIENTS, "/admin/tokens/assetgrant/", "/admin/tokens/reminder/",
                "/admin/onboarding/invitation/", "/admin/onboarding/loginattempt/", "/admin/tokens/tokenevent/",
                "/admin/tokens/sweeprun/", "/admin/dashboard/"):
        assert viewer.get(url).status_code == 200, url
    assert viewer.get("/admin/auth/user/").status_code == 403


def test_an_operator_acts_on_tokens_and_clients_but_not_on_configurations_or_staff(as_role):
    token = make_token(make_client())
    configuration = token.configuration
    operator = as_role(OPERATOR)

    started = run_check_now(operator, token)
    renamed = operator.post(f"{CLIENTS}{token.client.pk}/change/", {
        "name": "Acme Bakery Ltd", "status": "active", "notification_emails": "", "notes": "",
        "contacts-TOTAL_FORMS": "0", "contacts-INITIAL_FORMS": "0",
    })
    configuration_edit = operator.get(f"/admin/onboarding/loginconfiguration/{configuration.pk}/change/")

    assert started.status_code == 302 and StaffJob.objects.get().requested_by.username == "operator"
    assert renamed.status_code == 302
    assert 'name="name"' not in configuration_edit.content.decode()  # read-only for an operator
    assert operator.post(f"/admin/onboarding/loginconfiguration/{configuration.pk}/delete/").status_code == 403
    assert operator.get("/admin/auth/user/").status_code == 403
    assert operator.get("/admin/verification/upkeeprule/add/").status_code == 403


def test_an_administrator_runs_configurations_verification_and_staff_users(as_role):
    configuration = make_configuration()
    record = make_verification_record()
    administrator = as_role(ADMINISTRATOR)

    assert 'name="name"' in administrator.get(
        f"/admin/onboarding/loginconfiguration/{configuration.pk}/change/").content.decode()
    assert administrator.get(f"/admin/verification/techproviderverification/{record.pk}/status/").status_code == 200
    assert administrator.get("/admin/auth/user/").status_code == 200
    assert administrator.get("/admin/otp_totp/totpdevice/").status_code == 200
    assert administrator.get("/admin/axes/accessattempt/").status_code == 200


def test_staff_outside_any_role_see_nothing(client):
    sign_in(client, make_staff("nobody"))
    assert client.get(TOKENS).status_code == 403
    assert 'id="first-screen"' not in client.get("/admin/").content.decode()
