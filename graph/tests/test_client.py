"""Named calls: what goes where on the wire, and what comes back."""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime

import pytest

from graph.client import GraphClient, call_family, is_marketing_path
from graph.errors import InvalidTokenError, OtherGraphError
from graph.hooks import CallRecord, register_call_hook, unregister_call_hook
from graph.tests.fakes import APP_ID, APP_SECRET, GRAPH_URL, FakeMeta, Reply, batch_reply, error_body, make_client
from graph.types import AssetRef, TokenGrant, graph_id

USER_TOKEN = "EAAGuser-token-value-123"


def proof(token: str, message: str | None = None) -> str:
    return hmac.new(APP_SECRET.encode(), (message or token).encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def calls():
    records: list[CallRecord] = []
    register_call_hook(records.extend)
    yield records
    unregister_call_hook(records.extend)


def test_a_call_with_a_token_sends_it_in_the_header_with_the_plain_proof():
    meta = FakeMeta([Reply(200, {"id": "1", "name": "Ann"})])
    client, _ = make_client(meta)

    assert client.get_me(USER_TOKEN) == {"id": "1", "name": "Ann"}

    [sent] = meta.sent
    assert sent.method == "GET"
    assert sent.path == "/v26.0/me"
    assert sent.headers["Authorization"] == f"OAuth {USER_TOKEN}"
    assert sent.query == {"fields": "id,name", "appsecret_proof": proof(USER_TOKEN)}
    assert USER_TOKEN not in sent.url


def test_the_timestamped_proof_signs_token_and_time_and_sends_the_time():
    meta = FakeMeta([Reply(200, {"id": "1"})])
    client, _ = make_client(meta, proof_mode="timestamped", clock=lambda: 1_790_000_000.7)

    client.get_me(USER_TOKEN, fields=("id",))

    [sent] = meta.sent
    assert sent.query["appsecret_time"] == "1790000000"
    assert sent.query["appsecret_proof"] == proof(USER_TOKEN, f"{USER_TOKEN}|1790000000")


def test_an_unknown_proof_mode_is_refused():
    with pytest.raises(ValueError, match="proof_mode"):
        GraphClient(APP_ID, APP_SECRET, proof_mode="sometimes")


def test_the_code_exchange_is_a_post_with_the_secret_and_code_in_the_body():
    meta = FakeMeta([Reply(200, {"access_token": "EAAGnew", "token_type": "bearer", "expires_in": 5183944})])
    client, _ = make_client(meta)

    grant = client.exchange_code("the-code-abc", "https://portal.test/connect/callback/")

    assert grant == TokenGrant("EAAGnew", "bearer", 5183944)
    assert "EAAGnew" not in repr(grant)
    [sent] = meta.sent
    assert (sent.method, sent.path, sent.query) == ("POST", "/v26.0/oauth/access_token", {})
    assert sent.form == {
        "client_id": APP_ID,
        "client_secret": APP_SECRET,
        "code": "the-code-abc",
        "redirect_uri": "https://portal.test/connect/callback/",
    }


def test_the_long_lived_exchange_is_a_post_with_the_token_in_the_body():
    meta = FakeMeta([Reply(200, {"access_token": "EAAGlong", "token_type": "bearer"})])
    client, _ = make_client(meta)

    grant = client.exchange_long_lived(USER_TOKEN)

    assert grant.access_token == "EAAGlong"
    assert grant.expires_in is None
    [sent] = meta.sent
    assert sent.method == "POST"
    assert sent.query == {}
    assert sent.form["grant_type"] == "fb_exchange_token"
    assert sent.form["fb_exchange_token"] == USER_TOKEN


def test_a_refused_code_exchange_never_repeats_the_code_in_the_error():
    meta = FakeMeta([Reply(400, error_body(100, 36007, "Invalid verification code format: the-code-abc"))])
    client, _ = make_client(meta)

    with pytest.raises(OtherGraphError) as caught:
        client.exchange_code("the-code-abc", "https://portal.test/cb/")

    assert "the-code-abc" not in str(caught.value)
    assert "the-code-abc" not in repr(caught.value)


def test_debug_token_goes_as_a_batch_item_with_the_app_token_and_reads_every_field():
    data = {
        "data": {
            "app_id": APP_ID,
            "type": "SYSTEM_USER",
            "application": "Portal",
            "is_valid": True,
            "issued_at": 1_790_000_000,
            "expires_at": 0,
            "data_access_expires_at": 1_797_776_000,
            "scopes": ["ads_read", "business_management"],
            "granular_scopes": [{"scope": "ads_read", "target_ids": ["111", 222]}, {"scope": "business_management"}],
            "user_id": "9001",
        }
    }
    meta = FakeMeta([batch_reply([(200, data)])])
    client, _ = make_client(meta)

    info = client.debug_token(USER_TOKEN)

    [sent] = meta.sent
    assert (sent.method, sent.path, sent.query) == ("POST", "/v26.0/", {})
    assert sent.headers["Authorization"] == f"OAuth {APP_ID}|{APP_SECRET}"
    assert sent.form["appsecret_proof"] == proof(f"{APP_ID}|{APP_SECRET}")
    assert sent.batch == [{"method": "GET", "relative_url": f"debug_token?input_token={USER_TOKEN}"}]
    assert info.is_valid and info.type == "SYSTEM_USER" and info.app_id == APP_ID
    assert info.issued_at == datetime.fromtimestamp(1_790_000_000, UTC)
    assert info.expires_at is None
    assert info.data_access_expires_at == datetime.fromtimestamp(1_797_776_000, UTC)
    assert info.target_ids("ads_read") == ["111", "222"]
    assert info.target_ids("business_management") is None
    assert info.user_id == "9001"
    assert info.error is None


def test_debug_token_of_a_dead_token_is_not_valid_and_carries_the_typed_error():
    data = {"data": {"app_id": APP_ID, "is_valid": False, "scopes": [],
                     "error": {"code": 190, "subcode": 463, "message": "Session has expired"}}}
    meta = FakeMeta([batch_reply([(200, data)])])
    client, _ = make_client(meta)

    info = client.debug_token(USER_TOKEN)

    assert not info.is_valid
    assert isinstance(info.error, InvalidTokenError)
    assert info.error.is_expired


def test_list_assets_of_a_system_user_reads_the_assigned_edges_and_keeps_ad_account_numbers(calls):
    pages = {
        "/v26.0/77/assigned_pages": [{"id": "10", "name": "Shop page"}],
        "/v26.0/77/assigned_ad_accounts": [{"id": "act_20", "account_id": "20", "name": "Ads"}],
        "/v26.0/77/assigned_whatsapp_business_accounts": [{"id": "30", "name": "WABA"}],
        "/v26.0/77/assigned_product_catalogs": [{"id": "40", "name": "Catalog"}],
    }
    meta = FakeMeta(lambda r: Reply(200, {"data": pages[r.path]}))
    client, _ = make_client(meta)

    assets = client.list_assets(USER_TOKEN, system_user_id="77")

    assert assets == [
        AssetRef("page", "10", "Shop page"),
        AssetRef("ad_account", "20", "Ads"),
        AssetRef("whatsapp_business_account", "30", "WABA"),
        AssetRef("catalog", "40", "Catalog"),
    ]
    assert assets[1].graph_id == "act_20"
    # graph.edges: ad accounts also carry account_id (the bare number); the others id and name.
    assert [r.query["fields"] for r in meta.sent] == ["id,name", "id,account_id,name", "id,name", "id,name"]
    assert [c.is_marketing for c in calls] == [False, True, False, False]


def test_list_assets_of_a_user_reads_me_accounts_adaccounts_and_businesses():
    pages = {
        "/v26.0/me/accounts": [{"id": "10", "name": "Page"}],
        "/v26.0/me/adaccounts": [{"id": "act_20", "name": "Ads"}],
        "/v26.0/me/businesses": [{"id": "50", "name": "Biz"}],
    }
    meta = FakeMeta(lambda r: Reply(200, {"data": pages[r.path]}))
    client, _ = make_client(meta)

    assets = client.list_assets(USER_TOKEN)

    assert assets == [
        AssetRef("page", "10", "Page"),
        AssetRef("ad_account", "20", "Ads"),
        AssetRef("business", "50", "Biz", business_id="50"),
    ]


def test_list_assets_of_a_user_asks_which_business_owns_each_page_and_ad_account():
    pages = {
        "/v26.0/me/accounts": [{"id": "10", "name": "Page", "business": {"id": "900", "name": "Bistro"}}],
        "/v26.0/me/adaccounts": [{"id": "act_20", "account_id": "20", "name": "Ads", "business": {"id": "901"}}],
        "/v26.0/me/businesses": [{"id": "900", "name": "Bistro"}, {"id": "901", "name": "Acme"}],
    }
    meta = FakeMeta(lambda r: Reply(200, {"data": pages[r.path]}))
    client, _ = make_client(meta)

    assets = client.list_assets(USER_TOKEN)

    assert [r.query["fields"] for r in meta.sent] == ["id,name,business", "id,account_id,name,business", "id,name"]
    assert assets[:2] == [AssetRef("page", "10", "Page", "900"), AssetRef("ad_account", "20", "Ads", "901")]


def test_list_assets_keeps_the_pages_when_meta_refuses_to_name_their_business():
    def handler(request):
        if "business" in request.query["fields"]:
            return Reply(403, error_body(200, message="(#200) Requires business_management permission"))
        return Reply(200, {"data": [{"id": "10", "name": "Page"}] if request.path == "/v26.0/me/accounts" else []})

    meta = FakeMeta(handler)
    client, _ = make_client(meta)

    assert client.list_assets(USER_TOKEN) == [AssetRef("page", "10", "Page")]


def test_list_assets_skips_an_edge_the_token_has_no_permission_for():
    def handler(request):
        if request.path.endswith("assigned_whatsapp_business_accounts"):
            return Reply(403, error_body(200, message="(#200) Requires whatsapp_business_management"))
        return Reply(200, {"data": []})

    client, _ = make_client(FakeMeta(handler))

    assert client.list_assets(USER_TOKEN, system_user_id="77") == []


def test_asset_access_expiry_asks_50_ids_at_a_time_and_answers_for_every_id():
    ids = [f"{n}" for n in range(1, 121)]

    def handler(request):
        asked = request.query["ids"].split(",")
        assert request.query["fields"] == "user_access_expire_time"
        body = {i: {"id": i, "user_access_expire_time": "2026-12-23T18:46:31+0000"} for i in asked if i != "7"}
        body["8"] = {"id": "8"}
        return Reply(200, body)

    meta = FakeMeta(handler)
    client, _ = make_client(meta)

    result = client.asset_access_expiry(USER_TOKEN, ids)

    assert [len(r.query["ids"].split(",")) for r in meta.sent] == [50, 50, 20]
    assert set(result) == set(ids)
    assert result["1"] == datetime(2026, 12, 23, 18, 46, 31, tzinfo=UTC)
    assert result["7"] is None  # Meta did not mention it
    assert result["8"] is None  # no end known
    assert all(r.path == "/v26.0/" for r in meta.sent)
    assert all(USER_TOKEN not in r.url for r in meta.sent)


def test_asset_access_expiry_stops_calling_after_an_invalid_token_and_still_answers_every_id():
    meta = FakeMeta(lambda r: Reply(400, error_body(190, 460)))
    client, _ = make_client(meta)

    result = client.asset_access_expiry(USER_TOKEN, [str(n) for n in range(75)])

    assert len(meta.sent) == 1
    assert len(result) == 75
    assert all(isinstance(v, InvalidTokenError) for v in result.values())


def test_system_user_token_posts_the_subset_and_the_60_day_option():
    meta = FakeMeta([Reply(200, {"access_token": "EAAGgranular"})])
    client, _ = make_client(meta)

    token = client.system_user_token(
        "555", USER_TOKEN, "77", assets=["10", "20"], scopes=["ads_read"], expires_in_60_days=True
    )

    assert token == "EAAGgranular"
    [sent] = meta.sent
    assert (sent.method, sent.path, sent.query) == ("POST", "/v26.0/555/system_user_access_tokens", {})
    assert sent.form == {
        "system_user_id": "77",
        "asset": "10,20",
        "scope": "ads_read",
        "set_token_expires_in_60_days": "true",
        "appsecret_proof": proof(USER_TOKEN),
    }


def test_system_user_token_fetch_only_reads_the_existing_token():
    meta = FakeMeta([Reply(200, {"access_token": "EAAGexisting"})])
    client, _ = make_client(meta)

    assert client.system_user_token("555", USER_TOKEN, "77", fetch_only=True) == "EAAGexisting"
    assert meta.sent[0].form["fetch_only"] == "true"


def test_revoke_permissions_deletes_the_permissions_edge():
    meta = FakeMeta([Reply(200, {"success": True})])
    client, _ = make_client(meta)

    assert client.revoke_permissions(USER_TOKEN) is True
    assert (meta.sent[0].method, meta.sent[0].path) == ("DELETE", "/v26.0/me/permissions")


def test_the_dialog_url_carries_the_configuration_and_the_code_grant_when_asked():
    client = GraphClient(APP_ID, APP_SECRET, dialog_url="https://www.example.test/")

    url = client.dialog_url("cfg1", "https://portal.test/cb/", "st4te", response_type_code=True,
                            extras={"setup": {}})

    assert url == (
        "https://www.example.test/v26.0/dialog/oauth?client_id=1234567890"
        "&redirect_uri=https%3A%2F%2Fportal.test%2Fcb%2F&state=st4te&config_id=cfg1"
        "&response_type=code&override_default_response_type=true&extras=%7B%22setup%22%3A%7B%7D%7D"
    )
    assert "scope=" not in url


def test_the_hook_hears_every_call_with_family_status_code_and_marketing_flag(calls):
    meta = FakeMeta([Reply(200, {"data": []}), Reply(400, error_body(100))])
    client, _ = make_client(meta)

    list(client.paginate(USER_TOKEN, "act_20/campaigns"))
    with pytest.raises(OtherGraphError):
        client.get_me(USER_TOKEN)

    assert calls == [CallRecord("ads", 200, None, True), CallRecord("me", 400, 100, False)]


def test_nothing_secret_reaches_the_logs(caplog):
    caplog.set_level(logging.DEBUG)
    meta = FakeMeta([Reply(200, {"access_token": "EAAGnew"}), Reply(400, error_body(190, 463))])
    client, _ = make_client(meta)

    client.exchange_code("the-code-abc", "https://portal.test/cb/")
    with pytest.raises(InvalidTokenError):
        client.get_me(USER_TOKEN)

    assert caplog.records
    for secret in ("the-code-abc", "EAAGnew", USER_TOKEN, APP_SECRET):
        assert secret not in caplog.text


def test_the_client_repr_shows_no_secret():
    assert APP_SECRET not in repr(GraphClient(APP_ID, APP_SECRET, graph_url=GRAPH_URL))


@pytest.mark.parametrize(
    ("path", "family", "marketing"),
    [
        ("oauth/access_token", "oauth", False),
        ("debug_token?input_token=x", "debug_token", False),
        ("me", "me", False),
        ("me/accounts", "assets", False),
        ("me/adaccounts", "ads", True),
        ("act_123/insights", "ads", True),
        ("555/system_user_access_tokens", "system_user_access_tokens", False),
        ("me/permissions", "permissions", False),
        ("v26.0/77/assigned_pages", "assets", False),
        ("", "assets", False),
        ("12345", "object", False),
    ],
)
def test_paths_map_to_ledger_families(path, family, marketing):
    assert call_family(path) == family
    assert is_marketing_path(path) is marketing


def test_graph_id_prefixes_ad_accounts_only():
    assert graph_id("ad_account", "20") == "act_20"
    assert graph_id("ad_account", "act_20") == "act_20"
    assert graph_id("page", "20") == "20"

