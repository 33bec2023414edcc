"""The Graph proxy through a live server, against the simulator over HTTP: Meta's answers passed through, the
ledger, a 190, throttling, batches, refusals."""

from __future__ import annotations

import json

import pytest
import requests

from api.models import ApiUse, Scope
from outbound.models import Event
from simulator.api import ACME, asset_id_for
from simulator.models import SimAsset
from testsupport.factories import install_simulated_token, make_client
from tokens.models import AccessToken, TokenEvent
from verification import ledger

from .conftest import assert_error

pytestmark = pytest.mark.django_db(transaction=True)

PAGE = asset_id_for(SimAsset.Kind.PAGE, 1, 1)
AD_ACCOUNT = asset_id_for(SimAsset.Kind.AD_ACCOUNT, 1, 1)
USAGE_HEADERS = ("X-App-Usage", "X-Business-Use-Case-Usage", "X-Ad-Account-Usage")


@pytest.fixture
def world(simulated_meta, api_base):
    """Acme Bakery onboarded with a system-user token from the simulator (its Pages, ad accounts...)."""
    acme = make_client("Acme Bakery", meta_business_id=ACME)
    token = install_simulated_token(simulated_meta, acme, token_type="system_user")
    return simulated_meta, acme, token


@pytest.fixture
def proxy(caller, credential_factory):
    _, secret = credential_factory("Publisher", [Scope.GRAPH_PROXY])
    return caller.with_secret(secret)


def through_proxy(proxy, method, path, asset=PAGE, **kwargs):
    headers = {"X-Portal-Asset": asset, **kwargs.pop("headers", {})}
    return proxy.request(method, f"/api/v1/graph/{path}", headers=headers, **kwargs)


def direct(meta, token_value, path, params=None):
    """The same call straight to the simulator, as the portal makes it."""
    url = f"{meta.graph_url}/{path}" if path.startswith("v2") else meta.graph(path)
    return requests.get(
        url, params={**(params or {}), "appsecret_proof": meta.proof(token_value)},
        headers={"Authorization": f"OAuth {token_value}"}, timeout=30,
    )  # fmt: skip


def marketing_and_graph() -> tuple[tuple[int, int], tuple[int, int]]:
    return ledger.totals_in_window("marketing", 1), ledger.totals_in_window("graph", 1)


def test_metas_answer_and_usage_headers_come_back_byte_for_byte(world, proxy):
    meta, _, token = world
    meta.api.set_usage(30)  # the usage headers then say the same for both calls
    for path, params, asset in [
        (PAGE, {"fields": "id,name,category"}, PAGE),
        (f"act_{AD_ACCOUNT}", {"fields": "id,name,account_status"}, AD_ACCOUNT),
        (PAGE, {"fields": "no_such_field"}, PAGE),  # Meta's error, as it is
        (f"v24.0/{PAGE}", {"fields": "id"}, PAGE),  # the path's own version
    ]:
        expected = direct(meta, token.value, path, params)
        answer = through_proxy(proxy, "GET", path, asset=asset, params=params)

        assert answer.status_code == expected.status_code, path
        trace = expected.headers["x-fb-trace-id"]  # an error body names its own request's trace id
        assert answer.content == expected.content.replace(trace.encode(), answer.headers["x-fb-trace-id"].encode())
        for name in (*USAGE_HEADERS, "Content-Type", "facebook-api-version"):
            assert answer.headers.get(name) == expected.headers.get(name), (path, name)
    assert "X-Business-Use-Case-Usage" in answer.headers and "X-Ad-Account-Usage" not in answer.headers
    assert answer.headers["facebook-api-version"] == "v24.0"


def test_the_ledger_counts_each_answer_marketing_apart_from_the_rest(world, proxy):
    (marketing_before, graph_before) = marketing_and_graph()
    assert through_proxy(proxy, "GET", PAGE, params={"fields": "id"}).status_code == 200
    ad_account = f"act_{AD_ACCOUNT}"
    assert through_proxy(proxy, "GET", ad_account, asset=AD_ACCOUNT, params={"fields": "id"}).status_code == 200
    assert through_proxy(proxy, "GET", ad_account, asset=AD_ACCOUNT, params={"fields": "nope"}).status_code == 400
    marketing, graph = marketing_and_graph()
    assert (marketing[0] - marketing_before[0], marketing[1] - marketing_before[1]) == (2, 1)
    assert (graph[0] - graph_before[0], graph[1] - graph_before[1]) == (1, 0)


