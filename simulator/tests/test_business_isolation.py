"""A system-user token reaches only the client business that installed the app; a person's
token may not manage the business's system-user tokens."""

from simulator import api
from simulator.tests.conftest import graph_call, live

pytestmark = live

ACME, BISTRO, ALICE = "9100000000000001", "9100000000000002", "1000000000000001"
ACME_PAGE, BISTRO_PAGE = api.asset_id_for("page", 1, 1), api.asset_id_for("page", 2, 1)
SHARED_AD = api.SHARED_AD_ACCOUNT  # Bistro's, managed by Acme (Acme's client_ad_accounts)
SCOPES = ["business_management", "pages_show_list", "ads_read"]


def error_of(response):
    return response.json()["error"]


def test_a_system_user_token_cannot_read_another_business_of_the_person_who_granted_it(meta, http):
    # Alice belongs to Acme and Bistro; the system user is Acme's alone.
    system_user = api.issue_token(business_id=ACME, person_id=ALICE, scopes=SCOPES)
    person = api.issue_token(token_type="user", business_id=ACME, person_id=ALICE, scopes=SCOPES)
    assert graph_call(meta, http, ACME, system_user).status_code == 200
    refused = error_of(graph_call(meta, http, BISTRO, system_user))
    assert (refused["code"], refused["error_subcode"], refused["type"]) == (100, 33, "GraphMethodException")
    assert graph_call(meta, http, BISTRO, person).status_code == 200


def test_a_system_user_token_reaches_only_assets_its_business_owns_or_manages(meta, http):
    system_user = api.issue_token(business_id=ACME, scopes=SCOPES, asset_ids=[ACME_PAGE, BISTRO_PAGE, SHARED_AD])
    assert graph_call(meta, http, ACME_PAGE, system_user).status_code == 200
    assert graph_call(meta, http, f"act_{SHARED_AD}", system_user).status_code == 200
    assert error_of(graph_call(meta, http, BISTRO_PAGE, system_user))["error_subcode"] == 33
    pages = graph_call(meta, http, f"{api.system_user_id(ACME)}/assigned_pages", system_user).json()["data"]
    assert [page["id"] for page in pages] == [ACME_PAGE]


def test_a_user_token_cannot_fetch_the_business_system_user_token(meta, http):
    api.issue_token(business_id=ACME, scopes=SCOPES)
    person = api.issue_token(token_type="user", business_id=ACME, person_id=ALICE, scopes=SCOPES)
    response = graph_call(
        meta, http, f"{ACME}/system_user_access_tokens", person, method="POST",
        data={"fetch_only": "true", "system_user_id": api.system_user_id(ACME)},
    )  # fmt: skip
    assert response.status_code == 403
    assert error_of(response)["code"] == 200
    assert "access_token" not in response.json()


def test_another_business_system_user_cannot_fetch_this_one(meta, http):
    api.issue_token(business_id=ACME, scopes=SCOPES)
    bistro = api.issue_token(business_id=BISTRO, scopes=SCOPES)
    response = graph_call(
        meta, http, f"{ACME}/system_user_access_tokens", bistro, method="POST", data={"fetch_only": "true"}
    )
    assert (error_of(response)["code"], error_of(response)["error_subcode"]) == (100, 33)
