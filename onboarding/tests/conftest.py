from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from graph.types import TokenInfo
from onboarding.invitations import create_invitation
from onboarding.models import ClientBusiness, Contact, Invitation, LoginConfiguration
from testsupport.factories import make_simulated_configuration
from testsupport.fake_graph import FakeGraph, FakeToken
from tokens.models import AccessToken, Asset, AssetGrant, TokenEvent

# The simulator's seeded world (simulator.api): Acme Bakery, Alice, and some of Acme's assets.
ACME = "9100000000000001"
ALICE = "1000000000000001"
PAGE_1, PAGE_2 = "2001000000000001", "2001000000000002"
AD_1 = "3001000000000001"


@pytest.fixture
def contact(client_business) -> Contact:
    return Contact.objects.create(client=client_business, name="Ada Baker", email="ada@acme.test")


@pytest.fixture
def system_user_config(db) -> LoginConfiguration:
    return LoginConfiguration.objects.create(
        name="Pages and ads",
        config_id="5550001",
        token_type="system_user",
        permissions=["ads_management", "pages_show_list", "pages_read_engagement"],
        asset_types=["page", "ad_account"],
    )


@pytest.fixture
def user_config(db) -> LoginConfiguration:
    return LoginConfiguration.objects.create(
        name="Pages as a person",
        config_id="5550002",
        token_type="user",
        permissions=["pages_show_list", "pages_read_engagement"],
        asset_types=["page"],
    )


@pytest.fixture
def invitation_key(client_business, contact, system_user_config) -> str:
    _, key = create_invitation(client_business, system_user_config, contact=contact)
    return key


def acme_token(**overrides) -> FakeToken:
    """What Meta says about the token Acme's system-user onboarding hands out (and which assets it reaches)."""
    fields = {
        "type": "SYSTEM_USER",
        "issued_at": datetime(2026, 11, 1, tzinfo=UTC),
        "scopes": ["ads_management", "pages_show_list", "pages_read_engagement"],
        "granular_scopes": [
            {"scope": "pages_read_engagement", "target_ids": ["201", "202"]},
            {"scope": "ads_management", "target_ids": ["301"]},
        ],
        "user_id": "9001",
        "business_id": "7001",
        "assets": {
            "201": ("page", "Acme Bakery Page", None),
            "202": ("page", "Acme Cakes Page", None),
            "301": ("ad_account", "Acme Ads", None),
        },
    }
    return FakeToken(**(fields | overrides))


def make_info(**overrides) -> TokenInfo:
    """``debug_token``'s answer for Acme's token, for tests that install without asking Meta."""
    return acme_token(**overrides).info()


@pytest.fixture
def fake_graph(monkeypatch) -> FakeGraph:
    graph = FakeGraph()
    graph.answer(acme_token())
    monkeypatch.setattr("onboarding.views.graph_client", lambda: graph)
    return graph


def state_from(location: str) -> str:
    return parse_qs(urlsplit(location).query)["state"][0]


def open_and_start(browser, key: str, user_agent: str = "Mozilla/5.0 (X11; Linux x86_64)") -> str:
    """Open the invitation, press Continue; returns the state sent to the dialog."""
    page = browser.get(f"/invite/{key}/", HTTP_USER_AGENT=user_agent)
    assert page.status_code == 200
    invitation_id = page.context["invitation"].pk
    response = browser.post("/connect/start/", {"invitation": invitation_id}, HTTP_USER_AGENT=user_agent)
    assert response.status_code == 302
    return state_from(response["Location"])


def snapshot() -> dict:
    """Everything a failed step must leave exactly as it was."""
    return {
        "clients": list(ClientBusiness.objects.order_by("pk").values_list("pk", "status", "meta_business_id")),
        "contacts": list(Contact.objects.order_by("pk").values_list("pk", "meta_user_id")),
        "tokens": list(
            AccessToken.objects.order_by("pk").values_list(
                "pk", "status", "fingerprint", "superseded_by", "scopes", "granular_scopes"
            )
        ),
        "assets": list(Asset.objects.order_by("pk").values_list("pk", "kind", "meta_id", "name", "client")),
        "grants": list(AssetGrant.objects.order_by("pk").values_list("pk", "token", "asset", "status", "scopes")),
        "events": TokenEvent.objects.count(),
        "invitations": list(Invitation.objects.order_by("pk").values_list("pk", "completed_at", "revoked_at")),
    }


@pytest.fixture
def world(simulated_meta):
    config = make_simulated_configuration(
        simulated_meta, name="Pages and ads", config_id="7770001",
        permissions=["ads_read", "pages_show_list"], asset_types=["page", "ad_account"],
    )  # fmt: skip
    client_business = ClientBusiness.objects.create(name="Acme Bakery")
    contact = Contact.objects.create(client=client_business, email="alice@acme.example", name="Alice")
    return simulated_meta, config, client_business, contact
