import smtplib
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.mail.backends import locmem
from django.test import override_settings

from testsupport.factories import make_asset, make_contact, make_grant, make_token
from tokens.models import AccessToken, AssetGrant, Reminder, TokenEvent
from tokens.reminders import current_stage, plan_reminders, release_expired_leases, send_due_reminders

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("reconnect_stub"),
]

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture
def reconnect_stub(settings, stub_reconnect_links):
    settings.REMINDER_STAGES_DAYS = [14, 7, 3, 1]


@pytest.fixture
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def active_client(active_client):
    """Also notified at the grantor's address in other case: recipients are de-duplicated by address."""
    active_client.notification_emails = "ops@acme.test, ANA@acme.test"
    active_client.save(update_fields=["notification_emails"])
    return active_client


@pytest.fixture
def grantor(active_client):
    return make_contact(active_client, email="ana@acme.test")


def plan_and_send(now=None):
    plan_reminders(now)
    return send_due_reminders(now=now)


def test_the_current_stage_is_the_smallest_one_already_reached():
    ends = NOW + 5 * DAY
    assert current_stage(ends, NOW) == ("7d", ends - 7 * DAY)
    assert current_stage(ends, NOW - 20 * DAY) is None
    assert current_stage(ends, ends) == ("ended", ends)


def test_nothing_is_planned_before_the_first_stage(frozen, active_client, grantor):
    make_token(active_client, granted_by=grantor, expires_at=NOW + 15 * DAY)

    plan_reminders()

    assert not Reminder.objects.exists()


def test_the_grantor_and_the_notification_addresses_each_get_the_current_stage_once(frozen, active_client, grantor):
    token = make_token(active_client, granted_by=grantor, expires_at=NOW + 5 * DAY)

    plan_reminders()
    plan_reminders()

    rows = Reminder.objects.order_by("recipient_email")
    assert [(r.recipient_email, r.stage, r.reason, r.subject_key) for r in rows] == [
        ("ana@acme.test", "7d", "token_expiring", f"token:{token.pk}"),
        ("ops@acme.test", "7d", "token_expiring", f"token:{token.pk}"),
    ]
    assert rows[0].recipient_contact == grantor


def test_a_grantor_who_turned_reminders_off_is_not_written_to(frozen, active_client):
    quiet = make_contact(active_client, email="quiet@acme.test", receives_reminders=False)
    make_token(active_client, granted_by=quiet, expires_at=NOW + 2 * DAY)

    plan_reminders()

    assert set(Reminder.objects.values_list("recipient_email", flat=True)) == {"ops@acme.test", "ana@acme.test"}


def test_each_stage_goes_out_exactly_once_as_the_end_approaches(active_client, grantor):
    ends = NOW + 20 * DAY
    make_token(active_client, granted_by=grantor, expires_at=ends)
    for moment in [NOW, ends - 14 * DAY, ends - 10 * DAY, ends - 7 * DAY, ends - 3 * DAY, ends - DAY, ends]:
        with time_machine.travel(moment, tick=False):
            plan_and_send()
            plan_and_send()  # a second run changes nothing

    assert Reminder.objects.filter(status="sent").count() == 10  # 5 stages x 2 recipients
    stages_by_send = [r.stage for r in Reminder.objects.order_by("sent_at", "recipient_email")]
    assert stages_by_send == ["14d", "14d", "7d", "7d", "3d", "3d", "1d", "1d", "ended", "ended"]
    assert len(mail.outbox) == 10
    assert len({m.extra_headers["X-Portal-Reminder"] for m in mail.outbox}) == 10


