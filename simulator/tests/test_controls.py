"""The staff-only controls page."""

import pytest

from simulator import api
from simulator.models import SimBusiness, SimState, SimToken
from testsupport.staff import sign_in

pytestmark = pytest.mark.django_db

URL = "/simulator/controls/"


@pytest.fixture
def admin_client(client, django_user_model):
    # No password: hashing one costs most of a test's time, and force_login needs none.
    return sign_in(client, django_user_model.objects.create(username="staff", is_staff=True, is_superuser=True))


def test_the_controls_page_is_for_staff_only(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_staff_see_the_clock_and_the_businesses(admin_client):
    api.reset()
    api.seed_world()
    page = admin_client.get(URL)
    assert page.status_code == 200
    assert "Acme Bakery" in page.content.decode()


def test_staff_set_faults_from_the_page(admin_client):
    api.reset()
    response = admin_client.post(URL, {"action": "faults", "error_rate": "0.25", "latency_ms": "10"}, follow=True)
    assert "Faults updated." in response.content.decode()
    state = SimState.objects.get(pk=1)
    assert (state.error_rate, state.latency_ms) == (0.25, 10)


def test_staff_start_a_rate_limit_burst_and_edge_failures_from_the_page(admin_client):
    api.reset()
    admin_client.post(URL, {"action": "faults", "edge_error_rate": "0.3"})
    response = admin_client.post(URL, {"action": "burst", "requests": "40", "regain_minutes": "2"}, follow=True)
    assert "The next 40 requests are throttled." in response.content.decode()
    state = SimState.objects.get(pk=1)
    assert (state.edge_error_rate, state.burst_requests, state.throttle_regain_minutes) == (0.3, 40, 2)
    assert "burst: 40 requests left" in admin_client.get(URL).content.decode()


def test_a_bad_number_is_a_message_not_a_crash(admin_client):
    api.reset()
    response = admin_client.post(URL, {"action": "faults", "error_rate": "lots"}, follow=True)
    assert response.status_code == 200
    assert "Error rate must be a number." in response.content.decode()
    assert SimState.objects.get(pk=1).error_rate == 0


def test_staff_move_a_business_to_managed_accounts(admin_client):
    api.reset()
    api.seed_world()
    admin_client.post(URL, {"action": "migrate", "business_id": "9100000000000002"})
    assert SimBusiness.objects.get(business_id="9100000000000002").managed_accounts_since is not None


def test_an_unknown_business_is_a_message_not_a_crash(admin_client):
    api.reset()
    response = admin_client.post(URL, {"action": "migrate", "business_id": "nope"}, follow=True)
    assert response.status_code == 200
    assert "notice error" in response.content.decode()


def test_seeding_twice_changes_nothing():
    api.reset()
    api.seed_world()
    counts = SimBusiness.objects.count(), SimBusiness.objects.first().owned_assets.count()
    api.seed_world()
    assert (SimBusiness.objects.count(), SimBusiness.objects.first().owned_assets.count()) == counts


def test_the_admin_never_shows_token_values(admin_client):
    api.reset()
    api.seed_world()
    api.register_app("1", "app-secret-value", ["http://x/"])
    value = api.issue_token(app_id="1")
    token_id = SimToken.objects.get(value=value).pk
    for url in (
        "/admin/simulator/simtoken/",
        f"/admin/simulator/simtoken/{token_id}/change/",
        "/admin/simulator/simapp/",
    ):
        page = admin_client.get(url)
        assert page.status_code == 200
        assert value not in page.content.decode()
        assert "app-secret-value" not in page.content.decode()


def test_staff_throttle_one_business_and_lift_it(admin_client):
    api.reset()
    api.seed_world()
    response = admin_client.post(
        URL,
        {"action": "throttle_business", "business_id": "9100000000000002", "minutes": "15", "use_cases": "pages"},
        follow=True,
    )
    assert "throttled until" in response.content.decode()
    business = SimBusiness.objects.get(business_id="9100000000000002")
    assert business.throttled_until is not None and business.throttled_use_cases == ["pages"]
    assert SimBusiness.objects.exclude(pk=business.pk).filter(throttled_until__isnull=False).count() == 0
    admin_client.post(URL, {"action": "clear_throttles"})
    assert SimBusiness.objects.get(pk=business.pk).throttled_until is None


def test_an_unknown_use_case_is_a_message_not_a_crash(admin_client):
    api.reset()
    api.seed_world()
    response = admin_client.post(
        URL, {"action": "throttle_business", "business_id": "9100000000000002", "use_cases": "nonsense"}, follow=True
    )
    assert "Unknown use cases" in response.content.decode()


def test_staff_revoke_one_permission_of_a_person(admin_client):
    api.reset()
    api.seed_world()
    api.register_app("1", "app-secret-value", ["http://x/"])
    value = api.issue_token(app_id="1", token_type="user", person_id="1000000000000002", scopes=["ads_read", "email"])
    response = admin_client.post(
        URL, {"action": "revoke_permission", "permission": "ads_read", "person_id": "1000000000000002"}, follow=True
    )
    assert "ads_read revoked" in response.content.decode()
    token = SimToken.objects.get(value=value)
    assert "ads_read" not in token.scopes and token.declined_scopes == ["ads_read"]


def test_revoking_without_a_permission_is_a_message(admin_client):
    api.reset()
    response = admin_client.post(URL, {"action": "revoke_permission", "person_id": "1"}, follow=True)
    assert "Name the permission to revoke." in response.content.decode()
