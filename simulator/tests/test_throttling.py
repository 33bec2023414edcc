"""Rate limiting as Meta's rate-limiting page describes it: which calls are business-use-case
(BUC) limited, the codes and subcodes a throttled call gets, and X-Business-Use-Case-Usage."""

import json

import pytest

from simulator import api
from simulator.tests.conftest import batch_item, graph_call, live, post_batch

pytestmark = live

ACME, BISTRO = "9100000000000001", "9100000000000002"
ALICE, BOB = "1000000000000001", "1000000000000002"
AD_1, BISTRO_AD = api.asset_id_for("ad_account", 1, 1), api.asset_id_for("ad_account", 2, 2)
PAGE_1, BISTRO_PAGE = api.asset_id_for("page", 1, 1), api.asset_id_for("page", 2, 1)
WABA_1 = api.asset_id_for("whatsapp_business_account", 1, 1)
IG_1 = api.asset_id_for("instagram_account", 1, 1)
CATALOG_1 = api.asset_id_for("catalog", 1, 1)
EVERY_SCOPE = [
    "business_management", "pages_show_list", "ads_read", "whatsapp_business_management",
    "instagram_basic", "catalog_management",
]  # fmt: skip
# The types Meta's rate-limiting page documents for X-Business-Use-Case-Usage (and catalogs', D14).
DOCUMENTED_TYPES = {
    "ads_insights", "ads_management", "custom_audience", "instagram", "leadgen", "messenger", "pages",
    "whatsapp_business_management", "catalog_management",
}  # fmt: skip


def business_usage(response) -> dict:
    return json.loads(response.headers["X-Business-Use-Case-Usage"])


def error_of(response) -> dict:
    return response.json()["error"]


@pytest.fixture
def system_user_token(meta):
    return api.issue_token(business_id=ACME, scopes=EVERY_SCOPE)


@pytest.fixture
def user_token(meta):
    return api.issue_token(token_type="user", business_id=ACME, person_id=BOB, scopes=EVERY_SCOPE)


# --- which calls carry X-Business-Use-Case-Usage -------------------------------------------------


def test_a_plain_graph_call_has_app_usage_but_no_business_use_case_header(meta, http, user_token):
    response = graph_call(meta, http, "me", user_token)
    assert response.status_code == 200
    assert "X-App-Usage" in response.headers
    assert "X-Business-Use-Case-Usage" not in response.headers


def test_a_page_read_with_a_user_token_is_platform_limited(meta, http, user_token):
    response = graph_call(meta, http, PAGE_1, user_token)
    assert response.status_code == 200
    assert "X-Business-Use-Case-Usage" not in response.headers


@pytest.mark.parametrize(
    ("asset", "use_case"),
    [
        (f"act_{AD_1}", "ads_management"),
        (PAGE_1, "pages"),
        (WABA_1, "whatsapp_business_management"),
        (IG_1, "instagram"),
        (CATALOG_1, "catalog_management"),
    ],
)
def test_business_use_case_calls_carry_the_header_with_a_documented_type(
    meta, http, system_user_token, asset, use_case
):
    response = graph_call(meta, http, asset, system_user_token)
    assert response.status_code == 200
    usage = business_usage(response)
    assert list(usage) == [ACME]
    (entry,) = usage[ACME]
    assert entry["type"] == use_case
    assert entry["type"] in DOCUMENTED_TYPES
    assert set(entry) == {
        "type", "call_count", "total_cputime", "total_time", "estimated_time_to_regain_access", "ads_api_access_tier",
    }  # fmt: skip


def test_a_field_expansion_over_several_use_cases_lists_each_once(meta, http, system_user_token):
    system_user = api.system_user_id(ACME)
    fields = "assigned_pages{id},assigned_ad_accounts{id},assigned_whatsapp_business_accounts{id}"
    response = graph_call(meta, http, system_user, system_user_token, data={"fields": fields})
    assert response.status_code == 200
    types = [entry["type"] for entry in business_usage(response)[ACME]]
    assert sorted(types) == ["ads_management", "pages", "whatsapp_business_management"]


def test_a_business_node_read_is_not_business_use_case_limited(meta, http, system_user_token):
    # business_management is no BUC type (the simulator once sent it): no header at all.
    response = graph_call(meta, http, ACME, system_user_token, data={"fields": "id,name"})
    assert response.status_code == 200
    assert "X-Business-Use-Case-Usage" not in response.headers


# --- injected rate limits: which code -------------------------------------------------------------


def test_a_page_call_with_a_user_token_is_throttled_with_32(meta, http, user_token):
    api.set_faults(rate_limit_rate=1.0)
    response = graph_call(meta, http, PAGE_1, user_token)
    assert error_of(response)["code"] == 32
    assert "error_subcode" not in error_of(response)
    assert "X-Business-Use-Case-Usage" not in response.headers


def test_a_page_call_with_a_system_user_token_is_throttled_with_80001(meta, http, system_user_token):
    api.set_faults(rate_limit_rate=1.0)
    response = graph_call(meta, http, PAGE_1, system_user_token)
    assert error_of(response)["code"] == 80001
    assert business_usage(response)[ACME][0]["type"] == "pages"
    assert business_usage(response)[ACME][0]["call_count"] == 100


def test_a_page_call_with_a_page_token_is_throttled_with_80001(meta, http, user_token):
    page_token = api.page_token(user_token, PAGE_1)
    api.set_faults(rate_limit_rate=1.0)
    assert error_of(graph_call(meta, http, PAGE_1, page_token))["code"] == 80001


