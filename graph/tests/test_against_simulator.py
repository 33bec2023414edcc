"""The client against the simulator over real HTTP: real responses, real headers, real batches."""

from __future__ import annotations

import math
import socket
from datetime import UTC, timedelta

import pytest

from graph.client import GraphClient
from graph.errors import (
    InvalidTokenError,
    OtherGraphError,
    PermissionDeniedError,
    RateLimitError,
    TransientError,
)
from graph.hooks import register_call_hook, unregister_call_hook
from graph.types import AssetRef, BatchItem

ACME = "9100000000000001"
GLOBEX = "9100000000000004"  # 30 Pages: more than one page of results
ACME_AD_ACCOUNT = "act_3001000000000001"


@pytest.fixture
def meta(simulated_meta):
    return simulated_meta


@pytest.fixture
def delays():
    return []


def build_client(meta, delays, **kwargs) -> GraphClient:
    options = {
        "app_id": meta.app_id,
        "app_secret": meta.app_secret,
        "version": meta.version,
        "graph_url": meta.graph_url,
        "dialog_url": meta.dialog_url,
        "sleep": delays.append,
        "jitter": lambda: 1.0,
        "timeout": 10.0,
    }
    options.update(kwargs)
    return GraphClient(**options)


@pytest.fixture
def client(meta, delays):
    with build_client(meta, delays) as graph:
        yield graph


@pytest.fixture
def calls():
    records = []
    register_call_hook(records.extend)
    yield records
    unregister_call_hook(records.extend)


def user_token(meta, business=ACME, **kwargs) -> str:
    return meta.api.issue_token(token_type="user", business_id=business, **kwargs)


def system_user_token(meta, business=ACME, **kwargs) -> str:
    return meta.api.issue_token(token_type="system_user", business_id=business, **kwargs)


# --- tokens ----------------------------------------------------------------------------------------


def test_a_code_is_exchanged_once_and_the_token_inspected(meta, client):
    code = meta.api.create_code(redirect_uri=meta.redirect_uri, asset_ids=[])

    grant = client.exchange_code(code, meta.redirect_uri)
    info = client.debug_token(grant.access_token)

    assert info.is_valid
    assert info.app_id == meta.app_id
    assert info.type == "USER"
    with pytest.raises(OtherGraphError) as again:
        client.exchange_code(code, meta.redirect_uri)
    assert again.value.subcode == 36009
    assert code not in str(again.value)


def test_a_short_lived_user_token_becomes_long_lived(meta, client):
    short = meta.api.issue_token(token_type="user", business_id=ACME, expires_in=3600)

    grant = client.exchange_long_lived(short)

    info = client.debug_token(grant.access_token)
    assert info.is_valid
    assert info.expires_at - meta.api.now() > timedelta(days=50)


def test_debug_token_reports_a_system_user_token_with_its_granular_scopes(meta, client):
    token = system_user_token(meta)

    info = client.debug_token(token)

    assert info.is_valid and info.type == "SYSTEM_USER"
    assert info.expires_at is None
    assert "business_management" in info.scopes
    assert info.granular_scopes


@pytest.mark.parametrize(("break_it", "subcode"), [("expire", 463), (460, 460), (458, 458), (492, 492)])
def test_a_dead_token_is_an_invalid_token_error_with_its_subcode(meta, client, break_it, subcode):
    token = user_token(meta)
    if break_it == "expire":
        meta.api.expire_token(token)
    else:
        meta.api.invalidate_token(token, break_it)

    with pytest.raises(InvalidTokenError) as caught:
        client.get_me(token)
    info = client.debug_token(token)

    assert caught.value.code == 190
    assert caught.value.subcode == subcode
    assert caught.value.fbtrace_id
    assert not info.is_valid
    assert isinstance(info.error, InvalidTokenError) and info.error.subcode == subcode


def test_a_missing_permission_is_a_permission_error(meta, client):
    token = system_user_token(meta, scopes=["pages_show_list"])
    system_user = meta.api.system_user_id(ACME)

    with pytest.raises(PermissionDeniedError) as caught:
        client.system_user_token(ACME, token, system_user, fetch_only=True)

    assert caught.value.code == 200
    assert caught.value.http_status == 403


