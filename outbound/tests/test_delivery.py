"""Deliveries to a real local receiver: signed, retried with backoff, once per event id, recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
import time_machine
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection, transaction

from outbound import delivery, outbox, signing, tasks
from outbound.models import Delivery, Event, EventType, WebhookEndpoint

from .conftest import deliver_all, make_endpoint, readme_recipe

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


def emit(key: str = "test:1", type_: str = EventType.CONNECTION_BROKEN, **data) -> Event:
    (event,) = outbox.record([outbox.NewEvent(type_, key, {"reason": "invalid", **data})])
    return event


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def attempt_when_due(clock, row: Delivery) -> list[str]:
    row.refresh_from_db()
    clock.move_to(row.next_attempt_at)
    return deliver_all()


def test_each_delivery_verifies_with_the_readme_recipe_and_carries_the_event_id(receiver, endpoint, clock):
    event = emit(client_name="Acme")

    assert deliver_all() == [delivery.DELIVERED]

    (got,) = receiver.received
    assert got.verified and got.answered == 200
    assert got.headers["Portal-Event-Id"] == event.event_id == got.event["id"]
    assert got.headers["Portal-Event-Type"] == "connection.broken"
    assert got.headers["Content-Type"] == "application/json"
    assert got.body == signing.encode_body(event.envelope())
    assert got.event["data"] == {"reason": "invalid", "client_name": "Acme"}
    verify = readme_recipe()
    header = got.headers["Portal-Signature"]
    assert not verify(receiver.secret, header, got.body + b" ")  # a body changed on the way
    assert not verify("whsec_someone-else", header, got.body)
    clock.shift(timedelta(minutes=6))
    assert not verify(receiver.secret, header, got.body)  # replayed later


def test_receiver_failures_are_retried_with_backoff_and_the_event_id_arrives_once(receiver, endpoint, clock):
    receiver.answers = [500, 503, 404]
    event = emit()
    row = Delivery.objects.get(event=event)

    assert deliver_all() == [delivery.RETRYING]
    assert deliver_all() == []  # not due yet: nothing is sent early
    clock.shift(timedelta(seconds=59))
    assert deliver_all() == []
    clock.shift(timedelta(seconds=1))
    assert deliver_all() == [delivery.RETRYING]  # one minute after the first
    row.refresh_from_db()
    assert row.next_attempt_at == NOW + timedelta(minutes=1) + timedelta(minutes=2)  # then two
    assert attempt_when_due(clock, row) == [delivery.RETRYING]
    assert attempt_when_due(clock, row) == [delivery.DELIVERED]
    for _ in range(3):
        clock.shift(timedelta(hours=6))
        assert deliver_all() == []

    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == ("succeeded", 4, 200, "")
    assert [item.answered for item in receiver.received] == [500, 503, 404, 200]
    assert all(item.verified for item in receiver.received)
    assert receiver.delivered() == {event.event_id: 1}
    assert len({item.headers["Portal-Signature"] for item in receiver.received}) == 4  # signed afresh each time


def test_retries_last_at_least_a_day_then_the_delivery_is_marked_failed(receiver, endpoint, clock, settings):
    settings.OUTBOUND_RETRY_WINDOW_HOURS = 24
    receiver.default = 500
    row = Delivery.objects.get(event=emit())
    waits = []
    deliver_all()
    while True:
        row.refresh_from_db()
        if row.status != Delivery.Status.PENDING:
            break
        waits.append(row.next_attempt_at - row.last_attempt_at)
        assert attempt_when_due(clock, row)

    assert row.status == Delivery.Status.FAILED and row.last_status_code == 500
    assert row.last_attempt_at - row.first_attempt_at >= timedelta(hours=24)
    assert waits[:4] == [timedelta(minutes=minutes) for minutes in (1, 2, 4, 8)]  # doubling
    assert max(waits) == timedelta(hours=3)  # capped
    assert len(receiver.received) == row.attempts == len(waits) + 1
    clock.shift(timedelta(days=2))
    assert deliver_all() == []


def test_an_unreachable_receiver_is_recorded_by_error_class_only(clock, db):
    with __import__("socket").socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    endpoint, _ = make_endpoint(f"http://127.0.0.1:{port}/hook?key=receiver-side-key")
    emit()

    assert deliver_all() == [delivery.RETRYING]

    row = Delivery.objects.get(endpoint=endpoint)
    assert (row.last_status_code, row.last_error) == (None, "ConnectionError")


def test_a_secret_no_key_can_read_is_a_recorded_failure_and_nothing_is_sent(receiver, endpoint, clock):
    from tokens import crypto

    with connection.cursor() as cursor:
        foreign = crypto.encrypt("whsec_under-another-key", key="some-other-key-xxxxxxxxxxxxxxxxxxxxxxxx")
        cursor.execute("UPDATE outbound_webhookendpoint SET secret = %s WHERE id = %s", [foreign, endpoint.pk])
    row = Delivery.objects.get(event=emit())

    assert deliver_all() == [delivery.RETRYING]

    row.refresh_from_db()
    assert row.last_error.startswith("The signing secret does not decrypt") and row.last_status_code is None
    assert receiver.received == []


def test_a_redirect_is_not_followed_and_counts_as_a_failure(receiver, endpoint, clock):
    receiver.answers = [302]
    row = Delivery.objects.get(event=emit())

    deliver_all()

    row.refresh_from_db()
    assert (row.status, row.last_status_code, row.last_error) == ("pending", 302, "HTTP 302")
    assert len(receiver.received) == 1


def test_a_duplicate_task_or_a_second_worker_makes_no_second_attempt(receiver, endpoint, clock):
    row = Delivery.objects.get(event=emit())
    racing = []

    class SecondWorker:
        """While the first attempt's request is in flight, another worker tries the same delivery."""

        def post(self, *args, **kwargs):
            racing.append(delivery.attempt_delivery(row.pk))
            return requests.post(*args, **kwargs)

    assert delivery.attempt_delivery(row.pk, session=SecondWorker()) == delivery.DELIVERED
    assert racing == [delivery.NOT_CLAIMED]
    assert delivery.attempt_delivery(row.pk) == delivery.NOT_CLAIMED  # delivered: nothing left to do
    assert len(receiver.received) == 1


