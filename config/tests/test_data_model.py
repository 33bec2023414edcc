"""The constraints that keep the data honest, across the three apps' models."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from common.transitions import InvalidStatusTransition
from onboarding.models import ClientBusiness, Contact, LoginConfiguration
from testsupport.factories import make_token
from tokens.models import AccessToken, Asset, AssetGrant, Reminder, TokenEvent
from verification.models import TechProviderVerification

pytestmark = pytest.mark.django_db


@pytest.fixture
def configuration():
    return LoginConfiguration.objects.create(
        name="Ads", config_id="111", token_type="system_user", permissions=["ads_read"], asset_types=["ad_account"]
    )


def system_user_token(client_business, configuration, value, **extra):
    return make_token(client_business, configuration=configuration, kind="system_user", value=value, **extra)


def assert_integrity_error(create):
    with pytest.raises(IntegrityError), transaction.atomic():
        create()


def test_two_clients_cannot_share_a_meta_business_id():
    ClientBusiness.objects.create(name="A", meta_business_id="9001")
    assert_integrity_error(lambda: ClientBusiness.objects.create(name="B", meta_business_id="9001"))


def test_clients_without_a_meta_business_id_do_not_collide():
    ClientBusiness.objects.create(name="A", meta_business_id="")
    ClientBusiness.objects.create(name="B")
    assert ClientBusiness.objects.filter(meta_business_id__isnull=True).count() == 2


def test_validation_names_the_duplicate_meta_business_id():
    ClientBusiness.objects.create(name="A", meta_business_id="9001")
    with pytest.raises(ValidationError, match="Another client already has this Meta business id"):
        ClientBusiness(name="B", meta_business_id="9001").full_clean()


def test_notification_emails_are_validated(client_business):
    client_business.notification_emails = "ops@acme.test, not-an-address"
    with pytest.raises(ValidationError, match="“not-an-address” is not a valid email address"):
        client_business.full_clean()
    assert ClientBusiness(name="X", notification_emails="a@x.test;\nb@x.test").notification_email_list() == [
        "a@x.test",
        "b@x.test",
    ]


def test_assets_are_unique_per_kind_and_meta_id():
    Asset.objects.create(kind="page", meta_id="42")
    Asset.objects.create(kind="ad_account", meta_id="42")
    assert_integrity_error(lambda: Asset.objects.create(kind="page", meta_id="42"))


def test_a_contact_email_is_unique_per_client(client_business):
    Contact.objects.create(client=client_business, email="a@acme.test")
    assert_integrity_error(lambda: Contact.objects.create(client=client_business, email="a@acme.test"))


def test_only_one_live_token_per_client_and_configuration(client_business, configuration):
    system_user_token(client_business, configuration, "EAA-first")
    assert_integrity_error(lambda: system_user_token(client_business, configuration, "EAA-second"))


def test_a_superseded_token_makes_room_for_its_successor(client_business, configuration):
    first = system_user_token(client_business, configuration, "EAA-first")
    first.status = AccessToken.Status.SUPERSEDED
    first.save()
    system_user_token(client_business, configuration, "EAA-second")
    assert AccessToken.objects.filter(client=client_business).count() == 2


def test_the_same_token_value_cannot_be_stored_twice(client_business, configuration):
    system_user_token(client_business, configuration, "EAA-same", status="revoked")
    assert_integrity_error(lambda: system_user_token(client_business, configuration, "EAA-same", status="revoked"))


def test_a_granular_token_must_name_its_parent(client_business):
    assert_integrity_error(
        lambda: AccessToken.objects.create(client=client_business, kind="granular_system_user", value="EAA-g")
    )


def test_a_grant_is_unique_per_token_and_asset(client_business, configuration):
    token = system_user_token(client_business, configuration, "EAA-x")
    asset = Asset.objects.create(kind="page", meta_id="1")
    AssetGrant.objects.create(token=token, asset=asset)
    assert_integrity_error(lambda: AssetGrant.objects.create(token=token, asset=asset))


def test_a_reminder_is_planned_once_per_subject_reason_stage_and_recipient(client_business, configuration):
    token = system_user_token(client_business, configuration, "EAA-r")
    fields = {"client": client_business, "token": token, "reason": "token_expiring", "stage": "7d",
              "recipient_email": "ops@acme.test", "due_at": token.created_at}
    first = Reminder.objects.create(**fields)
    assert first.subject_key == f"token:{token.pk}"
    assert_integrity_error(lambda: Reminder.objects.create(**fields))
    Reminder.objects.create(**{**fields, "stage": "3d"})


def test_a_reminder_needs_a_subject(client_business):
    assert_integrity_error(
        lambda: Reminder.objects.create(
            client=client_business, subject_key="none", reason="token_expiring", stage="7d",
            recipient_email="a@x.test", due_at="2026-01-01T00:00:00Z",
        )
    )


def test_a_token_cannot_come_back_from_revoked(client_business, configuration):
    token = system_user_token(client_business, configuration, "EAA-t")
    token.status = AccessToken.Status.REVOKED
    token.save()
    token.status = AccessToken.Status.ACTIVE
    with pytest.raises(InvalidStatusTransition, match="cannot go from “revoked” to “active”"):
        token.save()
    assert AccessToken.objects.get(pk=token.pk).status == "revoked"


def test_an_invalid_token_can_be_superseded_but_not_revived(client_business, configuration):
    token = system_user_token(client_business, configuration, "EAA-i")
    token.status = "invalid"
    token.save()
    token.status = "active"
    with pytest.raises(InvalidStatusTransition):
        token.save()
    token.status = "superseded"
    token.save()


def test_client_status_follows_its_lifecycle(client_business):
    client_business.status = "active"
    client_business.save()
    client_business.status = "invited"
    with pytest.raises(InvalidStatusTransition, match="client business cannot go from “active” to “invited”"):
        client_business.save()


def test_verification_status_transitions_are_enforced():
    record = TechProviderVerification.objects.create(name="Provider", meta_business_id="1", is_provider=True)
    record.status = "verified"
    with pytest.raises(InvalidStatusTransition):
        record.save()


def test_a_status_change_survives_reading_a_deferred_field_and_a_loaded_status_still_guards_transitions(
        client_business, django_assert_num_queries):
    from tokens.models import AccessToken

    token = AccessToken.objects.create(client=client_business, kind="user", value="EAAB-deferred", status="active")
    partial = AccessToken.objects.only("id", "status").get(pk=token.pk)
    partial.status = "invalid"
    with django_assert_num_queries(1):  # the value alone, not the status again
        assert partial.value == "EAAB-deferred"
    assert partial.status == "invalid"  # Django's refresh no longer copies a fetched status over it
    partial.save(update_fields=["status"])
    assert AccessToken.objects.get(pk=token.pk).status == "invalid"

    unloaded = AccessToken.objects.only("id").get(pk=token.pk)
    assert unloaded._loaded_status is None  # not fetched just to be remembered
    client_business.status = "active"
    client_business.save()
    for loaded in (type(client_business).objects.get(pk=client_business.pk),
                   type(client_business).objects.only("id").get(pk=client_business.pk)):
        loaded.status = "invited"  # loaded with its status or without: the stored one is checked
        with pytest.raises(InvalidStatusTransition, match="from “active” to “invited”"):
            loaded.save()
    renamed = type(client_business).objects.only("id", "name").get(pk=client_business.pk)
    with django_assert_num_queries(0):  # a status neither loaded nor set is not read: save() won't write it
        renamed.check_status_transition()


def test_token_events_are_append_only(client_business):
    event = TokenEvent.objects.create(kind="staff_action", client=client_business, message="note")
    event.message = "rewritten"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()