def test_a_batch_passes_through_and_counts_per_item(world, proxy):
    items = [
        {"method": "GET", "relative_url": f"{PAGE}?fields=id,name"},
        {"method": "GET", "relative_url": f"act_{AD_ACCOUNT}?fields=id"},
        {"method": "GET", "relative_url": f"act_{AD_ACCOUNT}?fields=name"},
    ]
    marketing_before, graph_before = marketing_and_graph()
    answer = through_proxy(proxy, "POST", "", data={"batch": json.dumps(items), "include_headers": "false"})
    assert answer.status_code == 200
    results = answer.json()
    assert [item["code"] for item in results] == [200, 200, 200]
    assert json.loads(results[0]["body"])["id"] == PAGE
    marketing, graph = marketing_and_graph()
    assert (marketing[0] - marketing_before[0], graph[0] - graph_before[0]) == (2, 1)


def test_a_multipart_batch_as_metas_examples_send_it_passes_too(world, proxy):
    items = json.dumps([{"method": "GET", "relative_url": f"{PAGE}?fields=id"}])
    answer = through_proxy(proxy, "POST", "", files={"batch": (None, items)})
    assert answer.status_code == 200 and json.loads(answer.json()[0]["body"]) == {"id": PAGE}


def test_a_190_marks_the_token_invalid_at_once_and_the_connection_broken_once(world, proxy):
    meta, acme, token = world
    meta.api.invalidate_token(token.value)

    answer = through_proxy(proxy, "GET", PAGE, params={"fields": "id"})

    assert answer.json()["error"]["code"] == 190  # Meta's answer, passed through
    token.refresh_from_db()
    assert (token.status, token.error_code) == (AccessToken.Status.INVALID, 190)
    assert TokenEvent.objects.filter(token=token, kind=TokenEvent.Kind.INVALIDATED).count() == 1
    acme.refresh_from_db()
    assert acme.status == "needs_reauth"
    again = through_proxy(proxy, "GET", PAGE, params={"fields": "id"})
    assert_error(again, 409, "needs_reauthorization")
    assert again.json()["error"]["reconnect_url"]
    broken = Event.objects.filter(type="connection.broken")
    assert [(e.key, e.data["reason"]) for e in broken] == [(f"connection.broken:token:{token.pk}", "invalid")]


def test_a_throttled_business_gets_429_with_retry_after_without_calling_meta(world, proxy):
    meta, _, _ = world
    meta.api.throttle_business(ACME, minutes=5)
    throttled = through_proxy(proxy, "GET", PAGE, params={"fields": "id"})
    assert throttled.json()["error"]["code"] == 80001  # Meta's own answer first, as it is
    assert json.loads(throttled.headers["X-Business-Use-Case-Usage"])[ACME][0]["estimated_time_to_regain_access"] == 5
    asked = meta.api.request_count()

    held = through_proxy(proxy, "GET", PAGE, params={"fields": "id"})

    assert_error(held, 429, "meta_throttled")
    assert 240 < int(held.headers["Retry-After"]) <= 300
    assert meta.api.request_count() == asked


def test_the_apps_usage_at_the_stop_level_holds_every_call(world, proxy):
    meta, _, _ = world
    meta.api.set_usage(100)
    assert through_proxy(proxy, "GET", PAGE, params={"fields": "id"}).status_code == 200  # Meta answered: at 100%
    held = through_proxy(proxy, "GET", f"act_{AD_ACCOUNT}", asset=AD_ACCOUNT)
    assert_error(held, 429, "meta_throttled")
    assert int(held.headers["Retry-After"]) > 0


def test_tokens_in_metas_answer_never_reach_the_caller(world, proxy):
    meta, _, token = world
    answer = through_proxy(proxy, "GET", "me/accounts", params={"limit": "1"})
    assert answer.status_code == 200 and answer.headers["X-Portal-Redacted"] == "access_token"
    body = answer.json()
    assert body["data"] and all("access_token" not in page for page in body["data"])
    assert body["paging"]["next"].startswith(f"{meta.base_url}/api/v1/graph/v26.0/me/accounts?")
    assert token.value not in answer.text and "appsecret_proof" not in answer.text
    following = through_proxy(proxy, "GET", body["paging"]["next"].split("/api/v1/graph/", 1)[1])
    assert following.status_code == 200 and following.json()["data"][0]["id"] != body["data"][0]["id"]


def test_the_client_can_be_named_instead_of_an_asset(world, proxy):
    _, acme, _ = world
    answer = proxy.get("/api/v1/graph/me", params={"fields": "id"}, headers={"X-Portal-Client": str(acme.pk)})
    assert answer.status_code == 200 and answer.json()["id"]


def test_a_credential_limited_to_another_client_gets_404(world, caller, credential_factory):
    _, acme, _ = world
    other = make_client("Bistro Nord", meta_business_id="9100000000000002")
    _, secret = credential_factory("Bistro only", [Scope.GRAPH_PROXY], clients=[other])
    limited = caller.with_secret(secret)
    assert_error(through_proxy(limited, "GET", PAGE), 404, "asset_not_found")
    assert_error(limited.get("/api/v1/graph/me", headers={"X-Portal-Client": str(acme.pk)}), 404, "client_not_found")