def test_the_beat_hands_a_due_delivery_out_once_until_its_queue_lease_lapses(receiver, endpoint, clock):
    row = Delivery.objects.get(event=emit())

    assert delivery.due_deliveries() == [row.pk]
    assert delivery.due_deliveries() == []  # a backlog is not queued again each minute
    clock.shift(delivery.QUEUE_LEASE + timedelta(seconds=1))
    assert delivery.due_deliveries() == [row.pk]  # the worker never got it: hand it out again


def test_a_worker_that_died_mid_attempt_lets_its_lease_lapse_and_the_same_event_goes_again(receiver, endpoint, clock):
    event = emit()
    row = Delivery.objects.get(event=event)
    # What a claim leaves when its worker dies after sending but before recording the answer.
    Delivery.objects.filter(pk=row.pk).update(
        attempts=1, lease_until=NOW + delivery.attempt_lease(), first_attempt_at=NOW, last_attempt_at=NOW
    )

    assert deliver_all() == []  # another worker may still be on it
    clock.shift(delivery.attempt_lease() + timedelta(seconds=1))
    assert deliver_all() == [delivery.DELIVERED]

    assert receiver.events()[0]["id"] == event.event_id
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("succeeded", 2)


def test_redeliver_sends_the_same_event_id_again_signed_afresh(receiver, endpoint, clock, monkeypatch):
    asked = []
    monkeypatch.setattr(outbox, "ask_for_delivery", lambda: asked.append(1))
    monkeypatch.setattr(delivery, "ask_for_delivery", lambda: asked.append(1))
    event = emit()
    row = Delivery.objects.get(event=event)
    deliver_all()
    clock.shift(timedelta(hours=1))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transaction, "on_commit", lambda func, robust=False: func())
        assert delivery.redeliver([row.pk]) == (1, 0)
    assert asked == [1]
    assert deliver_all() == [delivery.DELIVERED]

    first, second = receiver.received
    assert first.event["id"] == second.event["id"] == event.event_id
    assert first.body == second.body and second.verified
    assert first.headers["Portal-Signature"] != second.headers["Portal-Signature"]
    row.refresh_from_db()
    assert (row.status, row.attempts, row.delivered_at) == ("succeeded", 2, NOW + timedelta(hours=1))