def test_the_email_names_the_business_the_assets_the_date_and_a_reconnect_link_but_never_the_token(
    frozen, active_client, grantor
):
    token = make_token(active_client, granted_by=grantor, expires_at=NOW + 3 * DAY, value="EAAB-very-secret")
    make_grant(token, make_asset(active_client, name="Acme Main Page"))

    plan_and_send()

    message = mail.outbox[0]
    html = message.alternatives[0][0]
    assert "Acme Bakery" in message.subject
    for body in (message.body, html):
        assert "Acme Main Page" in body
        assert "5 March 2026" in body
        assert f"/invite/reconnect-{active_client.pk}-{token.configuration_id}/" in body
        assert "EAAB-very-secret" not in body
    assert "EAAB-very-secret" not in message.subject
    assert message.extra_headers["Message-ID"].startswith("<reminder.")


def test_a_pending_reminder_whose_token_was_reconnected_is_cancelled_not_sent(frozen, active_client, grantor):
    token = make_token(active_client, granted_by=grantor, expires_at=NOW + 3 * DAY)
    plan_reminders()
    token.status = AccessToken.Status.SUPERSEDED
    token.save()

    result = send_due_reminders()

    assert result.sent == 0 and result.cancelled == 2
    assert not mail.outbox
    assert set(Reminder.objects.values_list("status", flat=True)) == {"cancelled"}


def test_a_moved_expiry_cancels_the_stale_stage_and_plans_the_new_one(frozen, active_client, grantor):
    token = make_token(active_client, granted_by=grantor, expires_at=NOW + 3 * DAY)
    plan_reminders()
    token.expires_at = NOW + 10 * DAY
    token.save()

    result = plan_reminders()

    assert result.cancelled == 2
    assert set(Reminder.objects.filter(status="pending").values_list("stage", flat=True)) == {"14d"}


def test_an_invalid_token_gets_one_ended_reminder(frozen, active_client, grantor):
    make_token(active_client, granted_by=grantor, status=AccessToken.Status.INVALID, last_checked_at=NOW)

    plan_and_send()
    plan_and_send()

    assert [r.stage for r in Reminder.objects.all()] == ["ended", "ended"]
    assert len(mail.outbox) == 2
    assert "stopped working" in mail.outbox[0].subject


def test_a_reconnect_supersedes_the_old_grants_and_their_reminders_stop_even_for_a_dropped_asset(
    frozen, active_client, grantor
):
    """#13: the asset the person left out at reconnect was dropped on purpose; its grant is superseded."""
    from tokens.health import supersede_grants

    old = make_token(active_client, granted_by=grantor, expires_at=NOW + 60 * DAY)
    kept, dropped = make_asset(active_client, "Kept Page"), make_asset(active_client, "Dropped Page")
    make_grant(old, kept, user_access_expire_time=NOW + 10 * DAY)
    dropped_grant = make_grant(old, dropped, user_access_expire_time=NOW + 10 * DAY)
    plan_reminders()
    assert Reminder.objects.filter(reason="asset_access_ending", stage="14d").count() == 4

    # The person reconnects and re-selects only one asset (install_token supersedes the old token's grants).
    old.status = AccessToken.Status.SUPERSEDED
    old.save()
    supersede_grants(old)
    new = make_token(active_client, configuration=old.configuration, granted_by=grantor, expires_at=NOW + 60 * DAY)
    make_grant(new, kept)
    send_due_reminders()

    assert mail.outbox == []
    dropped_grant.refresh_from_db()
    assert dropped_grant.status == AssetGrant.Status.SUPERSEDED
    assert set(Reminder.objects.values_list("status", flat=True)) == {Reminder.Status.CANCELLED}
    with time_machine.travel(NOW + 4 * DAY, tick=False):
        plan_and_send()
    assert not Reminder.objects.filter(status="sent").exists()


class FailingBackend:
    def __init__(self, *args, **kwargs):
        pass

    def open(self):
        return True

    def close(self):
        pass

    def send_messages(self, messages):
        # A permanent refusal counts per reminder (a server that can't be reached never does: D66).
        raise smtplib.SMTPDataError(554, b"5.7.1 rejected: mail server refuses it")


