"""Tech Provider verification: every status change goes through change_status()."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from common.transitions import InvalidStatusTransition

from .models import TECH_PROVIDER_DEADLINE, TechProviderVerification, VerificationTransition

# Meta: "a decision takes about 5 business days" (docs/meta.md). Public holidays are not counted.
DECISION_BUSINESS_DAYS = 5
Status = TechProviderVerification.Status


def add_business_days(start: date, days: int) -> date:
    """The date `days` business days (Monday to Friday) after `start`; `start` itself never counts."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current


def allowed_next_statuses(record: TechProviderVerification) -> list[str]:
    return sorted(TechProviderVerification.STATUS_TRANSITIONS.get(record.status, set()))


def change_status(
    record: TechProviderVerification,
    new: str,
    actor=None,
    note: str = "",
    when: datetime | None = None,
    notified_on: date | None = None,
) -> TechProviderVerification:
    """Move a verification record along an allowed edge, set the dates that follow, and record who did it.

    required: needs `notified_on` (Meta's email); the deadline is 60 days later.
    submitted: the expected decision is 5 business days later; resubmitting after a
    rejection needs a note saying what changed in the use case.
    verified / rejected: the decision time. lost: `notified_on` optionally starts a new deadline.
    """
    when = when or timezone.now()
    note = (note or "").strip()
    if new not in Status.values:
        raise ValidationError(f"“{new}” is not a verification status.", code="unknown_status")
    with transaction.atomic():
        locked = TechProviderVerification.objects.select_for_update().get(pk=record.pk)
        old = locked.status
        if new not in TechProviderVerification.STATUS_TRANSITIONS.get(old, set()):
            allowed = ", ".join(Status(s).label for s in allowed_next_statuses(locked)) or "none"
            raise InvalidStatusTransition(
                f"A verification cannot go from “{Status(old).label}” to “{Status(new).label}”. "
                f"Allowed next: {allowed}.",
                code="invalid_transition",
            )
        if new == Status.REQUIRED and notified_on is None:
            raise ValidationError("Enter the date of Meta's notification email: the 60-day deadline starts there.",
                                  code="notified_on_required")
        if notified_on is not None and notified_on > timezone.localdate(when):
            raise ValidationError("The notification date cannot be in the future.", code="notified_on_future")
        if old == Status.REJECTED and new == Status.SUBMITTED and not note:
            raise ValidationError("Say what changed in the use case: Meta only reconsiders a changed submission.",
                                  code="resubmission_note_required")

        locked.status = new
        if new in (Status.REQUIRED, Status.LOST) and notified_on is not None:
            locked.notified_on = notified_on
            locked.deadline = notified_on + TECH_PROVIDER_DEADLINE
        if new == Status.REQUIRED:
            locked.submitted_at = locked.expected_decision_on = locked.decided_at = None
        if new == Status.SUBMITTED:
            locked.submitted_at = when
            locked.expected_decision_on = add_business_days(timezone.localdate(when), DECISION_BUSINESS_DAYS)
            locked.decided_at = None
        if new in (Status.VERIFIED, Status.REJECTED):
            locked.decided_at = when
        locked.save()
        VerificationTransition.objects.create(
            verification=locked, from_status=old, to_status=new, actor=actor, note=note, at=when
        )
    record.refresh_from_db()
    return record


@transaction.atomic
def make_the_only_one(obj, flag: str) -> None:
    """Set ``flag`` on this row and clear it on every other (the rule in force, the current level)."""
    model = type(obj)
    model.objects.filter(**{flag: True}).exclude(pk=obj.pk).update(**{flag: False})
    model.objects.filter(pk=obj.pk).update(**{flag: True})
