"""Page access tokens: /me/accounts for user and system-user tokens, debug_token type PAGE with
profile_id, and a Page token that dies with the access of the token it came from."""

import pytest

from simulator import api
from simulator.models import SimToken
from simulator.tests.conftest import debug, graph_call, live

pytestmark = live

ACME, BOB = "9100000000000001", "1000000000000002"
PAGE_1, PAGE_2 = api.asset_id_for("page", 1, 1), api.asset_id_for("page", 1, 2)
SCOPES = ["pages_show_list", "pages_read_engagement", "ads_read"]


def error_of(response):
    return response.json()["error"]


@pytest.fixture
def user_token(meta):
    return api.issue_token(token_type="user", person_id=BOB, scopes=SCOPES, asset_ids=[PAGE_1, PAGE_2])


def accounts(meta, http, token, **params):
    response = graph_call(meta, http, "me/accounts", token, data=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


@pytest.mark.parametrize("kind", ["user", "system_user"])
def test_me_accounts_lists_each_page_with_its_token_category_and_tasks(meta, http, kind):
    token = api.issue_token(token_type=kind, person_id=BOB, scopes=SCOPES, asset_ids=[PAGE_1, PAGE_2])
    pages = accounts(meta, http, token)
    assert [page["id"] for page in pages] == [PAGE_1, PAGE_2]
    for page in pages:
        assert set(page) == {"access_token", "category", "name", "id", "tasks"}
        assert page["access_token"].startswith("EAA") and page["access_token"] != token
        assert "MANAGE" in page["tasks"]
    assert pages[0]["access_token"] != pages[1]["access_token"]


def test_asking_for_fields_answers_only_those(meta, http, user_token):
    assert accounts(meta, http, user_token, fields="id,name") == [
        {"id": PAGE_1, "name": "Acme Bakery Page 1"},
        {"id": PAGE_2, "name": "Acme Bakery Page 2"},
    ]


def test_reading_the_edge_again_answers_the_same_page_tokens(meta, http, user_token):
    first = accounts(meta, http, user_token, fields="access_token")
    again = accounts(meta, http, user_token, fields="access_token")
    assert first == again


def test_debug_token_of_a_page_token_says_page_with_its_profile_id(meta, http, user_token):
    page_token = accounts(meta, http, user_token)[0]["access_token"]
    data = debug(meta, http, page_token)
    assert data["type"] == "PAGE"
    assert data["profile_id"] == PAGE_1
    assert data["user_id"] == BOB
    assert data["app_id"] == meta.app_id
    assert data["is_valid"] is True
    assert data["expires_at"] == 0  # from a long-lived user token: no expiry of its own
    assert set(SCOPES) <= set(data["scopes"])


def test_a_system_user_page_token_names_the_system_user(meta, http):
    token = api.issue_token(business_id=ACME, scopes=SCOPES, asset_ids=[PAGE_1])
    data = debug(meta, http, accounts(meta, http, token)[0]["access_token"])
    assert (data["type"], data["profile_id"], data["user_id"]) == ("PAGE", PAGE_1, api.system_user_id(ACME))


def test_a_page_token_reads_its_page_and_nothing_else(meta, http, user_token):
    page_token = api.page_token(user_token, PAGE_1)
    me = graph_call(meta, http, "me", page_token).json()
    assert me == {"id": PAGE_1, "name": "Acme Bakery Page 1"}
    assert graph_call(meta, http, PAGE_1, page_token).status_code == 200
    other = error_of(graph_call(meta, http, PAGE_2, page_token))
    assert (other["code"], other["error_subcode"]) == (100, 33)


def test_a_page_token_from_a_short_lived_user_token_expires_with_it(meta, http):
    short = api.issue_token(token_type="user", person_id=BOB, scopes=SCOPES, asset_ids=[PAGE_1], expires_in=7200)
    SimToken.objects.filter(value=short).update(long_lived=False)
    page_token = api.page_token(short, PAGE_1)
    assert debug(meta, http, page_token)["expires_at"] == debug(meta, http, short)["expires_at"]


@pytest.mark.parametrize(
    ("kill", "subcode"),
    [
        (lambda token: api.invalidate_token(token, 460), 460),  # password changed
        (lambda token: api.remove_app(ACME), 458),  # the business removed the app
        (api.expire_token, 463),  # the user token's 60 days are over
        (api.expire_data_access, 463),  # 90 days without activity
    ],
)
def test_a_page_token_dies_with_its_user_token(meta, http, user_token, kill, subcode):
    page_token = api.page_token(user_token, PAGE_1)
    assert graph_call(meta, http, "me", page_token).status_code == 200
    kill(user_token)
    error = error_of(graph_call(meta, http, "me", page_token))
    assert (error["code"], error["error_subcode"], error["type"]) == (190, subcode, "OAuthException")
    data = debug(meta, http, page_token)
    assert data["is_valid"] is False
    assert (data["error"]["code"], data["error"]["subcode"]) == (190, subcode)


def test_a_page_token_dies_when_the_managed_account_grace_ends(meta, http, user_token):
    page_token = api.page_token(user_token, PAGE_1)
    api.migrate_to_managed_accounts(ACME)
    api.advance_clock(29 * 86400)
    assert graph_call(meta, http, "me", page_token).status_code == 200
    api.advance_clock(2 * 86400)
    error = error_of(graph_call(meta, http, "me", page_token))
    assert (error["code"], error["error_subcode"]) == (190, 492)


def test_a_page_token_loses_what_its_user_revoked(meta, http, user_token):
    page_token = api.page_token(user_token, PAGE_1)
    api.revoke_permission("pages_show_list", token=user_token)
    api.revoke_permission("pages_read_engagement", token=user_token)
    error = error_of(graph_call(meta, http, PAGE_1, page_token))
    assert error["code"] == 10
    assert "pages_show_list" not in debug(meta, http, page_token)["scopes"]
