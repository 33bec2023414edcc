"""Staff pages: the risk dashboard, the at-risk lists, the status change form, the catalogue."""

from datetime import date

import pytest
import time_machine
from django.urls import reverse

from testsupport.factories import make_client, make_token, make_verification_record
from testsupport.staff import sign_in
from verification.models import (
    BusinessVerification,
    PermissionAccess,
    TechProviderVerification,
    UpkeepRule,
    VerificationTransition,
)

pytestmark = pytest.mark.django_db
TODAY = "2026-11-23 10:00:00+00:00"


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user("admin", "admin@provider.test", is_staff=True, is_superuser=True)
    sign_in(client, user)
    client.user = user
    return client


@time_machine.travel(TODAY, tick=False)
def test_the_dashboard_shows_the_countdown_the_risk_counts_the_upkeep_and_system_users(staff_client):
    make_verification_record(
        "submitted", name="Provider Ltd", deadline=date(2026, 12, 3), expected_decision_on=date(2026, 11, 30)
    )
    PermissionAccess.objects.filter(permission="ads_read").update(access_level="advanced")
    token = make_token(client=make_client("Bakery"), scopes=["ads_read"], kind="system_user", meta_user_id="su1")
    make_token(client=token.client, kind="system_user", meta_user_id="su2", scopes=["ads_read"])

    page = staff_client.get("/admin/dashboard/").content.decode()
    assert "<strong>10 days</strong> left until the deadline" in page
    assert "Decision expected around" in page
    assert 'Today</th><td class="risk-number">0</td><td class="risk-number">0<' in page
    assert 'After the deadline</th><td class="risk-number">2</td><td class="risk-number">1<' in page
    assert "Marketing API Access Tier" in page and "At risk." in page
    assert "Bakery is at its limit of 2 system users" in page
    assert reverse("verification_at_risk", args=["after_deadline"]) in page
    assert token.value not in page


def test_the_dashboard_says_what_is_missing(staff_client):
    UpkeepRule.objects.update(is_active=False)
    page = staff_client.get("/admin/dashboard/").content.decode()
    assert "No record of the provider" in page
    assert "No upkeep rule is active" in page


def test_the_dashboard_shows_business_verification(staff_client):
    BusinessVerification.objects.create(name="Provider Ltd", meta_business_id="1", status="pending")
    assert "Provider Ltd: <strong>Pending</strong>" in staff_client.get("/admin/dashboard/").content.decode()


def test_the_dashboard_is_for_staff_only(client, django_user_model):
    assert client.get("/admin/dashboard/").status_code == 302
    client.force_login(django_user_model.objects.create_user("someone"))
    response = client.get("/admin/dashboard/")
    assert response.status_code == 302 and "/admin/login/" in response.url


def test_the_admin_home_links_to_the_dashboard(staff_client):
    assert reverse("verification_dashboard") in staff_client.get("/admin/").content.decode()


@time_machine.travel(TODAY, tick=False)
def test_the_at_risk_list_names_each_token_and_refused_permission(staff_client):
    make_verification_record("lost")
    token = make_token(client=make_client("Bakery"), scopes=["ads_read"])
    page = staff_client.get(reverse("verification_at_risk", args=["today"])).content.decode()
    assert "Bakery" in page and f"#{token.pk}" in page
    assert "<code>ads_read</code>: The app has no advanced access" in page
    assert token.value not in page


def test_an_unknown_at_risk_list_is_not_found(staff_client):
    assert staff_client.get("/admin/dashboard/at-risk/tomorrow/").status_code == 404


def test_the_status_is_not_a_free_field_of_the_change_form(staff_client):
    record = make_verification_record("not_required")
    url = reverse("admin:verification_techproviderverification_change", args=[record.pk])
    page = staff_client.get(url).content.decode()
    assert 'name="status"' not in page and "Change status" in page
    staff_client.post(url, {"name": "Renamed", "meta_business_id": record.meta_business_id, "status": "verified",
                            "transitions-TOTAL_FORMS": "0", "transitions-INITIAL_FORMS": "0"})
    record.refresh_from_db()
    assert (record.name, record.status) == ("Renamed", "not_required")


@time_machine.travel(TODAY, tick=False)
def test_staff_change_the_status_through_the_service(staff_client):
    record = make_verification_record("not_required")
    url = reverse("admin:verification_techproviderverification_status", args=[record.pk])
    page = staff_client.get(url).content.decode()
    assert '<option value="required">' in page and '<option value="verified">' not in page
    response = staff_client.post(url, {"new_status": "required", "notified_on": "2026-11-20", "note": "Meta's email"})
    assert response.status_code == 302
    record.refresh_from_db()
    assert (record.status, record.deadline) == ("required", date(2027, 1, 19))
    transition = VerificationTransition.objects.get()
    assert (transition.actor, transition.note) == (staff_client.user, "Meta's email")


def test_a_refused_status_change_shows_why_and_keeps_everything(staff_client):
    record = make_verification_record("not_required")
    url = reverse("admin:verification_techproviderverification_status", args=[record.pk])
    response = staff_client.post(url, {"new_status": "required", "notified_on": ""})
    assert response.status_code == 200
    assert "notification email" in response.content.decode()
    response = staff_client.post(url, {"new_status": "verified"})
    assert "Select a valid choice" in response.content.decode()
    response = staff_client.post(url, {"new_status": "required", "notified_on": "yesterday"})
    assert "Enter a valid date" in response.content.decode()
    assert TechProviderVerification.objects.get(pk=record.pk).status == "not_required"


def test_a_new_record_starts_as_not_required(staff_client):
    staff_client.post(reverse("admin:verification_techproviderverification_add"), {
        "name": "Provider", "meta_business_id": "123", "is_provider": "on", "status": "verified",
        "transitions-TOTAL_FORMS": "0", "transitions-INITIAL_FORMS": "0"})
    assert TechProviderVerification.objects.get().status == "not_required"


def test_the_catalogue_shows_metas_facts_beside_what_staff_edit(staff_client):
    page = staff_client.get(reverse("admin:verification_permissionaccess_changelist") + "?gated=yes").content.decode()
    assert "ads_read" in page and "pages_messaging" not in page


def test_staff_pick_the_upkeep_rule_in_force(staff_client):
    seed_rule = UpkeepRule.objects.get(min_calls=1500)
    staff_client.post(reverse("admin:verification_upkeeprule_changelist"),
                      {"action": "make_active", "_selected_action": [seed_rule.pk]})
    assert list(UpkeepRule.objects.filter(is_active=True)) == [seed_rule]