@override_settings(EMAIL_BACKEND="tokens.tests.test_reminders.FailingBackend", REMINDER_MAX_ATTEMPTS=3)
def test_refused_sends_are_retried_with_backoff_then_given_up_and_shown_to_staff(active_client, grantor):
    make_token(active_client, granted_by=grantor, expires_at=NOW + 3 * DAY)
    with time_machine.travel(NOW, tick=False):
        plan_reminders()
        first = send_due_reminders()
        again_at_once = send_due_reminders()
    reminder = Reminder.objects.get(recipient_email="ana@acme.test")
    assert first.retried == 2 and again_at_once.claimed == 0
    assert reminder.status == "pending" and reminder.attempts == 1
    assert reminder.next_attempt_at == NOW + timedelta(minutes=5)
    assert "mail server refuses it" in reminder.last_error

    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        send_due_reminders()
    assert Reminder.objects.get(pk=reminder.pk).next_attempt_at == NOW + timedelta(minutes=15)
    with time_machine.travel(NOW + timedelta(minutes=15), tick=False):
        last = send_due_reminders()

    assert last.failed == 2
    assert set(Reminder.objects.values_list("status", "attempts")) == {("failed", 3)}
    assert TokenEvent.objects.filter(kind="reminder_failed").count() == 2


def test_a_dead_workers_batch_is_given_back_and_only_the_in_flight_message_counts_an_attempt(
    frozen, active_client, grantor, settings
):
    make_token(active_client, granted_by=grantor, expires_at=NOW + 3 * DAY)
    plan_reminders()
    in_flight, untouched = Reminder.objects.order_by("pk")
    # A worker claimed both and died while handing the first to the mail server.
    Reminder.objects.update(status="sending", claimed_by="dead-worker", claimed_at=NOW)
    Reminder.objects.filter(pk=in_flight.pk).update(send_started_at=NOW, attempts=1)

    assert release_expired_leases(NOW + timedelta(seconds=settings.REMINDER_LEASE_SECONDS - 1)) == 0
    assert release_expired_leases(NOW + timedelta(seconds=settings.REMINDER_LEASE_SECONDS + 1)) == 2

    in_flight.refresh_from_db()
    untouched.refresh_from_db()
    assert (untouched.status, untouched.attempts) == ("pending", 0)
    assert (in_flight.status, in_flight.attempts) == ("pending", 1)
    assert in_flight.next_attempt_at == NOW + timedelta(seconds=settings.REMINDER_LEASE_SECONDS + 1)  # at once
    assert "may or may not have been delivered" in in_flight.last_error


class CountingBackend(locmem.EmailBackend):
    opened = 0
    sent_per_connection: list[int] = []

    def open(self):
        CountingBackend.opened += 1
        CountingBackend.sent_per_connection.append(0)
        return True

    def send_messages(self, messages):
        CountingBackend.sent_per_connection[-1] += len(messages)
        return super().send_messages(messages)


@override_settings(EMAIL_BACKEND="tokens.tests.test_reminders.CountingBackend")
def test_a_batch_goes_out_over_one_mail_connection(frozen, active_client, grantor):
    for _ in range(3):
        make_token(active_client, granted_by=grantor, expires_at=NOW + 3 * DAY)
    plan_reminders()
    CountingBackend.opened, CountingBackend.sent_per_connection = 0, []

    result = send_due_reminders()

    assert result.sent == 6
    assert CountingBackend.opened == 1 and CountingBackend.sent_per_connection == [6]


