"""Reminders under faults, in one process: leases, a mail server that is down, refusals, deadlines missed.

The same scenarios with real Celery workers and a real SMTP server are in test_reminder_workers.py.
"""

import smtplib
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends import locmem
from django.test import override_settings

from testsupport.factories import make_client, make_contact, make_token
from tokens import outage, tasks
from tokens.models import MailOutage, Reminder, TokenEvent
from tokens.reminders import (
    claim_due_reminders,
    plan_reminders,
    release_expired_leases,
    release_node_claims,
    send_due_reminders,
    senders_wanted,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("stub_reconnect_links")]

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


class Server:
    """What the test's mail server does with the next messages: "ok", an exception to raise, or a callable."""

    plan: list = []
    opened = 0
    attempts: list[str] = []
    down = False

    @classmethod
    def reset(cls, plan=(), down=False):
        cls.plan, cls.opened, cls.attempts, cls.down = list(plan), 0, [], down


class ScriptedBackend(locmem.EmailBackend):
    def open(self):
        if Server.down:
            raise ConnectionRefusedError(111, "Connection refused")
        Server.opened += 1
        return True

    def send_messages(self, messages):
        if Server.down:
            raise ConnectionRefusedError(111, "Connection refused")
        for message in messages:
            Server.attempts.append(message.to[0])
            step = Server.plan.pop(0) if Server.plan else "ok"
            if callable(step):
                step()
            elif isinstance(step, BaseException):
                raise step
        return super().send_messages(messages)


@pytest.fixture(autouse=True)
def scripted(settings):
    settings.EMAIL_BACKEND = "tokens.tests.test_reminder_faults.ScriptedBackend"
    settings.REMINDER_STAGES_DAYS = [14, 7, 3, 1]
    Server.reset()


def due_tokens(count: int, ends_in=3 * DAY, **client_fields):
    """``count`` tokens, each with one recipient (its client's notification address), a stage due now."""
    tokens = []
    for i in range(count):
        client = make_client(name=f"Client {i}", notification_emails=f"ops{i}@client.test", **client_fields)
        tokens.append(make_token(client, expires_at=NOW + ends_in))
    return tokens


def statuses():
    return sorted(Reminder.objects.values_list("status", flat=True))


def test_a_connection_failure_stops_the_batch_and_nothing_else_is_tried():
    due_tokens(5)
    with time_machine.travel(NOW, tick=False):
        plan_reminders()
        Server.reset(plan=["ok", ConnectionResetError(104, "Connection reset by peer")])
        result = send_due_reminders()

    assert (result.sent, result.outage) == (1, True)
    assert len(Server.attempts) == 2  # the first went out, the second failed, the other three never tried
    assert statuses() == ["pending"] * 4 + ["sent"]
    waiting = Reminder.objects.filter(status="pending")
    assert set(waiting.values_list("attempts", flat=True)) == {0}  # no attempt spent on a dead server
    assert all("Mail server unreachable" in row.last_error for row in waiting)
    gate = MailOutage.objects.get()
    assert (gate.failures, gate.retry_at) == (1, NOW + timedelta(seconds=30))


def test_the_senders_back_off_as_a_whole_and_keep_trying_then_send_each_once():
    due_tokens(3)
    with time_machine.travel(NOW, tick=False) as clock:
        plan_reminders()
        Server.reset(down=True)
        first = send_due_reminders()
        clock.shift(10)
        assert send_due_reminders().outage and Server.opened == 0 and statuses() == ["pending"] * 3
        assert senders_wanted() == 0  # the gate is closed: nothing is queued meanwhile
        # An outage of hours: the gate doubles up to its cap, and no reminder is ever given up.
        delays = []
        for _ in range(12):
            clock.move_to(MailOutage.objects.get().retry_at)
            before = MailOutage.objects.get().retry_at
            send_due_reminders()
            delays.append((MailOutage.objects.get().retry_at - before).total_seconds())
        assert delays[:5] == [60, 120, 240, 480, 600] and set(delays[5:]) == {600}
        assert statuses() == ["pending"] * 3

        Server.reset()  # back up
        clock.move_to(MailOutage.objects.get().retry_at)
        result = send_due_reminders()

    assert first.outage and result.sent == 3
    assert sorted(m.to[0] for m in mail.outbox) == ["ops0@client.test", "ops1@client.test", "ops2@client.test"]
    assert MailOutage.objects.get().failures == 0