def test_an_unknown_object_is_an_other_error(meta, client):
    with pytest.raises(OtherGraphError) as caught:
        client._call("GET", "123456789", token=user_token(meta))

    assert caught.value.code == 100


# --- appsecret_proof -------------------------------------------------------------------------------


def test_a_wrong_appsecret_proof_is_rejected(meta, delays):
    token = user_token(meta)
    wrong = build_client(meta, delays, app_secret="not-the-app-secret")

    with pytest.raises(OtherGraphError) as caught:
        wrong.get_me(token)

    assert caught.value.code == 100
    assert "appsecret_proof" in caught.value.message


def test_the_timestamped_proof_is_accepted_and_a_stale_one_rejected(meta, delays):
    import time

    token = user_token(meta)
    fresh = build_client(meta, delays, proof_mode="timestamped")
    stale = build_client(meta, delays, proof_mode="timestamped", clock=lambda: time.time() - 3600)

    assert fresh.get_me(token, fields=("id",))["id"]
    with pytest.raises(OtherGraphError, match="appsecret_proof"):
        stale.get_me(token)


# --- faults: retries, rate limits, timeouts ---------------------------------------------------------


def test_transient_errors_are_retried_with_backoff_and_then_raised(meta, client, delays):
    token = user_token(meta)
    meta.api.set_faults(error_rate=1.0)
    before = meta.api.request_count()

    with pytest.raises(TransientError) as caught:
        client.get_me(token)

    assert meta.api.request_count() - before == 4
    assert delays == [0.5, 1.0, 2.0]
    assert caught.value.http_status in (500, 503)
    assert caught.value.is_transient


def test_a_flaky_meta_still_answers_through_the_retries(meta, client, delays):
    token = user_token(meta)
    meta.api.set_faults(error_rate=0.5, seed=7)

    answers = [client.get_me(token, fields=("id",)) for _ in range(5)]

    assert all(a["id"] for a in answers)
    assert delays  # some calls needed a retry


def test_a_gateway_timeout_is_transient(meta, client):
    token = user_token(meta)
    meta.api.set_faults(timeout_rate=1.0)

    with pytest.raises(TransientError) as caught:
        client.get_me(token)

    assert caught.value.http_status == 504


def test_a_read_timeout_is_transient_and_never_retried_for_a_code_exchange(meta, delays):
    # A socket that accepts connections (the kernel's backlog) but never answers: a real read
    # timeout, without leaving a slow request running in the simulator for the next test.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        slow = build_client(meta, delays, graph_url=f"http://127.0.0.1:{port}/simulator/graph", timeout=0.2)
        with pytest.raises(TransientError) as caught:
            slow.exchange_code("code-never-answered", meta.redirect_uri)

    assert caught.value.http_status == 0
    assert "ReadTimeout" in caught.value.message
    assert delays == []


def test_a_refused_connection_is_transient(meta, delays):
    nowhere = build_client(meta, delays, graph_url="http://127.0.0.1:9/simulator/graph", max_retries=1)

    with pytest.raises(TransientError) as caught:
        nowhere.get_me("EAAG-never-sent")

    assert caught.value.http_status == 0
    assert len(delays) == 1


@pytest.mark.parametrize(
    ("path", "code", "subcode"),
    [("{ad}", 80004, 2446079), ("{ad}/insights", 80000, None)],
)
def test_business_use_case_rate_limits_carry_the_wait_meta_announced_and_stop_the_retries(
    meta, client, delays, path, code, subcode
):
    token = user_token(meta)
    meta.api.set_faults(rate_limit_rate=1.0)
    before = meta.api.request_count()

    with pytest.raises(RateLimitError) as caught:
        client._call("GET", path.format(ad=ACME_AD_ACCOUNT), token=token)

    assert (caught.value.code, caught.value.subcode) == (code, subcode)
    assert meta.api.request_count() - before == 1  # 5 minutes is longer than we block for
    assert delays == []
    assert caught.value.retry_after == 300
    assert client.usage.regain_access_seconds() == 300
    assert client.usage.max_percent() == 100


