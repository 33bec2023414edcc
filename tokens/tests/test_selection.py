"""tokens.selection in-process: ties, the reconnect link's subject, limits, and what is never chosen."""

from datetime import timedelta

import pytest
from django.utils import timezone

from testsupport.factories import make_asset, make_client, make_configuration, make_grant, make_token
from tokens import crypto, selection
from tokens.models import AccessToken

pytestmark = pytest.mark.django_db
PAGE_ID = "100200300"


@pytest.fixture
def page():
    return make_asset(make_client(), meta_id=PAGE_ID)


def granted(page, **fields):
    token = make_token(page.client, **fields)
    make_grant(token, page)
    return token


def test_among_equals_the_token_that_works_longest_wins_then_the_newest(page):
    now = timezone.now()
    granted(page, expires_at=now + timedelta(days=10))
    longest = granted(page, expires_at=now + timedelta(days=50))
    never_a = granted(page, kind="system_user")
    never_b = granted(page, kind="system_user")

    assert selection.working_token(PAGE_ID).token == never_b  # never ends, and newer than never_a
    AccessToken.objects.filter(pk__in=[never_a.pk, never_b.pk]).update(status="invalid")
    assert selection.working_token(PAGE_ID).token == longest


def test_a_dead_granular_token_asks_for_a_link_through_its_parent(page):
    parent = granted(page, kind="system_user", status="invalid")
    granted(page, kind="granular_system_user", parent=parent, configuration=None, purpose="publishing",
            status="invalid")

    with pytest.raises(selection.NoWorkingToken) as refused:
        selection.working_token(PAGE_ID, purpose="publishing")

    assert refused.value.code == selection.NEEDS_REAUTHORIZATION
    assert refused.value.token == parent and refused.value.client_id == page.client_id


def test_limits_to_clients_and_configurations(page):
    token = granted(page)
    other = make_client("Other")

    with pytest.raises(selection.AssetUnknown):
        selection.working_token(PAGE_ID, client_ids=[other.pk])
    with pytest.raises(selection.NoWorkingToken) as refused:
        selection.working_token(PAGE_ID, configuration_ids=[make_configuration().pk])
    assert refused.value.code == selection.ASSET_NOT_GRANTED and refused.value.token is None
    assert selection.working_token(PAGE_ID, client_ids=[page.client_id],
                                   configuration_ids=[token.configuration_id]).token == token


@pytest.mark.parametrize("others", [0, 2, 4, 6])
def test_a_limit_to_several_clients_finds_exactly_their_assets(page, others):
    token = granted(page)
    clients = [make_client(f"Other {n}").pk for n in range(others)]

    assert selection.working_token(PAGE_ID, client_ids=[*clients, page.client_id]).token == token
    assert selection.working_token(PAGE_ID, client_ids=[page.client_id, *clients]).token == token
    with pytest.raises(selection.AssetUnknown):
        selection.working_token(PAGE_ID, client_ids=clients)


def test_a_granular_token_counts_under_its_parents_configuration(page):
    parent = granted(page, kind="system_user", status="invalid")
    granular = granted(page, kind="granular_system_user", parent=parent, configuration=None, purpose="ads")

    assert selection.working_token(PAGE_ID, configuration_ids=[parent.configuration_id]).token == granular


def test_the_choice_is_one_query_and_decrypts_only_the_chosen_token(page, django_assert_num_queries, monkeypatch):
    for _ in range(5):
        granted(page)
    chosen = granted(page, kind="system_user", value="EAAB-the-chosen-one")
    decrypted = []
    real_decrypt = crypto.decrypt
    monkeypatch.setattr(crypto, "decrypt", lambda ciphertext, *a, **k: decrypted.append(1) or real_decrypt(ciphertext))

    with django_assert_num_queries(1):
        result = selection.working_token(PAGE_ID)

    assert len(decrypted) == 1
    assert result.token == chosen and result.value == "EAAB-the-chosen-one"
    assert result.access_ends_at is None and not result.ends_within_reminder_window()


def test_an_ad_account_is_found_by_its_number(page):
    ads = make_asset(page.client, "Ads", kind="ad_account", meta_id="4455")
    token = make_token(page.client, kind="system_user")
    make_grant(token, ads)

    assert selection.working_token(selection.bare_meta_id("act_4455")).token == token
