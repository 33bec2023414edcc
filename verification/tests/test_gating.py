"""The gating decision table and the tokens and clients at risk today and after the deadline."""

import itertools
from datetime import date

import pytest

from testsupport.factories import make_client, make_contact, make_token, make_verification_record
from verification.gating import gating_decision, tokens_at_risk
from verification.models import AppRole, PermissionAccess

TODAY = date(2026, 11, 23)


def expected_acceptance(has_role, gated, provider_verified, advanced_access):
    if has_role:
        return True
    return advanced_access and (provider_verified or not gated)


@pytest.mark.parametrize(
    ("has_role", "gated", "provider_verified", "advanced_access"), list(itertools.product([True, False], repeat=4))
)
def test_the_decision_table_covers_every_case(has_role, gated, provider_verified, advanced_access):
    decision = gating_decision(
        has_role=has_role, gated=gated, provider_verified=provider_verified, advanced_access=advanced_access
    )
    assert decision.accepted is expected_acceptance(has_role, gated, provider_verified, advanced_access)
    assert decision.reason


def test_a_refusal_says_why():
    assert "not a verified Tech Provider" in gating_decision(
        has_role=False, gated=True, provider_verified=False, advanced_access=True
    ).reason
    assert "no advanced access" in gating_decision(
        has_role=False, gated=False, provider_verified=True, advanced_access=False
    ).reason


@pytest.fixture
def catalogue(db):
    # ads_read: gated; pages_messaging: not gated. Both advanced, whatsapp_business_messaging standard.
    PermissionAccess.objects.filter(permission__in=["ads_read", "pages_messaging"]).update(access_level="advanced")


@pytest.mark.django_db
def test_with_a_verified_provider_only_standard_access_permissions_are_at_risk(catalogue):
    make_verification_record("verified")
    fine = make_token(scopes=["ads_read", "pages_messaging"])
    standard = make_token(scopes=["ads_read", "whatsapp_business_messaging"])
    report = tokens_at_risk("today", TODAY)
    assert [risk.token for risk in report.tokens] == [standard]
    assert list(report.tokens[0].refused) == ["whatsapp_business_messaging"]
    assert fine.pk not in {risk.token.pk for risk in report.tokens}


@pytest.mark.django_db
def test_during_the_deadline_gated_tokens_are_at_risk_only_after_it(catalogue):
    make_verification_record("required", deadline=date(2026, 12, 1))
    gated = make_token(scopes=["ads_read"])
    make_token(scopes=["pages_messaging"])

    assert tokens_at_risk("today", TODAY).token_count == 0
    after = tokens_at_risk("after_deadline", TODAY)
    assert [risk.token for risk in after.tokens] == [gated]
    assert after.tokens[0].refused == {"ads_read": "Gated: the provider is not a verified Tech Provider."}


@pytest.mark.django_db
def test_once_the_deadline_has_passed_gated_tokens_are_at_risk_today(catalogue):
    make_verification_record("submitted", deadline=date(2026, 11, 22))
    make_token(scopes=["ads_read"])
    assert tokens_at_risk("today", TODAY).token_count == 1


@pytest.mark.django_db
def test_the_deadline_day_itself_still_passes(catalogue):
    make_verification_record("rejected", deadline=TODAY)
    make_token(scopes=["ads_read"])
    assert tokens_at_risk("today", TODAY).token_count == 0


@pytest.mark.django_db
def test_a_lost_status_without_a_new_deadline_is_at_risk_today(catalogue):
    make_verification_record("lost")
    make_token(scopes=["ads_read"])
    assert tokens_at_risk("today", TODAY).token_count == 1


@pytest.mark.django_db
def test_a_linked_business_does_not_decide_the_gating(catalogue):
    make_verification_record("verified")
    make_verification_record("lost", is_provider=False)
    make_token(scopes=["ads_read"])
    assert tokens_at_risk("today", TODAY).token_count == 0


@pytest.mark.django_db
def test_tokens_of_people_with_a_role_on_the_app_pass(catalogue):
    make_verification_record("lost")
    AppRole.objects.create(name="Dev", meta_user_id="1001", role="developer")
    make_token(scopes=["ads_read", "whatsapp_business_messaging"], meta_user_id="1001")
    client = make_client()
    make_token(client=client, scopes=["ads_read"], granted_by=make_contact(client, meta_user_id="1001"))
    assert tokens_at_risk("today", TODAY).token_count == 0


@pytest.mark.django_db
def test_only_live_tokens_are_judged(catalogue):
    make_verification_record("lost")
    make_token(scopes=["ads_read"], status="revoked")
    make_token(scopes=["ads_read"], status="expiring")
    assert tokens_at_risk("today", TODAY).token_count == 1


@pytest.mark.django_db
def test_clients_are_counted_once_however_many_tokens_they_have(catalogue):
    make_verification_record("lost")
    client = make_client()
    make_token(client=client, scopes=["ads_read"])
    make_token(client=client, scopes=["ads_read"], kind="system_user")
    make_token(scopes=["ads_read"])
    report = tokens_at_risk("today", TODAY)
    assert (report.token_count, report.client_count) == (3, 2)
    names = [c.name for c in report.clients]
    assert client.name in names and names == sorted(names) and len(names) == 2


@pytest.mark.django_db
def test_without_a_provider_record_meta_is_taken_not_to_require_verification(catalogue):
    make_token(scopes=["ads_read"])
    assert tokens_at_risk("after_deadline", TODAY).token_count == 0
