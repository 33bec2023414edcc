"""Links that stay true (#12), against the simulator over HTTP: the business a grant connects, stray
grants taken back at Meta, the provider's own business, partial connections, links already used up.
"""

import pytest

from onboarding.invitations import create_invitation
from onboarding.links import reconnect_url
from onboarding.models import ClientBusiness, Contact, Invitation, LoginAttempt
from simulator.api import asset_id_for
from simulator.models import SimAsset, SimToken
from testsupport.factories import make_simulated_configuration
from tokens.models import AccessToken, AssetGrant

from .conftest import ACME, AD_1, PAGE_1, PAGE_2
from .test_end_to_end import retry_dialog, run_dialog

pytestmark = [pytest.mark.django_db(transaction=True)]

BISTRO = "9100000000000002"
BISTRO_PAGE_1 = asset_id_for(SimAsset.Kind.PAGE, 2, 1)
BISTRO_AD_1 = asset_id_for(SimAsset.Kind.AD_ACCOUNT, 2, 1)


def result_page(browser, response) -> str:
    assert response.status_code == 302, response.content.decode()[:300]
    return browser.get(response["Location"]).content.decode()


def invite(client_business, configuration, email="alice@acme.example"):
    contact, _ = Contact.objects.get_or_create(client=client_business, email=email, defaults={"name": "Alice"})
    return create_invitation(client_business, configuration, contact=contact)[1]


@pytest.fixture
def person_config(simulated_meta):
    """A user-token configuration (the person's own grant) that reads the person's businesses too."""
    return make_simulated_configuration(
        simulated_meta, "user", name="Pages as a person", config_id="7770002",
        permissions=["business_management", "pages_show_list"], asset_types=["page"],
    )  # fmt: skip


def connect(browser, client_business, configuration, business, assets):
    return run_dialog(browser, invite(client_business, configuration), business=business, assets=assets)


def assets_of(client_business) -> set[str]:
    return set(
        AssetGrant.objects.filter(token__client=client_business, token__status="active").values_list(
            "asset__meta_id", flat=True
        )
    )


@pytest.mark.parametrize(
    "order", [("acme", "bistro"), ("bistro", "acme")], ids=["acme-then-bistro", "bistro-then-acme"]
)
def test_a_person_in_two_businesses_connects_each_client_to_its_own_business(
    client, simulated_meta, person_config, order
):
    clients = {"acme": ClientBusiness.objects.create(name="Acme Bakery"),
               "bistro": ClientBusiness.objects.create(name="Bistro Nord")}  # fmt: skip
    plan = {"acme": (ACME, [PAGE_1]), "bistro": (BISTRO, [BISTRO_PAGE_1])}
    for name in order:
        business, assets = plan[name]
        page = result_page(client, connect(client, clients[name], person_config, business, assets))
        assert f"{clients[name].name} is connected" in page, page[:2000]

    for client_business in clients.values():
        client_business.refresh_from_db()
    assert clients["acme"].meta_business_id == ACME and clients["bistro"].meta_business_id == BISTRO
    # The person's other business is no part of this grant (business_management's target is the chosen one).
    assert assets_of(clients["acme"]) == {PAGE_1, ACME} and assets_of(clients["bistro"]) == {BISTRO_PAGE_1, BISTRO}
    # Each client's grants are on assets of its own business only.
    for client_business in clients.values():
        granted = SimAsset.objects.filter(asset_id__in=assets_of(client_business))
        owners = set(granted.values_list("owner__business_id", flat=True))
        assert owners == {client_business.meta_business_id}


def test_a_client_s_token_gets_no_grant_on_an_asset_of_another_client_s_business(client, world):
    meta, config, acme, contact = world
    bistro = ClientBusiness.objects.create(name="Bistro Nord")
    result_page(client, connect(client, bistro, config, BISTRO, [BISTRO_AD_1]))
    # Acme manages Bistro's ad account for it (client_ad_accounts): Alice selects it with Acme's own.
    page = result_page(client, connect(client, acme, config, ACME, [PAGE_1, AD_1, BISTRO_AD_1]))
    assert "Acme Bakery is connected" in page
    assert assets_of(acme) == {PAGE_1, AD_1}
    assert AssetGrant.objects.filter(asset__meta_id=BISTRO_AD_1).values_list("token__client", flat=True).get() == (
        bistro.pk
    )