def test_when_the_gate_reopens_one_sender_probes_and_the_others_wait():
    due_tokens(2)
    with time_machine.travel(NOW, tick=False):
        plan_reminders()
        Server.reset(down=True)
        send_due_reminders()
    reopens = MailOutage.objects.get().retry_at
    assert not outage.may_send(reopens - timedelta(seconds=1))
    assert outage.may_send(reopens)
    assert not outage.may_send(reopens)  # the probe is taken: the others wait for its outcome


def test_a_refusal_counts_per_reminder_and_is_given_up_while_the_batch_goes_on(settings):
    settings.REMINDER_MAX_ATTEMPTS = 2
    due_tokens(3)
    refused = smtplib.SMTPRecipientsRefused({"ops1@client.test": (550, b"5.1.1 No such user")})
    with time_machine.travel(NOW, tick=False) as clock:
        plan_reminders()
        Server.reset(plan=["ok", refused, "ok"])
        first = send_due_reminders()
        clock.shift(timedelta(minutes=5))
        Server.reset(plan=[refused])
        second = send_due_reminders()

    assert (first.sent, first.retried, first.outage) == (2, 1, False)
    assert (second.failed, second.outage) == (1, False)
    row = Reminder.objects.get(recipient_email="ops1@client.test")
    assert (row.status, row.attempts, row.given_up_at) == ("failed", 2, NOW + timedelta(minutes=5))
    assert TokenEvent.objects.filter(kind="reminder_failed").count() == 1
    assert not MailOutage.objects.filter(failures__gt=0).exists()


def test_a_deferral_is_retried_with_backoff_and_never_given_up_for_its_count(settings):
    settings.REMINDER_MAX_ATTEMPTS = 2
    due_tokens(1)
    deferred = smtplib.SMTPRecipientsRefused({"ops0@client.test": (451, b"4.2.0 Try again later")})
    with time_machine.travel(NOW, tick=False) as clock:
        plan_reminders()
        for _ in range(4):
            Server.reset(plan=[deferred])
            send_due_reminders()
            clock.move_to(Reminder.objects.get().next_attempt_at)
        Server.reset()
        send_due_reminders()
    assert Reminder.objects.get().status == "sent" and Reminder.objects.get().attempts == 5


def test_a_stage_that_passes_undelivered_is_marked_and_the_next_stage_goes_out_once():
    # Ends in 1 day and 1 hour: the "3d" stage is due; two hours later it is the "1d" stage's turn.
    due_tokens(2, ends_in=DAY + timedelta(hours=1))
    with time_machine.travel(NOW, tick=False) as clock:
        plan_reminders()
        Server.reset(down=True)
        send_due_reminders()
        clock.shift(timedelta(hours=2))
        plan_reminders()
        late = Reminder.objects.filter(stage="3d")
        assert set(late.values_list("status", flat=True)) == {"undelivered"}
        assert all(row.given_up_at == NOW + timedelta(hours=2) for row in late)
        assert "Not delivered in time" in late.first().last_error
        Server.reset()
        clock.move_to(max(NOW + timedelta(hours=2), MailOutage.objects.get().retry_at))
        assert send_due_reminders().sent == 2
        assert send_due_reminders().claimed == 0

    assert sorted(Reminder.objects.filter(stage="1d").values_list("status", flat=True)) == ["sent", "sent"]
    assert len(mail.outbox) == 2


