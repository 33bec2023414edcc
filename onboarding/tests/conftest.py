from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from graph.types import AssetRef, TokenGrant, TokenInfo
from onboarding.invitations import create_invitation
from onboarding.models import ClientBusiness, Contact, Invitation, LoginConfiguration
from tokens.models import AccessToken, Asset, AssetGrant, TokenEvent

APP_ID = "100000000000001"  # settings.META_APP_ID's default
# The simulator's seeded world (simulator.api): Acme Bakery, Alice, and some of Acme's assets.
ACME = "9100000000000001"
ALICE = "1000000000000001"
PAGE_1, PAGE_2 = "2001000000000001", "2001000000000002"
AD_1 = "3001000000000001"


@pytest.fixture
def client_business(db) -> ClientBusiness:
    return ClientBusiness.objects.create(name="Acme Bakery", notification_emails="ops@acme.test")


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


def make_info(**overrides) -> TokenInfo:
    fields = {
        "app_id": APP_ID,
        "type": "SYSTEM_USER",
        "application": "Portal",
        "is_valid": True,
        "issued_at": datetime(2026, 11, 1, tzinfo=UTC),
        "expires_at": None,
        "data_access_expires_at": None,
        "scopes": ["ads_management", "pages_show_list", "pages_read_engagement"],
        "granular_scopes": [
            {"scope": "pages_read_engagement", "target_ids": ["201", "202"]},
            {"scope": "ads_management", "target_ids": ["301"]},
        ],
        "user_id": "9001",
    }
    return TokenInfo(**(fields | overrides))


@dataclass
class FakeGraph:
    """Stands in for graph.client.GraphClient in fast tests; the simulator tests use the real thing."""

    info: TokenInfo = field(default_factory=make_info)
    assets: list = field(
        default_factory=lambda: [
            AssetRef("page", "201", "Acme Bakery Page", "7001"),
            AssetRef("page", "202", "Acme Cakes Page", "7001"),
            AssetRef("ad_account", "301", "Acme Ads", "7001"),
        ]
    )
    me: dict = field(default_factory=lambda: {"id": "9001", "client_business_id": "7001"})
    token_value: str = "EAAB-fake-token-value-0001"
    fail_on: dict = field(default_factory=dict)  # method name -> GraphError to raise
    calls: list = field(default_factory=list)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def _maybe_fail(self, name):
        self.calls.append(name)
        if name in self.fail_on:
            raise self.fail_on[name]

    def dialog_url(self, config_id, redirect_uri, state, *, response_type_code=False, extras=None):
        from urllib.parse import urlencode

        params = {"client_id": APP_ID, "redirect_uri": redirect_uri, "state": state, "config_id": config_id}
        if response_type_code:
            params |= {"response_type": "code", "override_default_response_type": "true"}
        return "https://dialog.test/v26.0/dialog/oauth?" + urlencode(params)

    def exchange_code(self, code, redirect_uri):
        self._maybe_fail("exchange_code")
        return TokenGrant(access_token=self.token_value, token_type="bearer", expires_in=None)

    def exchange_long_lived(self, token):
        self._maybe_fail("exchange_long_lived")
        return TokenGrant(access_token=self.token_value, token_type="bearer", expires_in=5184000)

    def debug_token(self, token):
        self._maybe_fail("debug_token")
        return self.info

    def get_me(self, token, fields=("id", "name")):
        self._maybe_fail("get_me")
        return self.me

    def list_assets(self, token, *, system_user_id=None):
        self._maybe_fail("list_assets")
        return list(self.assets)


@pytest.fixture
def fake_graph(monkeypatch) -> FakeGraph:
    graph = FakeGraph()
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
    config = LoginConfiguration.objects.create(
        name="Pages and ads",
        config_id="7770001",
        token_type="system_user",
        permissions=["ads_read", "pages_show_list"],
        asset_types=["page", "ad_account"],
    )
    simulated_meta.api.register_configuration(
        "7770001", "system_user", config.permissions, config.asset_types, app_id=simulated_meta.app_id
    )
    client_business = ClientBusiness.objects.create(name="Acme Bakery")
    contact = Contact.objects.create(client=client_business, email="alice@acme.example", name="Alice")
    return simulated_meta, config, client_business, contact
