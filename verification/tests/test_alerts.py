"""Staff alerts: deadline stages and upkeep risk, each emailed exactly once, even when the task runs twice."""

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from common.staff import staff_alert_recipients
from testsupport.factories import make_verification_record
from testsupport.processes import run_in_fresh_processes
from verification import ledger, tasks
from verification.alerts import due_stage
from verification.models import StaffAlert

pytestmark = pytest.mark.django_db
DEADLINE = date(2027, 1, 15)


@pytest.fixture(autouse=True)
def staff(django_user_model, settings):
    settings.VERIFICATION_DEADLINE_ALERT_DAYS = [30, 14, 7, 3, 1]
    settings.VERIFICATION_STAFF_ALERT_EMAILS = ["Compliance@provider.test"]
    django_user_model.objects.create_user("root", "root@provider.test", is_staff=True, is_superuser=True)
    django_user_model.objects.create_user("staff", "staff@provider.test", is_staff=True)  # not an administrator


def run_deadline_alerts_on(day: date) -> int:
    with time_machine.travel(datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9), tick=False):
        return tasks.send_deadline_alerts()


@pytest.mark.parametrize(
    ("days_left", "stage"), [(45, None), (31, None), (30, 30), (20, 30), (14, 14), (8, 14), (1, 1), (0, 1), (-5, 1)]
)
def test_the_stage_due_is_the_most_urgent_one_reached(days_left, stage):
    assert due_stage(days_left, [30, 14, 7, 3, 1]) == stage


def test_staff_administrators_and_the_configured_addresses_receive_alerts():
    assert staff_alert_recipients() == ["compliance@provider.test", "root@provider.test"]


def test_each_stage_is_emailed_once_even_when_the_task_runs_twice():
    record = make_verification_record("required", name="Provider Ltd", deadline=DEADLINE)
    assert run_deadline_alerts_on(DEADLINE - timedelta(days=30)) == 1
    assert run_deadline_alerts_on(DEADLINE - timedelta(days=30)) == 0
    assert run_deadline_alerts_on(DEADLINE - timedelta(days=29)) == 0
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject == "Tech Provider verification: 30 days left for Provider Ltd"
    assert sorted(message.to) == ["compliance@provider.test", "root@provider.test"]
    assert "15 January 2027" in message.body and "/admin/dashboard/" in message.body
    assert "Provider Ltd" in message.alternatives[0][0]
    alert = StaffAlert.objects.get()
    assert (alert.key, alert.status) == (f"deadline:{record.pk}:2027-01-15:30d", "sent")


def test_every_configured_stage_goes_out_as_the_deadline_nears():
    make_verification_record("submitted", deadline=DEADLINE)
    for days_left in range(40, -3, -1):
        run_deadline_alerts_on(DEADLINE - timedelta(days=days_left))
        run_deadline_alerts_on(DEADLINE - timedelta(days=days_left))
    assert [m.subject.split(": ")[1].split(" left")[0] for m in mail.outbox] == [
        "30 days", "14 days", "7 days", "3 days", "1 day",
    ]


def test_a_first_run_late_sends_only_the_current_stage():
    make_verification_record("required", deadline=DEADLINE)
    run_deadline_alerts_on(DEADLINE - timedelta(days=10))
    run_deadline_alerts_on(DEADLINE - timedelta(days=9))
    assert len(mail.outbox) == 1
    assert "10 days left" in mail.outbox[0].subject


def test_a_passed_deadline_says_so():
    make_verification_record("rejected", deadline=DEADLINE)
    run_deadline_alerts_on(DEADLINE + timedelta(days=2))
    assert mail.outbox[0].subject.startswith("Tech Provider verification deadline passed")


@pytest.mark.parametrize("status", ["not_required", "verified"])
def test_no_alert_without_a_running_deadline(status):
    make_verification_record(status, deadline=DEADLINE)
    assert run_deadline_alerts_on(DEADLINE - timedelta(days=1)) == 0
    assert not mail.outbox


def test_a_new_deadline_starts_the_stages_again():
    record = make_verification_record("required", deadline=DEADLINE)
    run_deadline_alerts_on(DEADLINE - timedelta(days=7))
    new_deadline = DEADLINE + timedelta(days=30)
    record.__class__.objects.filter(pk=record.pk).update(deadline=new_deadline)
    run_deadline_alerts_on(new_deadline - timedelta(days=7))
    assert len(mail.outbox) == 2


