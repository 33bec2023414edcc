"""Tech Provider verification status changes: the edges, the dates they set, the audit trail."""

from datetime import UTC, date, datetime

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from common.transitions import InvalidStatusTransition
from testsupport.factories import make_verification_record
from verification.models import TechProviderVerification, VerificationTransition
from verification.services import add_business_days, change_status

pytestmark = pytest.mark.django_db

STATUSES = TechProviderVerification.Status.values
ALLOWED = sorted(
    (old, new) for old, targets in TechProviderVerification.STATUS_TRANSITIONS.items() for new in targets
)
REFUSED = sorted((old, new) for old in STATUSES for new in STATUSES if (old, new) not in ALLOWED)
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)  # a Monday


def test_the_allowed_edges_are_the_documented_lifecycle():
    assert ALLOWED == [
        ("lost", "submitted"), ("lost", "verified"), ("not_required", "required"), ("rejected", "submitted"),
        ("required", "not_required"), ("required", "submitted"), ("submitted", "rejected"),
        ("submitted", "verified"), ("verified", "lost"),
    ]


@pytest.mark.parametrize(("old", "new"), ALLOWED)
def test_each_allowed_transition_is_applied_and_recorded(old, new, admin_user):
    record = make_verification_record(old)
    change_status(record, new, actor=admin_user, note="changed use case", when=MONDAY, notified_on=date(2026, 11, 20))
    record.refresh_from_db()
    assert record.status == new
    transition = VerificationTransition.objects.get(verification=record)
    assert (transition.from_status, transition.to_status) == (old, new)
    assert (transition.actor, transition.at) == (admin_user, MONDAY)
    assert transition.note == "changed use case"


@pytest.mark.parametrize(("old", "new"), REFUSED)
def test_each_refused_transition_raises_a_clear_error_and_changes_nothing(old, new):
    record = make_verification_record(old)
    with pytest.raises(InvalidStatusTransition, match="cannot go from .* Allowed next:"):
        change_status(record, new, note="x", when=MONDAY, notified_on=date(2026, 11, 20))
    record.refresh_from_db()
    assert record.status == old
    assert not VerificationTransition.objects.exists()


def test_an_unknown_status_is_refused():
    with pytest.raises(ValidationError, match="not a verification status"):
        change_status(make_verification_record(), "approved")


def test_required_starts_the_sixty_day_deadline_from_the_notification_date():
    record = change_status(make_verification_record(), "required", when=MONDAY, notified_on=date(2026, 11, 2))
    assert record.notified_on == date(2026, 11, 2)
    assert record.deadline == date(2027, 1, 1)


def test_required_without_a_notification_date_is_refused():
    record = make_verification_record()
    with pytest.raises(ValidationError, match="notification email"):
        change_status(record, "required", when=MONDAY)
    record.refresh_from_db()
    assert record.status == "not_required"


def test_a_notification_date_in_the_future_is_refused():
    with pytest.raises(ValidationError, match="future"):
        change_status(make_verification_record(), "required", when=MONDAY, notified_on=date(2026, 11, 24))


@pytest.mark.parametrize(
    ("submitted_at", "expected"),
    [
        (datetime(2026, 11, 23, 9, tzinfo=UTC), date(2026, 11, 30)),  # Monday -> next Monday
        (datetime(2026, 11, 27, 9, tzinfo=UTC), date(2026, 12, 4)),  # Friday -> next Friday
        (datetime(2026, 11, 28, 9, tzinfo=UTC), date(2026, 12, 4)),  # Saturday -> Friday after
        (datetime(2026, 11, 29, 9, tzinfo=UTC), date(2026, 12, 4)),  # Sunday -> Friday
        (datetime(2026, 11, 25, 23, tzinfo=UTC), date(2026, 12, 2)),  # Wednesday -> Wednesday
    ],
)
def test_submitted_expects_a_decision_five_business_days_later(submitted_at, expected):
    record = make_verification_record("required", deadline=date(2027, 1, 1))
    record = change_status(record, "submitted", when=submitted_at)
    assert record.submitted_at == submitted_at
    assert record.expected_decision_on == expected


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (date(2026, 11, 23), 0, date(2026, 11, 23)),
        (date(2026, 11, 23), 1, date(2026, 11, 24)),
        (date(2026, 11, 27), 1, date(2026, 11, 30)),
        (date(2026, 11, 27), 10, date(2026, 12, 11)),
    ],
)
def test_business_days_skip_weekends(start, days, expected):
    assert add_business_days(start, days) == expected


@pytest.mark.parametrize("decision", ["verified", "rejected"])
def test_a_decision_records_when_it_was_made(decision):
    record = make_verification_record("submitted")
    assert change_status(record, decision, when=MONDAY).decided_at == MONDAY


def test_resubmitting_after_a_rejection_needs_a_note_on_the_changed_use_case():
    record = make_verification_record("rejected")
    with pytest.raises(ValidationError, match="what changed in the use case"):
        change_status(record, "submitted", when=MONDAY, note="  ")
    record = change_status(record, "submitted", when=MONDAY, note="Now only reads insights")
    assert record.status == "submitted"
    assert record.decided_at is None


def test_a_verified_business_that_loses_its_status_can_get_a_new_deadline():
    record = make_verification_record("verified", deadline=date(2026, 1, 1))
    record = change_status(record, "lost", when=MONDAY, notified_on=date(2026, 11, 20))
    assert record.deadline == date(2027, 1, 19)


def test_the_deadline_survives_submission_and_rejection():
    record = change_status(make_verification_record(), "required", when=MONDAY, notified_on=date(2026, 11, 2))
    record = change_status(record, "submitted", when=MONDAY)
    record = change_status(record, "rejected", when=MONDAY)
    assert record.deadline == date(2027, 1, 1)
    assert record.days_until_deadline(date(2026, 12, 31)) == 1


def test_the_history_lists_every_change_with_who_made_it():
    staff = get_user_model().objects.create_user("sam", is_staff=True)
    record = make_verification_record()
    with time_machine.travel(MONDAY, tick=False):
        change_status(record, "required", actor=staff, notified_on=date(2026, 11, 20))
        change_status(record, "submitted", actor=staff)
    assert [(t.from_status, t.to_status, t.actor.username) for t in record.transitions.order_by("id")] == [
        ("not_required", "required", "sam"),
        ("required", "submitted", "sam"),
    ]


def test_a_stale_copy_cannot_apply_an_edge_the_stored_status_forbids():
    record = make_verification_record("submitted")
    stale = TechProviderVerification.objects.get(pk=record.pk)
    change_status(record, "verified", when=MONDAY)
    with pytest.raises(InvalidStatusTransition):
        change_status(stale, "rejected", when=MONDAY)
