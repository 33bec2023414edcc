"""Staff hear about reminders given up (not delivered in time, refused) and reminders with nobody to tell."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from testsupport.factories import make_client, make_token
from tokens.models import Reminder
from verification import tasks
from verification.alerts import REMINDERS_NOBODY, REMINDERS_UNDELIVERED
from verification.models import StaffAlert

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def staff(django_user_model, settings):
    settings.VERIFICATION_STAFF_ALERT_EMAILS = []
    settings.REMINDER_ALERT_INTERVAL_SECONDS = 3600
    django_user_model.objects.create_user("root", "root@provider.test", is_staff=True, is_superuser=True)


def given_up(status: str, count: int, at: datetime) -> None:
    client = make_client()
    for _ in range(count):
        token = make_token(client, expires_at=NOW + timedelta(days=1))
        Reminder.objects.create(
            client=client, token=token, reason="token_expiring", stage="3d", recipient_email="" if status == "nobody"
            else "ops@acme.test", due_at=NOW - timedelta(days=2), status=status, given_up_at=at,
        )


def check(at: datetime) -> dict:
    with time_machine.travel(at, tick=False):
        return tasks.check_reminder_alerts()


def test_reminders_not_delivered_in_time_or_refused_are_counted_in_one_email():
    given_up("undelivered", 3, NOW - timedelta(minutes=10))
    given_up("failed", 1, NOW - timedelta(minutes=5))
    given_up("cancelled", 2, NOW - timedelta(minutes=5))  # no longer needed: not trouble

    assert check(NOW) == {REMINDERS_UNDELIVERED: True, REMINDERS_NOBODY: False}

    (message,) = mail.outbox
    assert message.to == ["root@provider.test"]
    assert message.subject == "4 reminders to clients could not be delivered"
    assert "3 not delivered in time" in message.body and "1 refused by the mail server" in message.body
    assert "/admin/tokens/reminder/?status__exact=undelivered" in message.body


def test_at_most_one_email_per_interval_each_counting_what_came_since_the_last():
    given_up("undelivered", 2, NOW - timedelta(minutes=1))
    check(NOW)
    given_up("undelivered", 5, NOW + timedelta(minutes=10))
    assert check(NOW + timedelta(minutes=30))[REMINDERS_UNDELIVERED] is False  # within the hour
    assert check(NOW + timedelta(minutes=61))[REMINDERS_UNDELIVERED] is True
    assert check(NOW + timedelta(minutes=200))[REMINDERS_UNDELIVERED] is False  # nothing new

    assert [m.subject for m in mail.outbox] == [
        "2 reminders to clients could not be delivered",
        "5 reminders to clients could not be delivered",
    ]


def test_a_digest_that_could_not_be_sent_is_retried_until_it_is(settings):
    given_up("undelivered", 2, NOW - timedelta(minutes=1))
    settings.EMAIL_BACKEND = "tokens.tests.test_reminder_faults.ScriptedBackend"
    from tokens.tests.test_reminder_faults import Server

    Server.reset(down=True)  # the same mail server the reminders could not reach
    for minutes in range(0, 60, 5):
        assert check(NOW + timedelta(minutes=minutes))[REMINDERS_UNDELIVERED] is False
    Server.reset()
    given_up("undelivered", 1, NOW + timedelta(minutes=30))
    assert check(NOW + timedelta(minutes=65))[REMINDERS_UNDELIVERED] is True

    assert [m.subject for m in mail.outbox] == ["3 reminders to clients could not be delivered"]
    alert = StaffAlert.objects.get(kind=REMINDERS_UNDELIVERED)
    assert (alert.status, alert.attempts) == ("sent", 13)


def test_nobody_to_tell_alerts_staff_with_the_count_and_the_list():
    given_up("nobody", 2, NOW - timedelta(minutes=1))

    assert check(NOW) == {REMINDERS_UNDELIVERED: False, REMINDERS_NOBODY: True}
    (message,) = mail.outbox
    assert message.subject == "Access is ending for 2 client connections with nobody to tell"
    assert "/admin/tokens/reminder/?status__exact=nobody" in message.body
    assert check(NOW + timedelta(hours=2)) == {REMINDERS_UNDELIVERED: False, REMINDERS_NOBODY: False}


def test_the_reminder_alerts_are_scheduled(settings):
    from config.celery import app

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"verification.check_reminder_alerts", "tokens.dispatch_reminders"} <= scheduled
    app.loader.import_default_modules()
    assert {"verification.check_reminder_alerts", "tokens.dispatch_reminders", "tokens.send_reminders"} <= set(
        app.tasks
    )
