"""tokens.install, as onboarding uses it (the install step of the callback)."""

import pytest

from graph.types import AssetRef
from tokens.install import GrantedAsset, granted_assets, install_token
from tokens.models import AccessToken, Asset, AssetGrant, TokenEvent

from .conftest import make_info

pytestmark = pytest.mark.django_db


def install(client_business, config, value, assets=("201",)):
    return install_token(
        client=client_business,
        configuration=config,
        kind="system_user",
        value=value,
        info=make_info(),
        assets=[GrantedAsset("page", meta_id, f"Page {meta_id}") for meta_id in assets],
    )


def test_installing_the_same_token_twice_stores_it_once(client_business, system_user_config):
    first = install(client_business, system_user_config, "EAAB-one")
    again = install(client_business, system_user_config, "EAAB-one")
    assert (first.created, again.created, again.token.pk) == (True, False, first.token.pk)
    assert (AccessToken.objects.count(), AssetGrant.objects.count(), TokenEvent.objects.count()) == (1, 1, 1)


def test_a_new_token_supersedes_the_previous_one_of_the_same_pair_and_keeps_it(client_business, system_user_config):
    first = install(client_business, system_user_config, "EAAB-one", assets=("201", "202")).token
    second = install(client_business, system_user_config, "EAAB-two", assets=("201",)).token
    first.refresh_from_db()
    assert (first.status, first.superseded_by, second.status) == ("superseded", second, "active")
    assert first.grants.count() == 2 and first.value == "EAAB-one"
    assert Asset.objects.count() == 2
    assert set(TokenEvent.objects.values_list("kind", flat=True)) == {"installed", "superseded", "reconnected"}


def test_another_configuration_s_token_is_left_alone(client_business, system_user_config, user_config):
    first = install(client_business, system_user_config, "EAAB-one").token
    install(client_business, user_config, "EAAB-two")
    first.refresh_from_db()
    assert first.status == "active"


def test_granted_assets_merge_names_from_edges_with_target_ids_from_granular_scopes():
    refs = [AssetRef("page", "201", "Acme Page", "7001")]
    scopes = [
        {"scope": "pages_read_engagement", "target_ids": ["201"]},
        {"scope": "ads_management", "target_ids": ["301"]},
        {"scope": "business_management"},
    ]
    merged = {item.meta_id: item for item in granted_assets(scopes, refs)}
    assert merged["201"].name == "Acme Page" and merged["201"].scopes == ["pages_read_engagement"]
    assert (merged["301"].kind, merged["301"].name) == ("ad_account", "")
    assert set(merged) == {"201", "301"}


def test_meta_returning_the_same_token_with_other_assets_updates_its_grants(client_business, system_user_config):
    token = install(client_business, system_user_config, "EAAB-one", assets=("201", "202")).token
    again = install(client_business, system_user_config, "EAAB-one", assets=("201", "203"))
    assert again.created is False and AccessToken.objects.count() == 1
    statuses = dict(token.grants.values_list("asset__meta_id", "status"))
    assert statuses == {"201": "active", "202": "removed", "203": "active"}


def test_reconnecting_replaces_a_token_meta_called_invalid_and_its_ended_reminders_stop(
    client_business, system_user_config, contact
):
    from django.core import mail

    from tokens.models import Reminder
    from tokens.reminders import plan_reminders, send_due_reminders

    broken = install(client_business, system_user_config, "EAAB-one").token
    AccessToken.objects.filter(pk=broken.pk).update(status="invalid", granted_by=contact)
    plan_reminders()
    ended = Reminder.objects.filter(token=broken, stage="ended", reason="token_invalid")
    assert ended.filter(status="pending").exists()

    renewed = install(client_business, system_user_config, "EAAB-two").token
    broken.refresh_from_db()
    assert (broken.status, broken.superseded_by) == ("superseded", renewed)
    assert TokenEvent.objects.filter(kind="reconnected", token=renewed, data__replaces=broken.pk).exists()
    send_due_reminders()
    plan_reminders()
    assert set(ended.values_list("status", flat=True)) == {"cancelled"} and mail.outbox == []
    assert not Reminder.objects.filter(status="pending").exists()