def test_redeliver_gives_a_failed_delivery_a_new_retry_window(receiver, endpoint, clock, settings):
    settings.OUTBOUND_RETRY_WINDOW_HOURS = 24
    receiver.default = 500
    row = Delivery.objects.get(event=emit())
    deliver_all()
    Delivery.objects.filter(pk=row.pk).update(status="failed")  # gave up earlier
    receiver.default = 200
    clock.shift(timedelta(days=3))

    assert delivery.redeliver([row.pk]) == (1, 0)
    assert deliver_all() == [delivery.DELIVERED]
    row.refresh_from_db()
    assert row.first_attempt_at == NOW + timedelta(days=3)


def test_redeliver_refuses_deliveries_to_a_disabled_endpoint(receiver, endpoint, clock):
    row = Delivery.objects.get(event=emit())
    deliver_all()
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(is_active=False)

    assert delivery.redeliver([row.pk]) == (0, 1)
    assert deliver_all() == []


def test_an_endpoint_failing_for_days_is_disabled_and_staff_are_told_once(receiver, endpoint, clock, settings):
    settings.OUTBOUND_DISABLE_AFTER_DAYS = 2
    get_user_model().objects.create_superuser("root", "root@provider.test", "pw")
    settings.VERIFICATION_STAFF_ALERT_EMAILS = ["oncall@provider.test"]
    receiver.default = 500
    emit("cause:1")
    deliver_all()
    clock.shift(timedelta(days=1))
    row = Delivery.objects.get(event=emit("cause:2"))
    while WebhookEndpoint.objects.get(pk=endpoint.pk).is_active:
        assert not mail.outbox  # staff hear nothing while it is only failing
        assert attempt_when_due(clock, row)

    endpoint.refresh_from_db()
    assert endpoint.disabled_at - endpoint.failing_since >= timedelta(days=2)
    assert endpoint.disabled_reason == "Every delivery failed for 2 days (last: HTTP 500)."
    (message,) = mail.outbox
    assert sorted(message.to) == ["oncall@provider.test", "root@provider.test"]
    assert message.subject == "Webhook endpoint disabled: Product"
    assert "127.0.0.1" in message.body and "/hooks/portal" not in message.body
    assert endpoint.staff_told_at is not None
    attempts = len(receiver.received)
    clock.shift(timedelta(days=1))
    assert deliver_all() == []  # a disabled endpoint is not called
    assert not Delivery.objects.filter(event=emit("cause:3")).exists()  # nor queued for
    assert delivery.tell_staff_of_disabled_endpoints() == 0
    assert len(mail.outbox) == 1 and len(receiver.received) == attempts


def test_a_staff_alert_that_could_not_be_sent_is_retried_by_the_beat_task(receiver, endpoint, clock, monkeypatch):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=NOW - timedelta(days=9))
    receiver.default = 500
    emit()
    deliver_all()  # disabled now; nobody to tell yet
    endpoint.refresh_from_db()
    assert not endpoint.is_active and endpoint.staff_told_at is None
    assert "No staff administrator has an email address" in endpoint.staff_alert_error
    get_user_model().objects.create_superuser("root", "root@provider.test", "pw")
    monkeypatch.setattr(tasks.deliver, "delay", lambda *args: pytest.fail("nothing is due"))

    assert tasks.deliver_due() == {"queued": 0, "staff_told": 1}
    assert tasks.deliver_due() == {"queued": 0, "staff_told": 0}
    assert len(mail.outbox) == 1