def test_a_platform_rate_limit_announces_no_wait_and_is_retried_with_backoff(meta, client, delays):
    # Only business-use-case calls carry X-Business-Use-Case-Usage, where Meta says how long to wait.
    token = user_token(meta)
    meta.api.set_faults(rate_limit_rate=1.0)
    before = meta.api.request_count()

    with pytest.raises(RateLimitError) as caught:
        client.get_me(token)

    assert caught.value.code == 17
    assert caught.value.retry_after is None
    assert meta.api.request_count() - before == 1 + client.max_retries
    assert delays == [0.5, 1.0, 2.0]


def test_an_app_token_rate_limit_is_code_4(meta, client):
    token = user_token(meta)
    meta.api.set_faults(rate_limit_rate=1.0)

    with pytest.raises(RateLimitError) as caught:
        client.debug_token(token)

    assert caught.value.code == 4


def test_a_custom_rate_limit_code_is_a_rate_limit(meta, client):
    token = user_token(meta)
    meta.api.set_faults(rate_limit_rate=1.0, rate_limit_code=613)

    with pytest.raises(RateLimitError) as caught:
        client.get_me(token)

    assert caught.value.code == 613


def test_usage_headers_let_callers_slow_down_before_meta_refuses(meta, client):
    token = user_token(meta)
    meta.api.set_usage(85)

    client._call("GET", ACME_AD_ACCOUNT, token=token)  # a business-use-case call: ads management

    assert client.usage.max_percent() >= 85
    assert client.usage.business_percent(ACME) >= 85


# --- batches -------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 50, 51, 1000])
def test_debug_tokens_sends_one_request_per_50_and_answers_every_token(meta, client, calls, n):
    good = user_token(meta)
    dead = user_token(meta)
    meta.api.invalidate_token(dead, 460)
    tokens = [dead if i % 10 == 3 else good for i in range(n)]
    before = meta.api.request_count()

    infos = client.debug_tokens(tokens)

    assert meta.api.request_count() - before == math.ceil(n / 50)
    assert len(infos) == n
    for value, info in zip(tokens, infos, strict=True):
        assert info.is_valid is (value == good)
    assert len(calls) == n


def test_a_failed_item_is_its_own_typed_error_and_never_fails_the_batch(meta, client):
    token = user_token(meta)
    items = [BatchItem("GET", "me?fields=id"), BatchItem("GET", "123456789"), BatchItem("GET", "me?fields=name")]

    results = client.batch(token, items)

    assert results[0]["id"] and results[2]["name"]
    assert isinstance(results[1], OtherGraphError) and results[1].code == 100


def test_unfinished_items_are_sent_again_alone_until_done(meta, client, delays):
    token = user_token(meta)
    meta.api.set_faults(timeout_rate=0.05, seed=3)

    results = client.batch(token, [BatchItem("GET", "me?fields=id")] * 120)

    assert len(results) == 120
    assert delays  # Meta left some items unfinished and they went again
    finished = [r for r in results if isinstance(r, dict)]
    assert all(r["id"] for r in finished)
    assert all(isinstance(r, TransientError) for r in results if not isinstance(r, dict))
    assert len(finished) >= 110


def test_an_invalid_envelope_token_raises_instead_of_blaming_the_items(meta, client):
    token = user_token(meta)
    meta.api.expire_token(token)

    with pytest.raises(InvalidTokenError):
        client.batch(token, [BatchItem("GET", "me")] * 3)


# --- pagination and assets -------------------------------------------------------------------------


def test_paginate_walks_every_page(meta, client):
    token = user_token(meta, business=GLOBEX)
    before = meta.api.request_count()

    pages = list(client.paginate(token, "me/accounts", {"fields": "id,name", "limit": 7}))

    assert len(pages) == 30
    assert len({p["id"] for p in pages}) == 30
    assert meta.api.request_count() - before == 5


def test_list_assets_of_a_user_token_spans_pages_and_keeps_ad_account_numbers(meta, client):
    token = user_token(meta, business=GLOBEX)

    assets = client.list_assets(token)

    kinds = [a.kind for a in assets]
    assert kinds.count("page") == 30
    assert kinds.count("ad_account") == 2
    assert AssetRef("business", GLOBEX, "Globex Media", GLOBEX) in assets
    assert all(not a.meta_id.startswith("act_") for a in assets)