def test_the_scope_is_needed(world, caller, credential_factory):
    _, secret = credential_factory("Tokens only", [Scope.TOKENS_READ])
    assert_error(through_proxy(caller.with_secret(secret), "GET", PAGE), 403, "insufficient_scope")


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", PAGE, {"params": {"access_token": "mine"}}, 400, "secret_not_allowed"),
        ("GET", "oauth/access_token", {}, 403, "path_not_proxied"),
        ("POST", "123/system_user_access_tokens", {}, 403, "path_not_proxied"),
        ("DELETE", "me/permissions", {}, 403, "path_not_proxied"),
        ("PUT", PAGE, {}, 405, "method_not_allowed"),
        ("GET", PAGE, {"headers": {"X-Portal-Asset": ""}}, 400, "asset_required"),
        ("GET", PAGE, {"headers": {"X-Portal-Asset": "page one"}}, 400, "bad_asset"),
        ("GET", PAGE, {"headers": {"X-Portal-Asset": "123456789"}}, 404, "asset_not_found"),
    ],
)
def test_what_cannot_go_to_meta_is_refused_in_words(world, proxy, method, path, kwargs, status, code):
    meta, _, _ = world
    asked = meta.api.request_count()
    assert_error(through_proxy(proxy, method, path, **kwargs), status, code)
    assert meta.api.request_count() == asked


def test_every_proxied_call_is_audited_without_its_query(world, proxy):
    _, acme, _ = world
    through_proxy(proxy, "GET", PAGE, params={"fields": "id"})
    use = ApiUse.objects.get()
    assert (use.action, use.client_id, use.asset_meta_id, use.status_code, use.outcome) == (
        "graph_proxy", acme.pk, PAGE, 200, "ok"
    )


def test_a_proxied_call_costs_the_same_queries_whatever_the_asset_batch_or_grants(world, credential_factory):
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from testsupport.factories import make_grant, make_token
    from tokens.models import Asset

    _, acme, _ = world
    page = Asset.objects.get(meta_id=PAGE)
    for _ in range(20):  # old user tokens on the same Page: not read one by one
        make_grant(make_token(acme), page)
    _, secret = credential_factory("Counted", [Scope.GRAPH_PROXY])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    batch = json.dumps([{"method": "GET", "relative_url": f"{PAGE}?fields=id"}] * 3)
    calls = [
        lambda: client.get(f"/api/v1/graph/{PAGE}", {"fields": "id"}, HTTP_X_PORTAL_ASSET=PAGE),  # last_used_at
        lambda: client.get(f"/api/v1/graph/{PAGE}", {"fields": "id"}, HTTP_X_PORTAL_ASSET=PAGE),
        lambda: client.get(f"/api/v1/graph/act_{AD_ACCOUNT}", {"fields": "id"}, HTTP_X_PORTAL_ASSET=AD_ACCOUNT),
        lambda: client.post("/api/v1/graph/", {"batch": batch}, HTTP_X_PORTAL_ASSET=PAGE),
    ]
    counts = []
    for call in calls:
        with CaptureQueriesContext(connection) as queries:
            assert call().status_code == 200
        counts.append(len(queries))
    # The first: the credential (read once, then kept while its change marker stays, D91), the
    # last_used_at write, the grants with the chosen value (tokens.selection), the audit row.
    # Then the grants and the audit row.
    assert counts == [4, 2, 2, 2]


def test_neither_the_token_nor_its_proof_is_logged_or_answered(world, proxy, caplog):
    import logging

    meta, _, token = world
    caplog.set_level(logging.DEBUG)
    answers = [
        through_proxy(proxy, "GET", PAGE, params={"fields": "id"}),
        through_proxy(proxy, "GET", PAGE, params={"fields": "nope"}),  # Meta's error
        through_proxy(proxy, "POST", "", data={"batch": json.dumps([{"method": "GET", "relative_url": "me"}])}),
    ]
    # The portal's records; the simulator's own (it stands where Meta's servers are) are Meta's business.
    ours = [record for record in caplog.records if "/simulator/" not in record.getMessage()]
    logged = "\n".join(f"{record.getMessage()} {record.__dict__}" for record in ours)
    assert "/api/v1/graph/" in logged  # the access records were heard
    for secret in (token.value, meta.proof(token.value)):
        assert secret not in logged
        assert all(secret not in answer.text and secret not in str(answer.headers) for answer in answers)


def test_calls_seeing_the_same_190_at_once_mark_and_tell_it_once(world, proxy):
    from concurrent.futures import ThreadPoolExecutor

    meta, _, token = world
    meta.api.invalidate_token(token.value)
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: through_proxy(proxy, "GET", PAGE, params={"fields": "id"}), range(4)))
    assert {answer.status_code for answer in answers} <= {400, 409}  # Meta's 190, or no token works any more
    assert TokenEvent.objects.filter(token=token, kind=TokenEvent.Kind.INVALIDATED).count() == 1
    assert Event.objects.filter(type="connection.broken").count() == 1
