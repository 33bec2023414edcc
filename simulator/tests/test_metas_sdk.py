"""A client written for Meta works unchanged against the simulator: Meta's own Python SDK."""

import pytest

from simulator import api
from simulator.tests.conftest import live, throwaway_token

pytestmark = live

PAGE_1 = api.asset_id_for("page", 1, 1)
AD_1 = api.asset_id_for("ad_account", 1, 1)


@pytest.fixture
def sdk_api(meta):
    from facebook_business.api import FacebookAdsApi
    from facebook_business.session import FacebookSession

    # The SDK puts the token in the query string, so it gets a token the simulator never issued.
    token = throwaway_token("EAAsdkThrowawayToken0001", asset_ids=[PAGE_1, AD_1])
    session = FacebookSession(meta.app_id, meta.app_secret, token)
    session.GRAPH = meta.graph_url
    return FacebookAdsApi(session, api_version=meta.version)


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
