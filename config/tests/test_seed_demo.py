import pytest
from django.core.management import call_command

from onboarding.models import ClientBusiness
from tokens.models import AccessToken, AssetGrant

pytestmark = pytest.mark.django_db


def counts() -> tuple[int, int, int]:
    return ClientBusiness.objects.count(), AccessToken.objects.count(), AssetGrant.objects.count()


def test_the_demo_data_covers_every_client_status_and_staggered_expiries():
    call_command("seed_demo")
    assert set(ClientBusiness.objects.values_list("status", flat=True)) == set(ClientBusiness.Status.values)
    expiries = {token.days_left() for token in AccessToken.objects.all()}
    assert None in expiries  # a token that never expires
    assert len(expiries - {None}) >= 3


def test_seeding_twice_changes_nothing():
    call_command("seed_demo")
    first = counts()
    call_command("seed_demo")
    assert counts() == first


def test_demo_tokens_are_readable_and_encrypted():
    call_command("seed_demo")
    token = AccessToken.objects.filter(client__name="Acme Bakery").get()
    assert token.value.startswith("EAA")
    assert token.grants.exists()


def test_the_demo_clients_statuses_agree_with_their_connections():
    from tokens.models import ClientHealth

    call_command("seed_demo")
    health = {row.client.name: row for row in ClientHealth.objects.select_related("client")}
    assert health["Cobalt Cycles"].state == "needs_reauthorization"  # Meta stopped accepting its token
    assert health["Cobalt Cycles"].client.status == "needs_reauth"
    assert {row.client.status for name, row in health.items() if name != "Cobalt Cycles"} == {"active"}
    assert "Blue Harbor Coffee" not in health  # never connected: no row
