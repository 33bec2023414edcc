"""Two real Celery workers deliver through Redis: every event id is answered 2xx exactly once.

Needs PostgreSQL (the workers share the test database) and Redis (the broker). The receiver
fails each event's first request, so every delivery is retried by the workers; the retry base is
one second here and completion is awaited by polling against a deadline, never a fixed sleep.
"""

from __future__ import annotations

import pytest

from outbound import outbox, tasks
from outbound.models import Delivery, EventType
from tokens.tests.test_workers import start_workers, wait_until  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.services, pytest.mark.slow]


def test_two_workers_deliver_each_event_once_after_retrying_failures(
    start_workers, receiver, endpoint, monkeypatch  # noqa: F811 (the fixture imported above)
):
    failed_once: set[str] = set()

    def first_request_of_each_event_fails(event_id: str) -> int:
        if event_id in failed_once:
            return 200
        failed_once.add(event_id)
        return 503

    receiver.decide = first_request_of_each_event_fails
    # A generous read timeout: on a loaded machine a receiver thread can be slow to answer, and a
    # timed-out attempt that the receiver did answer 2xx is resent by design (at least once, D53).
    # That is not what this test is about, so it must not be what makes it fail.
    queue = start_workers(
        2, {"OUTBOUND_RETRY_BASE_SECONDS": "1", "OUTBOUND_RETRY_CAP_SECONDS": "2", "OUTBOUND_TIMEOUT_SECONDS": "120"}
    )
    # After each recording commit, the workers are asked (on the test's queue, not the default one).
    monkeypatch.setattr(outbox, "ask_for_delivery", lambda: tasks.deliver_due.apply_async(queue=queue))

    events = [outbox.record([outbox.NewEvent(EventType.CONNECTION_BROKEN, f"cause:{n}", {})])[0] for n in range(30)]
    for _ in range(3):  # duplicate beats: they compete for the same deliveries
        tasks.deliver_due.apply_async(queue=queue)

    def all_delivered() -> bool:
        tasks.deliver_due.apply_async(queue=queue)  # the beat, while retries come due
        return not Delivery.objects.exclude(status=Delivery.Status.SUCCEEDED).exists()

    wait_until(all_delivered, "every delivery to succeed")
    outcomes = list(Delivery.objects.values_list("event__event_id", "attempts", "last_error"))
    assert receiver.delivered() == {event.event_id: 1 for event in events}, outcomes
    assert all(item.verified for item in receiver.received)
    assert {attempts for _, attempts, _ in outcomes} == {2}, outcomes