def test_a_failed_send_is_retried_by_the_next_run_and_then_sent_once(monkeypatch):
    make_verification_record("required", deadline=DEADLINE)
    day = DEADLINE - timedelta(days=3)

    def broken(*args, **kwargs):
        raise ConnectionRefusedError("SMTP down")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", broken)
    assert run_deadline_alerts_on(day) == 0
    alert = StaffAlert.objects.get()
    assert (alert.status, alert.attempts, alert.last_error) == ("failed", 1, "SMTP down")
    monkeypatch.undo()
    assert run_deadline_alerts_on(day) == 1
    assert run_deadline_alerts_on(day) == 0
    assert len(mail.outbox) == 1
    assert StaffAlert.objects.get().attempts == 2


def test_with_no_one_to_tell_the_alert_waits(settings, django_user_model):
    settings.VERIFICATION_STAFF_ALERT_EMAILS = []
    django_user_model.objects.filter(is_superuser=True).update(email="")
    make_verification_record("required", deadline=DEADLINE)
    run_deadline_alerts_on(DEADLINE - timedelta(days=3))
    assert StaffAlert.objects.get().status == "failed"
    assert "No staff administrator" in StaffAlert.objects.get().last_error


NOW = datetime(2026, 11, 23, 14, 35, tzinfo=UTC)


def run_upkeep_check(at: datetime) -> bool:
    with time_machine.travel(at, tick=False):
        return tasks.check_upkeep()


def test_upkeep_at_risk_is_emailed_once_per_episode():
    ledger.add_calls("marketing", calls=100, errors=50, at=NOW)
    assert run_upkeep_check(NOW) is True
    assert run_upkeep_check(NOW) is False
    assert run_upkeep_check(NOW + timedelta(hours=3)) is False
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Marketing API access at risk: Marketing API Access Tier (Meta, 2026-05-04)"
    assert "50.0%" in mail.outbox[0].body

    for days_ago in range(15):  # recovery: 60 healthy calls a day
        ledger.add_calls("marketing", calls=60, at=NOW + timedelta(hours=4) - timedelta(days=days_ago))
    assert run_upkeep_check(NOW + timedelta(hours=4)) is False
    assert StaffAlert.objects.get().resolved_at is not None

    ledger.add_calls("marketing", calls=500, errors=400, at=NOW + timedelta(hours=5))  # at risk again
    assert run_upkeep_check(NOW + timedelta(hours=5)) is True
    assert run_upkeep_check(NOW + timedelta(hours=5)) is False
    assert len(mail.outbox) == 2
    assert sorted(StaffAlert.objects.values_list("key", flat=True)) == ["upkeep:1", "upkeep:2"]


def test_the_ledger_prune_task_keeps_the_retention_window(settings):
    settings.VERIFICATION_LEDGER_RETENTION_DAYS = 30
    ledger.add_calls("graph", at=NOW - timedelta(days=31))
    ledger.add_calls("graph", at=NOW)
    with time_machine.travel(NOW, tick=False):
        assert tasks.prune_ledger() == 1


def test_the_periodic_jobs_are_scheduled_by_name(settings):
    from config.celery import app

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    ours = {"verification.send_deadline_alerts", "verification.check_upkeep", "verification.prune_ledger"}
    assert ours <= scheduled
    app.loader.import_default_modules()
    assert ours <= set(app.tasks)


def send_alerts() -> int:
    """In a child process: the deadline alerts task; how many it sent is the exit code."""
    return tasks.send_deadline_alerts()


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_workers_running_the_alerts_at_once_send_each_stage_once(postgres_required, settings):
    make_verification_record("required", deadline=date.today() + timedelta(days=3))
    codes = run_in_fresh_processes(
        4, "verification.tests.test_alerts:send_alerts",
        settings_overrides={
            "VERIFICATION_DEADLINE_ALERT_DAYS": settings.VERIFICATION_DEADLINE_ALERT_DAYS,
            "VERIFICATION_STAFF_ALERT_EMAILS": settings.VERIFICATION_STAFF_ALERT_EMAILS,
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        },
    )
    assert sorted(codes) == [0, 0, 0, 1]
    assert StaffAlert.objects.get().status == "sent"