def test_an_end_that_moved_closer_cancels_the_stage_without_calling_it_late():
    (token,) = due_tokens(1, ends_in=5 * DAY)  # the "7d" stage
    with time_machine.travel(NOW, tick=False):
        plan_reminders()
        token.expires_at = NOW + timedelta(hours=12)
        token.save(update_fields=["expires_at"])
        plan_reminders()
    assert dict(Reminder.objects.values_list("stage", "status")) == {"7d": "cancelled", "1d": "pending"}


def test_an_ended_notice_is_tried_for_the_ended_window_then_marked_undelivered(settings):
    due_tokens(1, ends_in=-timedelta(hours=1))
    with time_machine.travel(NOW, tick=False) as clock:
        plan_reminders()
        Server.reset(down=True)
        send_due_reminders()
        clock.shift(timedelta(days=settings.REMINDER_ENDED_WINDOW_DAYS) - timedelta(hours=2))
        plan_reminders()
        assert Reminder.objects.get().status == "pending"
        clock.shift(timedelta(hours=2))
        plan_reminders()
    assert Reminder.objects.get().status == "undelivered"


def test_with_nobody_to_tell_each_stage_leaves_one_row_and_nothing_is_sent():
    client = make_client(notification_emails="")
    make_token(client, granted_by=make_contact(client, receives_reminders=False), expires_at=NOW + 3 * DAY)
    with time_machine.travel(NOW, tick=False):
        plan_reminders()
        plan_reminders()
        result = send_due_reminders()
    row = Reminder.objects.get()
    assert (row.status, row.recipient_email, row.stage, row.given_up_at) == ("nobody", "", "3d", NOW)
    assert result.claimed == 0 and mail.outbox == []


def test_a_live_sender_renews_its_claim_at_every_message_so_a_slow_batch_is_never_taken_over(settings):
    settings.REMINDER_LEASE_SECONDS = 60
    due_tokens(4)
    stolen = []
    with time_machine.travel(NOW, tick=False) as clock:
        plan_reminders()

        def slow_then_another_sender_looks():
            clock.shift(50)  # each message takes 50 s: the batch takes 200 s, over three leases
            stolen.append(release_expired_leases())

        Server.reset(plan=[slow_then_another_sender_looks] * 4)
        result = send_due_reminders()
    assert result.sent == 4 and stolen == [0, 0, 0, 0]
    assert len(mail.outbox) == 4


def test_a_dead_senders_claim_is_released_after_the_lease_only_the_in_doubt_message_retried(settings):
    settings.REMINDER_LEASE_SECONDS = 60
    due_tokens(2)
    with time_machine.travel(NOW, tick=False):
        plan_reminders()
        claim_due_reminders("dead-node@host:123:task-1", NOW, 10)
        in_flight = Reminder.objects.order_by("pk").first()
        Reminder.objects.filter(pk=in_flight.pk).update(send_started_at=NOW, attempts=1)
    assert release_expired_leases(NOW + timedelta(seconds=59)) == 0
    assert release_expired_leases(NOW + timedelta(seconds=61)) == 2
    rows = {row.pk: row for row in Reminder.objects.all()}
    assert rows[in_flight.pk].next_attempt_at == NOW + timedelta(seconds=61)  # at once
    assert "may or may not have been delivered" in rows[in_flight.pk].last_error
    assert {(row.status, row.attempts) for pk, row in rows.items() if pk != in_flight.pk} == {("pending", 0)}


def test_a_redelivered_task_gives_back_its_first_deliverys_claim_at_once(settings):
    settings.REMINDER_LEASE_SECONDS = 600
    due_tokens(3)
    with time_machine.travel(NOW, tick=False):
        plan_reminders()
        claim_due_reminders("node@host:4242:the-task-id", NOW, 10)  # a worker process lost mid-batch
        Reminder.objects.filter(pk=Reminder.objects.order_by("pk").first().pk).update(send_started_at=NOW)
        result = send_due_reminders(task_id="the-task-id", worker="node@host")
    assert (result.released, result.sent) == (3, 3)
    assert len(mail.outbox) == 3


