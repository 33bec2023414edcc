"""A client written for Meta works unchanged against the simulator: Meta's own Python SDK
(facebook-business, pinned in requirements.txt), with only its Graph base URL changed."""

import json

import pytest

from simulator import api
from simulator.tests.conftest import debug, live, throwaway_token

pytestmark = live

ACME, GLOBEX, BOB, GUS = "9100000000000001", "9100000000000004", "1000000000000002", "1000000000000005"
PAGE_1, PAGE_2 = api.asset_id_for("page", 1, 1), api.asset_id_for("page", 1, 2)
AD_1 = api.asset_id_for("ad_account", 1, 1)
SCOPES = ["business_management", "pages_show_list", "pages_read_engagement", "ads_read"]


@pytest.fixture
def sdk_for(meta):
    from facebook_business.api import FacebookAdsApi
    from facebook_business.session import FacebookSession

    def connect(token: str):
        session = FacebookSession(meta.app_id, meta.app_secret, token)
        session.GRAPH = meta.graph_url
        return FacebookAdsApi(session, api_version=meta.version)

    return connect


@pytest.fixture
def sdk_api(sdk_for):
    # The SDK puts the token in the query string, so it gets tokens the simulator never issued.
    return sdk_for(throwaway_token("EAAsdkThrowawayToken0001", asset_ids=[PAGE_1, AD_1]))


@pytest.fixture
def sdk_user(sdk_for):
    token = throwaway_token(
        "EAAsdkThrowawayUserToken0001",
        token_type="user",
        business_id=ACME,
        person_id=BOB,
        scopes=SCOPES,
        asset_ids=[PAGE_1, PAGE_2, AD_1],
    )
    return sdk_for(token)


def test_the_sdk_reads_a_page_and_an_ad_account(sdk_api):
    from facebook_business.adobjects.adaccount import AdAccount
    from facebook_business.adobjects.page import Page

    page = Page(PAGE_1, api=sdk_api).api_get(fields=[Page.Field.id, Page.Field.name])
    account = AdAccount(f"act_{AD_1}", api=sdk_api).api_get(fields=[AdAccount.Field.name])
    assert page[Page.Field.name] == "Acme Bakery Page 1"
    assert account[AdAccount.Field.name] == "Acme Bakery Ad account 1"


def test_the_sdk_turns_a_simulator_error_into_its_request_error(sdk_api):
    from facebook_business.adobjects.page import Page
    from facebook_business.exceptions import FacebookRequestError

    with pytest.raises(FacebookRequestError) as raised:
        Page(api.asset_id_for("page", 2, 1), api=sdk_api).api_get(fields=[Page.Field.name])
    assert raised.value.api_error_code() == 100
    assert raised.value.api_error_subcode() == 33


def test_the_sdk_gets_page_tokens_from_me_accounts(meta, http, sdk_user):
    from facebook_business.adobjects.page import Page
    from facebook_business.adobjects.user import User

    pages = list(User(fbid="me", api=sdk_user).get_accounts())  # Meta's default fields of the edge
    assert [page[Page.Field.id] for page in pages] == [PAGE_1, PAGE_2]
    assert all(isinstance(page, Page) for page in pages)
    assert pages[0][Page.Field.category] == "Business"
    assert "MANAGE" in pages[0]["tasks"]
    page_token = pages[0][Page.Field.access_token]
    inspected = debug(meta, http, page_token)  # the Page token itself goes in a body, never a URL
    assert (inspected["type"], inspected["profile_id"]) == ("PAGE", PAGE_1)


def test_the_sdks_cursor_walks_every_page_of_an_edge(sdk_for):
    from facebook_business.adobjects.user import User

    globex_pages = [api.asset_id_for("page", 4, n) for n in range(1, api.GLOBEX_PAGES + 1)]
    token = throwaway_token(
        "EAAsdkThrowawayGlobexToken01",
        token_type="user",
        business_id=GLOBEX,
        person_id=GUS,
        scopes=["pages_show_list"],
        asset_ids=globex_pages,
    )
    before = api.request_count()
    cursor = User(fbid="me", api=sdk_for(token)).get_accounts(fields=["id"], params={"limit": 7})
    seen = [page["id"] for page in cursor]
    assert seen == globex_pages
    assert api.request_count() - before == 5  # 7 + 7 + 7 + 7 + 2


def test_an_sdk_batch_item_uses_an_earlier_items_answer(sdk_user):
    answers, failures = [], []
    batch = sdk_user.new_batch()
    named = batch.add("GET", "me/accounts", params={"fields": "id"}, failure=failures.append)
    named["name"] = "pages"
    named["omit_response_on_success"] = False
    batch.add(
        "GET",
        "",
        params={"ids": "{result=pages:$.data.*.id}", "fields": "name"},
        success=lambda response: answers.append(response.json()),
        failure=failures.append,
    )
    assert batch.execute() is None  # nothing to retry
    assert failures == []
    assert answers == [
        {PAGE_1: {"name": "Acme Bakery Page 1", "id": PAGE_1}, PAGE_2: {"name": "Acme Bakery Page 2", "id": PAGE_2}}
    ]


def test_a_permission_revoked_through_the_sdk_is_a_request_error_with_code_200(sdk_user):
    from facebook_business.adobjects.adaccount import AdAccount
    from facebook_business.adobjects.user import User
    from facebook_business.exceptions import FacebookRequestError

    account = AdAccount(f"act_{AD_1}", api=sdk_user)
    account.api_get(fields=[AdAccount.Field.name])
    User(fbid="me", api=sdk_user).delete_permissions(params={"permission": "ads_read"})

    with pytest.raises(FacebookRequestError) as raised:
        account.api_get(fields=[AdAccount.Field.name])
    assert raised.value.api_error_code() == 200
    assert raised.value.api_error_type() == "OAuthException"
    assert raised.value.http_status() == 400
    User(fbid="me", api=sdk_user).api_get(fields=["id"])  # only that permission went


def test_a_throttled_business_is_a_request_error_with_80004_and_its_subcode(sdk_user):
    from facebook_business.adobjects.adaccount import AdAccount
    from facebook_business.exceptions import FacebookRequestError

    api.throttle_business(ACME, minutes=20)
    with pytest.raises(FacebookRequestError) as raised:
        AdAccount(f"act_{AD_1}", api=sdk_user).api_get(fields=[AdAccount.Field.name])
    assert raised.value.api_error_code() == 80004
    assert raised.value.api_error_subcode() == 2446079
    assert raised.value.api_transient_error() is True
    usage = json.loads(raised.value.http_headers()["X-Business-Use-Case-Usage"])
    assert usage[ACME][0]["type"] == "ads_management"
    assert usage[ACME][0]["estimated_time_to_regain_access"] == 20
