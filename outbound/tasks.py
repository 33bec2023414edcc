"""Celery tasks of outgoing webhooks: thin callers of outbound.delivery, ids only.

``deliver_due`` (beat, every minute, and after every commit that recorded deliveries) hands each
due delivery to ``deliver``; ``deliver`` claims and makes one attempt. Retries are found from
``next_attempt_at`` in the database, never from countdowns (D3).
"""

from __future__ import annotations

from celery import shared_task

from . import delivery, outbox


@shared_task(name="outbound.deliver")
def deliver(delivery_id: int) -> str:
    return delivery.attempt_delivery(delivery_id)


@shared_task(name="outbound.deliver_due")
def deliver_due() -> dict:
    due = delivery.due_deliveries()
    for delivery_id in due:
        deliver.delay(delivery_id)
    told = delivery.tell_staff_of_disabled_endpoints()
    return {"queued": len(due), "staff_told": told}


@shared_task(name="outbound.prune_events")
def prune_events() -> int:
    return outbox.prune()
