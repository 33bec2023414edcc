"""Recording events in the caller's transaction; delivering them after it commits.

A cause (a token invalidated, revoked, installed; a reminder stage reached) writes its
``Event`` and one ``Delivery`` per active endpoint that hears that type in the same
transaction as the change, so an event exists exactly when its change committed. The HTTP
calls happen later, in Celery, with no transaction open. An event's ``key`` names its cause
and is unique: the same cause seen twice (a sweep chunk run again, planning every 15 minutes)
records nothing the second time.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .models import Delivery, Event, WebhookEndpoint

logger = logging.getLogger(__name__)


@dataclass
class NewEvent:
    type: str
    key: str
    data: dict
    client_id: int | None = None
    occurred_at: datetime = field(default_factory=timezone.now)


def new_event_id() -> str:
    return f"evt_{uuid.uuid4().hex}"


def recorded_keys(keys: list[str]) -> set[str]:
    """Which of these causes already have their event (one query): receivers build only the others."""
    return set(Event.objects.filter(key__in=set(keys)).values_list("key", flat=True)) if keys else set()


def record(events: list[NewEvent]) -> list[Event]:
    """Store the events whose key is new, with their deliveries; ask for delivery after the commit.

    Returns the events stored by this call. Safe against a concurrent writer of the same key: the
    insert skips a conflict (never raising into the caller's transaction) and only the rows with
    the event ids generated here count as ours.
    """
    known = recorded_keys([event.key for event in events])
    fresh: dict[str, Event] = {}
    for event in events:
        if event.key not in known and event.key not in fresh:
            fresh[event.key] = Event(
                event_id=new_event_id(), type=event.type, key=event.key, data=event.data,
                client_id=event.client_id, occurred_at=event.occurred_at,
            )  # fmt: skip
    if not fresh:
        return []
    with transaction.atomic():
        Event.objects.bulk_create(list(fresh.values()), ignore_conflicts=True)
        stored = list(Event.objects.filter(event_id__in=[event.event_id for event in fresh.values()]))
        # Only what routing needs: the secrets are decrypted when sending, never in the cause's transaction.
        endpoints = list(WebhookEndpoint.objects.filter(is_active=True).only("pk", "event_types"))
        deliveries = [
            Delivery(event=event, endpoint=endpoint, next_attempt_at=event.occurred_at)
            for event in stored
            for endpoint in endpoints
            if endpoint.hears(event.type)
        ]
        Delivery.objects.bulk_create(deliveries)
        if deliveries:
            # robust: a broker that is down must not fail the cause's request after its commit;
            # the beat task finds the deliveries within a minute.
            transaction.on_commit(ask_for_delivery, robust=True)
    logger.info("Recorded %d outgoing event(s), %d delivery(ies)", len(stored), len(deliveries))
    return stored


def ask_for_delivery() -> None:
    from .tasks import deliver_due

    deliver_due.delay()


PRUNE_BATCH = 1000


def prune(now: datetime | None = None) -> int:
    """Delete events older than OUTBOUND_RETENTION_DAYS with none of their deliveries pending. Batched."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.OUTBOUND_RETENTION_DAYS)
    old = Event.objects.filter(occurred_at__lt=cutoff).exclude(deliveries__status=Delivery.Status.PENDING)
    deleted = 0
    while ids := list(old.values_list("pk", flat=True)[:PRUNE_BATCH]):
        Delivery.objects.filter(event_id__in=ids).delete()
        deleted += Event.objects.filter(pk__in=ids).delete()[1].get(Event._meta.label, 0)
    return deleted