def test_a_success_clears_the_failing_record(receiver, endpoint, clock):
    receiver.answers = [500]
    row = Delivery.objects.get(event=emit())
    deliver_all()
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).failing_since == NOW

    attempt_when_due(clock, row)

    endpoint.refresh_from_db()
    assert endpoint.failing_since is None and endpoint.last_success_at == NOW + timedelta(minutes=1)


def test_the_beat_task_hands_each_due_delivery_to_a_worker(receiver, endpoint, clock, monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.deliver, "delay", lambda *args: sent.append(args))
    rows = [Delivery.objects.get(event=emit(f"cause:{n}")) for n in range(3)]

    assert tasks.deliver_due() == {"queued": 3, "staff_told": 0}
    assert tasks.deliver_due() == {"queued": 0, "staff_told": 0}
    assert sorted(sent) == sorted((row.pk,) for row in rows)
    assert [tasks.deliver(*args) for args in sent] == [delivery.DELIVERED] * 3


# --- the outbox --------------------------------------------------------------------------------------


def test_a_cause_recorded_twice_is_one_event_delivered_to_each_endpoint_that_hears_it(receiver, db, clock):
    hears, _ = make_endpoint(receiver.url, [EventType.CONNECTION_BROKEN], name="Broken only")
    make_endpoint(receiver.url, [EventType.CONNECTION_CREATED], name="Created only")
    off, _ = make_endpoint(receiver.url, name="Switched off")
    WebhookEndpoint.objects.filter(pk=off.pk).update(is_active=False)

    first = outbox.record([outbox.NewEvent(EventType.CONNECTION_BROKEN, "token:1", {})] * 2)
    again = outbox.record([outbox.NewEvent(EventType.CONNECTION_BROKEN, "token:1", {})])

    assert len(first) == 1 and again == []
    assert list(Delivery.objects.values_list("endpoint", flat=True)) == [hears.pk]
    assert first[0].event_id.startswith("evt_") and len(first[0].event_id) == 36


def test_deliveries_are_asked_for_only_after_the_cause_commits(endpoint, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        emit()
    assert callbacks == [outbox.ask_for_delivery]

    with pytest.raises(RuntimeError), transaction.atomic():
        emit("cause:rolled-back")
        raise RuntimeError("the change that caused it failed")
    assert not Event.objects.filter(key="cause:rolled-back").exists()
    assert Delivery.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_no_transaction_is_open_while_the_receiver_is_called(receiver, endpoint, monkeypatch):
    monkeypatch.setattr(outbox, "ask_for_delivery", lambda: None)
    emit()
    seen = []

    class Watching:
        def post(self, *args, **kwargs):
            seen.append(connection.in_atomic_block)
            return requests.post(*args, **kwargs)

    (pk,) = delivery.due_deliveries()
    assert delivery.attempt_delivery(pk, session=Watching()) == delivery.DELIVERED
    assert seen == [False]


def test_old_finished_events_are_pruned_and_pending_ones_kept(endpoint, clock, settings, receiver):
    settings.OUTBOUND_RETENTION_DAYS = 30
    receiver.answers = [200, 500]
    delivered, pending = emit("old:1"), emit("old:2")
    deliver_all()
    clock.shift(timedelta(days=31))
    recent = emit("new:1")

    assert tasks.prune_events() == 1
    assert set(Event.objects.values_list("pk", flat=True)) == {pending.pk, recent.pk}
    assert delivered.pk not in Delivery.objects.values_list("event", flat=True)


def test_a_retry_window_shorter_than_a_day_is_refused_at_startup(settings):
    settings.OUTBOUND_RETRY_WINDOW_HOURS = 12
    with pytest.raises(SystemCheckError, match="at least 24 hours"):
        call_command("check")