def test_assets_whose_access_ends_together_travel_in_one_email_per_person(frozen, active_client, grantor):
    token = make_token(active_client, granted_by=grantor, expires_at=NOW + 60 * DAY)
    for name in ("Page A", "Page B", "Ads C"):
        make_grant(token, make_asset(active_client, name), user_access_expire_time=NOW + 3 * DAY)

    result = plan_and_send()

    assert (result.sent, result.messages) == (6, 2)
    assert sorted(m.to[0] for m in mail.outbox) == ["ana@acme.test", "ops@acme.test"]
    message = mail.outbox[0]
    assert message.subject == "Action needed: access to 3 assets of Acme Bakery ends 5 Mar 2026"
    assert all(name in message.body for name in ("Page A", "Page B", "Ads C"))
    assert len(message.extra_headers["X-Portal-Reminder"].split(",")) == 3
    assert Reminder.objects.filter(status="sent").count() == 6


def test_the_ended_email_speaks_of_what_has_happened_not_what_will(active_client, grantor):
    ends = NOW + 2 * DAY
    make_token(active_client, granted_by=grantor, expires_at=ends)
    with time_machine.travel(ends - DAY, tick=False):
        plan_and_send()
    with time_machine.travel(ends + DAY, tick=False):
        plan_and_send()

    before, after = mail.outbox[0], mail.outbox[-1]
    assert "the access you granted expires" in before.body
    assert "the access you granted has expired" in after.body
    assert "expires." not in after.body
    assert "has expired" in after.alternatives[0][0]


def _subjects_of_every_kind(count: int) -> None:
    """``count`` clients each with a reminder of every reason (the grantor and one notification address each)."""
    from testsupport.factories import make_client

    for i in range(count):
        client = make_client(name=f"Client {count}-{i}", notification_emails=f"ops{count}-{i}@client.test")
        grantor = make_contact(client, email=f"ana{count}-{i}@client.test")
        expiring = make_token(client, granted_by=grantor, expires_at=NOW + 3 * DAY)
        make_grant(expiring, make_asset(client, name=f"Page {i}"))
        person = make_token(client, granted_by=grantor, kind=AccessToken.Kind.SYSTEM_USER, expires_at=NOW + 60 * DAY,
                            missing_permissions=["ads_read"], permissions_removed_at=NOW - DAY)  # fmt: skip
        make_grant(person, make_asset(client, name=f"Ads {i}"), user_access_expire_time=NOW + 3 * DAY)
        make_token(client, granted_by=grantor, status=AccessToken.Status.INVALID, last_checked_at=NOW,
                   configuration=expiring.configuration)  # fmt: skip


def test_sending_a_batch_reads_the_same_number_of_times_however_many_reminders_it_holds(frozen):
    """One statement per email and a fixed number per batch: nothing read reminder by reminder (a field left
    out of the batch's read and then used would be one query per reminder)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    send_due_reminders()  # what a first run does once (the mail gate's row)
    counts = []
    for clients in (1, 3):
        _subjects_of_every_kind(clients)
        plan_reminders()
        with CaptureQueriesContext(connection) as queries:
            result = send_due_reminders()
        assert result.failed == result.retried == 0
        counts.append((len(queries), result.messages))
    (few, few_messages), (many, many_messages) = counts
    assert many_messages > few_messages >= 4
    assert many - few == many_messages - few_messages


def test_each_reminder_sent_leaves_its_audit_row(frozen):
    from tokens.reminders import _sent_event, _with_subjects

    _subjects_of_every_kind(1)
    plan_reminders()
    send_due_reminders()

    sent = _with_subjects(Reminder.objects.filter(status="sent")).order_by("pk")
    events = {event.data["reminder"]: event for event in TokenEvent.objects.filter(kind="reminder_sent")}
    assert len(sent) == len(events) == 8
    for reminder in sent:
        event, expected = events[reminder.pk], _sent_event(reminder, events[reminder.pk].data["email"])
        assert reminder.pk in event.data["email"]
        assert (event.actor, event.message, event.data, event.created_at) == (
            expected.actor, expected.message, expected.data, reminder.sent_at
        )
        assert (event.client_id, event.token_id, event.asset_id) == (
            expected.client_id, expected.token_id, expected.asset_id
        )
    assert {e.asset_id is not None for e in events.values()} == {True, False}  # grant reminders name their asset