def test_a_restarted_node_gives_back_what_it_held_before_it_started_and_nothing_newer():
    due_tokens(2)
    with time_machine.travel(NOW, tick=False):
        plan_reminders()
        first, second = Reminder.objects.order_by("pk")
        claim_due_reminders("life0@host:1:a", NOW, 1)
        claim_due_reminders("life0@host:2:b", NOW + timedelta(seconds=5), 1)
        assert release_node_claims("other@host", before=NOW + timedelta(seconds=3)) == 0
        assert release_node_claims("life0@host", before=NOW + timedelta(seconds=3)) == 1
    assert dict(Reminder.objects.values_list("pk", "status")) == {first.pk: "pending", second.pk: "sending"}


def test_many_due_reminders_fan_out_to_several_senders_up_to_the_limit(settings, django_capture_on_commit_callbacks):
    settings.REMINDER_BATCH_SIZE, settings.REMINDER_SENDERS = 2, 3
    due_tokens(7)
    with time_machine.travel(NOW, tick=False):
        plan_reminders()
        assert senders_wanted() == 3  # ceil(7 / 2) batches, at most 3 at once
        claim_due_reminders("busy@host:1:x", NOW, 2)
        assert senders_wanted() == 2  # one sender is at work already (and queues its successor)
        with django_capture_on_commit_callbacks() as queued:
            assert tasks.dispatch_reminders() == {"senders": 2}
    assert len(queued) == 2


@override_settings(REMINDER_BATCH_SIZE=2)
def test_senders_claim_disjoint_batches():
    due_tokens(5)
    with time_machine.travel(NOW, tick=False):
        plan_reminders()
        batches = [claim_due_reminders(f"s{i}@host:1:{i}", NOW, 2) for i in range(3)]
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert len({pk for batch in batches for pk in batch}) == 5


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (ConnectionRefusedError(111, "refused"), outage.OUTAGE),
        (TimeoutError("timed out"), outage.OUTAGE),
        (smtplib.SMTPServerDisconnected("gone"), outage.OUTAGE),
        (smtplib.SMTPDataError(421, b"Service not available"), outage.OUTAGE),
        (smtplib.SMTPSenderRefused(550, b"sender refused", "portal@localhost"), outage.OUTAGE),
        (smtplib.SMTPAuthenticationError(535, b"bad credentials"), outage.OUTAGE),
        (smtplib.SMTPRecipientsRefused({"a@b.test": (550, b"no such user")}), outage.REFUSED),
        (smtplib.SMTPRecipientsRefused({"a@b.test": (452, b"mailbox full")}), outage.DEFERRED),
        (smtplib.SMTPDataError(554, b"rejected as spam"), outage.REFUSED),
        (smtplib.SMTPDataError(451, b"local error"), outage.DEFERRED),
        (ValueError("a template broke"), outage.ERROR),
    ],
)
def test_what_a_failure_says_about_the_mail_server(error, kind):
    assert outage.classify(error) == kind


def test_a_database_error_while_preparing_a_message_keeps_the_one_before_recorded_as_sent(monkeypatch):
    from django.db import DatabaseError

    from tokens import emails

    due_tokens(2)
    real = emails.reminder_email
    calls = []

    def second_fails(group, **kwargs):
        calls.append(group)
        if len(calls) == 2:
            raise DatabaseError("the invitation could not be stored")
        return real(group, **kwargs)

    monkeypatch.setattr(emails, "reminder_email", second_fails)
    with time_machine.travel(NOW, tick=False):
        plan_reminders()
        with pytest.raises(DatabaseError):
            send_due_reminders()
    first, second = Reminder.objects.order_by("pk")
    assert (first.status, second.status) == ("sent", "sending")  # the second: handed back by its lease
    assert second.send_started_at is None  # never handed over: no attempt, not in doubt
    assert len(mail.outbox) == 1