def test_list_assets_of_a_system_user_token_reads_its_assigned_assets(meta, client):
    token = system_user_token(
        meta, scopes=["pages_show_list", "ads_read", "whatsapp_business_management", "catalog_management"]
    )
    system_user = client.get_me(token, fields=("id", "client_business_id"))

    assets = client.list_assets(token, system_user_id=system_user["id"])

    assert system_user["client_business_id"] == ACME
    assert {a.kind for a in assets} >= {"page", "ad_account", "whatsapp_business_account", "catalog"}


def test_page_tokens_come_from_me_accounts_for_user_and_system_user_tokens(meta, client):
    pages = ["2001000000000001", "2001000000000002"]
    for token in (user_token(meta, asset_ids=pages), system_user_token(meta, asset_ids=pages)):
        found = client.page_tokens(token)

        assert [page.page_id for page in found] == pages
        assert found[0].name == "Acme Bakery Page 1"
        infos = client.debug_tokens([page.access_token for page in found])
        assert [(info.type, info.profile_id) for info in infos] == [("PAGE", page) for page in pages]
        assert found[0].access_token not in repr(found[0])


def test_list_assets_skips_the_edges_a_missing_permission_refuses(meta, client):
    token = system_user_token(meta, scopes=["pages_show_list"])

    assets = client.list_assets(token, system_user_id=meta.api.system_user_id(ACME))

    assert {a.kind for a in assets} == {"page"}


def test_asset_access_expiry_finds_the_end_of_personal_access_after_a_move_to_managed_accounts(meta, client):
    token = user_token(meta)
    assets = client.list_assets(token)
    ids = [a.graph_id for a in assets if a.kind in ("page", "ad_account")]
    assert client.asset_access_expiry(token, ids) == dict.fromkeys(ids)

    ends = meta.api.migrate_to_managed_accounts(ACME)
    expiry = client.asset_access_expiry(token, ids)

    assert set(expiry) == set(ids)
    assert all(abs(value - ends.astimezone(UTC)) < timedelta(seconds=1) for value in expiry.values())


def test_system_user_token_management_fetches_and_derives_a_granular_token(meta, client):
    token = system_user_token(meta)
    system_user = meta.api.system_user_id(ACME)
    page = next(a for a in client.list_assets(token, system_user_id=system_user) if a.kind == "page")

    assert client.system_user_token(ACME, token, system_user, fetch_only=True) == token
    granular = client.system_user_token(
        ACME, token, system_user, assets=[page.meta_id], scopes=["pages_show_list"], expires_in_60_days=True
    )

    info = client.debug_token(granular)
    assert info.is_valid and info.scopes == ["pages_show_list"]
    assert timedelta(days=59) < info.expires_at - meta.api.now() <= timedelta(days=60)


def test_revoking_permissions_kills_the_token(meta, client):
    token = user_token(meta)

    assert client.revoke_permissions(token) is True

    with pytest.raises(InvalidTokenError):
        client.get_me(token)


def test_every_call_reaches_the_hook_with_the_marketing_flag(meta, client, calls):
    token = user_token(meta)

    ad_account = next(a for a in client.list_assets(token) if a.kind == "ad_account")
    calls.clear()
    client.get_me(token)
    client._call("GET", ad_account.graph_id, token=token, params={"fields": "id,name"})

    assert [(c.family, c.http_status, c.is_marketing) for c in calls][:1] == [("me", 200, False)]
    assert calls[1].is_marketing and calls[1].family == "ads"


# --- the whole-run leak check knows what the simulator issued ---------------------------------------


def test_the_leak_check_would_catch_a_simulator_token_or_code_in_a_url(meta):
    from testsupport.leakcheck import LeakRecorder
    from testsupport.pytest_leakcheck import leak_check_secrets

    token = user_token(meta)
    code = meta.api.create_code(redirect_uri=meta.redirect_uri, asset_ids=[])
    recorder = LeakRecorder()  # fed directly: sending these URLs would fail the real run
    recorder.record("url", meta.graph("me") + f"?access_token={token}")
    recorder.record("request line", f'"GET /connect/callback/?code={code}&state=x HTTP/1.1" 302 0')

    leaks = recorder.find_leaks(leak_check_secrets())

    assert sorted(leak.split(":")[0] for leak in leaks) == ["request line", "url"]
    assert meta.app_secret in leak_check_secrets()