def test_a_refused_business_has_its_stray_grant_removed_at_meta_and_the_retry_connects(client, world):
    meta, config, acme, contact = world
    acme.meta_business_id = ACME
    acme.save()
    key = invite(acme, config)
    page = result_page(client, run_dialog(client, key, business=BISTRO, assets=[BISTRO_PAGE_1]))

    attempt = LoginAttempt.objects.get()
    assert attempt.failure_kind == "different_business" and attempt.stray_revoked_at is not None
    assert "This is a different business" in page and "We have removed the access" in page
    assert "This invitation is for Acme Bakery." in page and "you chose Bistro Nord Page 1" in page  # names, not ids
    assert BISTRO not in page
    stray = SimToken.objects.get(business__business_id=BISTRO, type="SYSTEM_USER")
    assert stray.invalid_subcode == 458  # the app was removed for Bistro's system user
    assert AccessToken.objects.count() == 0
    assert 'name="invitation"' in page  # the retry button

    # The retry (the button posts the same invitation) connects the right business.
    page = result_page(client, retry_dialog(client, attempt.invitation_id, business=ACME, assets=[PAGE_1, AD_1]))
    assert "Acme Bakery is connected" in page
    assert AccessToken.objects.get().status == "active"


def test_a_business_connected_to_another_client_leaves_that_client_s_grant_alone_at_meta(client, world):
    meta, config, acme, contact = world
    result_page(client, connect(client, acme, config, ACME, [PAGE_1, AD_1]))
    other = ClientBusiness.objects.create(name="Acme Duplicate")
    page = result_page(client, connect(client, other, config, ACME, [PAGE_1, AD_1]))

    assert LoginAttempt.objects.latest("pk").failure_kind == "business_taken"
    assert "already connected under another account" in page and 'name="invitation"' in page
    # One system user per business and app at Meta: removing "the stray" would end Acme's connection.
    assert LoginAttempt.objects.latest("pk").stray_revoked_at is None
    assert not SimToken.objects.filter(type="SYSTEM_USER", invalid_subcode__isnull=False).exists()
    assert AccessToken.objects.get().status == "active"


def test_the_provider_s_own_business_is_refused_with_a_clear_page(client, world, settings):
    meta, config, acme, contact = world
    settings.META_APP_BUSINESS_IDS = [BISTRO]
    page = result_page(client, connect(client, acme, config, BISTRO, [BISTRO_PAGE_1]))
    assert "This is our own business" in page and "Meta requires it to be separate" in page
    assert AccessToken.objects.count() == 0 and ClientBusiness.objects.get(pk=acme.pk).meta_business_id is None
    assert LoginAttempt.objects.get().stray_revoked_at is not None


def test_allowing_without_a_requested_asset_type_is_partially_connected_with_a_one_click_retry(client, world):
    meta, config, acme, contact = world
    key = invite(acme, config)
    page = result_page(client, run_dialog(client, key, assets=[PAGE_1]))
    assert "Acme Bakery is partially connected" in page and "Acme Bakery is connected" not in page
    missing = page.split("partially connected", 1)[1].split("Connected assets")[0]
    assert "Ad accounts" in missing and "Add what is missing" in missing

    invitation_id = LoginAttempt.objects.get().invitation_id
    page = result_page(client, retry_dialog(client, invitation_id, assets=[PAGE_1, AD_1]))
    assert "Acme Bakery is connected" in page


def test_other_outstanding_reconnect_links_say_already_renewed_once_one_is_used(client, world):
    meta, config, acme, contact = world
    result_page(client, connect(client, acme, config, ACME, [PAGE_1, AD_1]))
    token = AccessToken.objects.get()
    Contact.objects.create(client=acme, email="bob@acme.example", name="Bob")
    used, other, reminder = (reconnect_url(token).split("/invite/")[1].strip("/") for _ in range(3))

    assert "Reconnect Acme Bakery" in client.get(f"/invite/{other}/").content.decode()
    result_page(client, run_dialog(client, used, assets=[PAGE_1, AD_1]))
    renewed = AccessToken.objects.get(status="active")

    for key in (other, reminder):
        page = client.get(f"/invite/{key}/")
        text = page.content.decode()
        assert page.status_code == 200
        assert "already renewed on" in text and renewed.created_at.strftime("%-d %B %Y") in text
        assert "Continue with Facebook" not in text
    assert Invitation.objects.filter(completed_at__isnull=False).count() == 2  # the first invitation and `used`


def test_a_reconnect_link_made_after_the_renewal_asks_as_usual(client, world):
    meta, config, acme, contact = world
    result_page(client, connect(client, acme, config, ACME, [PAGE_1, PAGE_2, AD_1]))
    key = reconnect_url(AccessToken.objects.get()).split("/invite/")[1].strip("/")
    assert "Continue with Facebook" in client.get(f"/invite/{key}/").content.decode()