def test_ads_management_throttling_is_80004_with_subcode_2446079(meta, http, user_token):
    api.set_faults(rate_limit_rate=1.0)
    response = graph_call(meta, http, f"act_{AD_1}", user_token)
    error = error_of(response)
    assert (error["code"], error["error_subcode"], error["type"]) == (80004, 2446079, "OAuthException")
    assert "too many calls to this ad-account" in error["message"]
    assert business_usage(response)[ACME][0]["type"] == "ads_management"


def test_insights_throttling_is_80000(meta, http, user_token):
    api.set_faults(rate_limit_rate=1.0)
    response = graph_call(meta, http, f"act_{AD_1}/insights", user_token)
    assert error_of(response)["code"] == 80000
    assert business_usage(response)[ACME][0]["type"] == "ads_insights"


def test_whatsapp_and_instagram_throttling_use_their_codes(meta, http, system_user_token):
    api.set_faults(rate_limit_rate=1.0)
    assert error_of(graph_call(meta, http, WABA_1, system_user_token))["code"] == 80008
    assert error_of(graph_call(meta, http, IG_1, system_user_token))["code"] == 80002


def test_app_and_user_level_throttling_are_4_and_17(meta, http, user_token):
    api.set_faults(rate_limit_rate=1.0)
    assert error_of(graph_call(meta, http, "me", user_token))["code"] == 17
    app_token = f"{meta.app_id}|{meta.app_secret}"
    assert error_of(graph_call(meta, http, meta.app_id, app_token, proof=False))["code"] == 4


# --- one business throttled -----------------------------------------------------------------------


def test_a_throttled_business_gets_its_use_case_code_and_the_others_are_served(meta, http):
    acme = api.issue_token(business_id=ACME, scopes=EVERY_SCOPE)
    bistro = api.issue_token(business_id=BISTRO, scopes=EVERY_SCOPE)
    api.throttle_business(ACME, minutes=30)

    throttled = graph_call(meta, http, f"act_{AD_1}", acme)
    served = graph_call(meta, http, f"act_{BISTRO_AD}", bistro)

    error = error_of(throttled)
    assert (error["code"], error["error_subcode"]) == (80004, 2446079)
    entry = business_usage(throttled)[ACME][0]
    assert (entry["type"], entry["call_count"], entry["estimated_time_to_regain_access"]) == (
        "ads_management", 100, 30,
    )  # fmt: skip
    assert served.status_code == 200
    assert business_usage(served)[BISTRO][0]["call_count"] < 100
    assert error_of(graph_call(meta, http, PAGE_1, acme))["code"] == 80001


def test_a_throttled_business_still_answers_calls_outside_business_use_cases(meta, http, system_user_token):
    api.throttle_business(ACME)
    assert graph_call(meta, http, "me", system_user_token).status_code == 200


def test_a_throttle_can_cover_only_some_use_cases(meta, http, system_user_token):
    api.throttle_business(ACME, use_cases=["pages"])
    assert error_of(graph_call(meta, http, PAGE_1, system_user_token))["code"] == 80001
    assert graph_call(meta, http, f"act_{AD_1}", system_user_token).status_code == 200


def test_a_throttle_lifts_when_its_time_is_up_or_when_cleared(meta, http, system_user_token):
    api.throttle_business(ACME, minutes=10)
    api.advance_clock(10 * 60 + 1)
    assert graph_call(meta, http, PAGE_1, system_user_token).status_code == 200
    api.throttle_business(ACME, minutes=10)
    api.clear_throttles()
    assert graph_call(meta, http, PAGE_1, system_user_token).status_code == 200


def test_in_a_batch_only_the_throttled_business_items_fail(meta, http):
    acme = api.issue_token(business_id=ACME, scopes=EVERY_SCOPE)
    bistro = api.issue_token(business_id=BISTRO, scopes=EVERY_SCOPE)
    api.throttle_business(BISTRO)
    items = [batch_item(meta, f"act_{AD_1}", acme), batch_item(meta, BISTRO_PAGE, bistro)]
    response = post_batch(meta, http, items)
    acme_item, bistro_item = response.json()
    assert acme_item["code"] == 200
    assert json.loads(bistro_item["body"])["error"]["code"] == 80001
    headers = {h["name"]: h["value"] for h in bistro_item["headers"]}
    assert json.loads(headers["X-Business-Use-Case-Usage"])[BISTRO][0]["call_count"] == 100


def test_one_business_usage_can_be_raised_alone(meta, http):
    acme = api.issue_token(business_id=ACME, scopes=EVERY_SCOPE)
    bistro = api.issue_token(business_id=BISTRO, scopes=EVERY_SCOPE)
    api.set_usage(88, business_id=ACME)
    assert business_usage(graph_call(meta, http, PAGE_1, acme))[ACME][0]["call_count"] == 88
    assert business_usage(graph_call(meta, http, BISTRO_PAGE, bistro))[BISTRO][0]["call_count"] < 88
    assert json.loads(graph_call(meta, http, PAGE_1, acme).headers["X-App-Usage"])["call_count"] < 88


def test_throttling_an_unknown_use_case_is_refused(meta):
    with pytest.raises(ValueError, match="Unknown use cases"):
        api.throttle_business(ACME, use_cases=["business_management"])
