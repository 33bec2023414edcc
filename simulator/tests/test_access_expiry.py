"""What ends a person's access: a managed-accounts migration (user_access_expire_time on every
kind of asset, Instagram, WhatsApp and catalogs included) and data access expiry (enforced)."""

import pytest

from simulator import api
from simulator.tests.conftest import debug, graph_call, live

pytestmark = live

ACME, BOB = "9100000000000001", "1000000000000002"
PAGE_1, AD_1 = api.asset_id_for("page", 1, 1), api.asset_id_for("ad_account", 1, 1)
WABA_1 = api.asset_id_for("whatsapp_business_account", 1, 1)
IG_1 = api.asset_id_for("instagram_account", 1, 1)
CATALOG_1 = api.asset_id_for("catalog", 1, 1)
ALL = [PAGE_1, AD_1, WABA_1, IG_1, CATALOG_1]
SCOPES = [
    "business_management", "pages_show_list", "ads_read", "whatsapp_business_management", "instagram_basic",
    "catalog_management",
]  # fmt: skip


def expiry(meta, http, token, ids):
    graph_ids = [f"act_{i}" if i == AD_1 else i for i in ids]
    response = graph_call(meta, http, "", token, data={"ids": ",".join(graph_ids), "fields": "user_access_expire_time"})
    assert response.status_code == 200, response.text
    return {key.removeprefix("act_"): node.get("user_access_expire_time") for key, node in response.json().items()}


def test_a_migration_gives_instagram_whatsapp_and_catalog_assets_an_end_like_pages(meta, http):
    token = api.issue_token(token_type="user", person_id=BOB, scopes=SCOPES, asset_ids=ALL)
    assert set(expiry(meta, http, token, ALL).values()) == {None}
    ends = api.migrate_to_managed_accounts(ACME)
    expected = ends.strftime("%Y-%m-%dT%H:%M:%S+0000")
    assert expiry(meta, http, token, ALL) == dict.fromkeys(ALL, expected)


def test_after_the_grace_a_whatsapp_account_is_gone_for_the_personal_token(meta, http):
    token = api.issue_token(token_type="user", person_id=BOB, scopes=SCOPES, asset_ids=ALL)
    api.migrate_to_managed_accounts(ACME)
    api.advance_clock(31 * 86400)
    error = graph_call(meta, http, WABA_1, token).json()["error"]
    assert (error["code"], error["error_subcode"]) == (100, 33)


def test_system_user_tokens_are_unaffected_by_a_migration(meta, http):
    token = api.issue_token(business_id=ACME, scopes=SCOPES, asset_ids=ALL)
    api.migrate_to_managed_accounts(ACME)
    assert set(expiry(meta, http, token, ALL).values()) == {None}


@pytest.mark.parametrize("how", ["expire_data_access", "advance_clock"])
def test_a_user_token_past_its_data_access_expiry_is_refused_with_190_463(meta, http, how):
    token = api.issue_token(token_type="user", person_id=BOB, scopes=SCOPES, data_access_expires_in=30 * 86400)
    assert graph_call(meta, http, "me", token).status_code == 200
    if how == "expire_data_access":
        api.expire_data_access(token)
    else:
        api.advance_clock(30 * 86400 + 1)
    error = graph_call(meta, http, "me", token).json()["error"]
    assert (error["code"], error["error_subcode"], error["type"]) == (190, 463, "OAuthException")
    assert "Data access" in error["message"]
    data = debug(meta, http, token)
    assert data["is_valid"] is False
    assert (data["error"]["code"], data["error"]["subcode"]) == (190, 463)
