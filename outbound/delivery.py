"""Delivering recorded events: claim, sign, POST with no transaction open, record the outcome.

An attempt is claimed by a conditional ``UPDATE`` (pending, due, and no lease running): a
duplicate task, or a second worker, finds it taken and sends nothing. The claim holds a lease
while the request runs. A 2xx ends it; anything else schedules the next attempt with exponential backoff until
the retry window (at least 24 hours) has passed since the first attempt, then it is marked
failed. An endpoint failing for ``OUTBOUND_DISABLE_AFTER_DAYS`` is disabled and staff are told
once. Delivery is at least once: a worker that dies between the receiver's answer and our
record lets the lease lapse, and the attempt is made again, with the same event id.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from common.staff import staff_alert_recipients
from tokens.crypto import TokenDecryptionError

from . import emails, signing
from .models import Delivery, WebhookEndpoint
from .outbox import ask_for_delivery

logger = logging.getLogger(__name__)

DELIVERED, RETRYING, GAVE_UP, NOT_CLAIMED, LOST = "delivered", "retrying", "gave_up", "not_claimed", "lost"
USER_AGENT = "TechProviderPortal-Webhooks/1"
# The beat task hands a due delivery to a worker at most this often, so a backlog isn't queued twice.
QUEUE_LEASE = timedelta(minutes=5)
# A claimed staff alert whose worker died is claimed again after this.
STAFF_ALERT_LEASE = timedelta(minutes=15)


def attempt_lease() -> timedelta:
    # Longer than a task may live, so a live worker never loses its claim to another.
    return timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)


def backoff(attempts: int) -> timedelta:
    """Wait before attempt ``attempts + 1``: the base, doubling, capped."""
    seconds = settings.OUTBOUND_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0)
    return timedelta(seconds=min(seconds, settings.OUTBOUND_RETRY_CAP_SECONDS))


def _attemptable(now: datetime):
    return Delivery.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=now),
        status=Delivery.Status.PENDING,
        next_attempt_at__lte=now,
        endpoint__is_active=True,
    )


def due_deliveries(now: datetime | None = None, limit: int | None = None) -> list[int]:
    """Ids of the deliveries to attempt now, marked as handed out."""
    now = now or timezone.now()
    due = list(
        _attemptable(now)
        .filter(Q(queued_until__isnull=True) | Q(queued_until__lt=now))
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[: limit or settings.OUTBOUND_BATCH_SIZE]
    )
    if due:
        Delivery.objects.filter(pk__in=due).update(queued_until=now + QUEUE_LEASE)
    return due


def attempt_delivery(delivery_id: int, *, session=None) -> str:
    """Make the next attempt of this delivery, if it is still due and no other worker is on it."""
    now = timezone.now()
    lease = now + attempt_lease()
    claimed = _attemptable(now).filter(pk=delivery_id).update(
        attempts=F("attempts") + 1,
        lease_until=lease,
        queued_until=None,
        last_attempt_at=now,
        first_attempt_at=Coalesce("first_attempt_at", Value(now)),
    )
    if not claimed:
        return NOT_CLAIMED
    # The secrets are read (decrypted) only when signing, where an unreadable one is a recorded failure.
    delivery = (
        Delivery.objects.select_related("event", "endpoint")
        .defer("endpoint__secret", "endpoint__previous_secret")
        .get(pk=delivery_id)
    )
    code, error = post(delivery, session=session)
    return record_outcome(delivery, lease, code, error)


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The current secret, and the previous one while a rotation's overlap lasts."""
    secrets = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_until and endpoint.previous_secret_until > now:
        secrets.append(endpoint.previous_secret)
    return secrets


def post(delivery: Delivery, *, session=None) -> tuple[int | None, str]:
    """Send one attempt. Returns (HTTP status or None, a short error without any URL or secret)."""
    event, endpoint = delivery.event, delivery.endpoint
    body = signing.encode_body(event.envelope())
    now = timezone.now()
    try:
        secrets = signing_secrets(endpoint, now)
    except TokenDecryptionError:
        return None, "The signing secret does not decrypt with the configured keys (see check_token_encryption)."
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.EVENT_ID_HEADER: event.event_id,
        signing.EVENT_TYPE_HEADER: event.type,
        signing.SIGNATURE_HEADER: signing.signature_header(secrets, int(now.timestamp()), body),
    }
    try:
        response = (session or requests).post(
            endpoint.url,
            data=body,
            headers=headers,
            timeout=settings.OUTBOUND_TIMEOUT_SECONDS,
            allow_redirects=False,  # a redirect is an answer we don't follow: the URL is staff's to fix
            stream=True,  # the answer's body is never read
        )
    except requests.RequestException as exc:
        # The exception's text holds the URL (which a receiver may have put a key in): class name only.
        return None, exc.__class__.__name__
    response.close()
    code = response.status_code
    return code, "" if 200 <= code < 300 else f"HTTP {code}"


def record_outcome(delivery: Delivery, lease: datetime, code: int | None, error: str) -> str:
    now = timezone.now()
    ours = Delivery.objects.filter(pk=delivery.pk, lease_until=lease, status=Delivery.Status.PENDING)
    endpoint = WebhookEndpoint.objects.filter(pk=delivery.endpoint_id)
    outcome = {"last_status_code": code, "last_error": error[:300], "lease_until": None}
    if not error:
        if not ours.update(status=Delivery.Status.SUCCEEDED, delivered_at=now, **outcome):
            return LOST
        endpoint.update(failing_since=None, last_success_at=now)
        logger.info("Webhook delivery %s delivered (HTTP %s)", delivery.pk, code)
        return DELIVERED
    window = timedelta(hours=settings.OUTBOUND_RETRY_WINDOW_HOURS)
    if now - delivery.first_attempt_at >= window:
        result, changed = GAVE_UP, ours.update(status=Delivery.Status.FAILED, **outcome)
    else:
        result, changed = RETRYING, ours.update(next_attempt_at=now + backoff(delivery.attempts), **outcome)
    if not changed:
        return LOST
    endpoint.filter(failing_since__isnull=True).update(failing_since=now)
    logger.info("Webhook delivery %s attempt %s failed (%s): %s", delivery.pk, delivery.attempts, error, result)
    if disable_if_failing_too_long(delivery.endpoint_id, error, now):
        tell_staff(delivery.endpoint_id)
    return result


def disable_if_failing_too_long(endpoint_id: int, error: str, now: datetime) -> bool:
    """Disable an endpoint whose deliveries have all failed for the configured days. True if this call did."""
    days = settings.OUTBOUND_DISABLE_AFTER_DAYS
    disabled = WebhookEndpoint.objects.filter(
        pk=endpoint_id, is_active=True, failing_since__lte=now - timedelta(days=days)
    ).update(
        is_active=False,
        disabled_at=now,
        disabled_reason=f"Every delivery failed for {days} days (last: {error})."[:300],
        staff_alert_claimed_at=None,
        staff_told_at=None,
        staff_alert_error="",
    )
    if disabled:
        logger.warning("Webhook endpoint %s disabled after %s days of failed deliveries", endpoint_id, days)
    return bool(disabled)


def tell_staff(endpoint_id: int) -> bool:
    """Email staff that this endpoint was disabled: claimed first, so it is sent once per disabling."""
    now = timezone.now()
    claimed = (
        WebhookEndpoint.objects.filter(pk=endpoint_id, is_active=False, staff_told_at__isnull=True)
        .filter(Q(staff_alert_claimed_at__isnull=True) | Q(staff_alert_claimed_at__lt=now - STAFF_ALERT_LEASE))
        .update(staff_alert_claimed_at=now)
    )
    if not claimed:
        return False
    endpoint = WebhookEndpoint.objects.get(pk=endpoint_id)
    ours = WebhookEndpoint.objects.filter(pk=endpoint_id, staff_alert_claimed_at=now)
    try:
        recipients = staff_alert_recipients()
        if not recipients:
            raise ValueError(
                "No staff administrator has an email address (add one, or set VERIFICATION_STAFF_ALERT_EMAILS)."
            )
        emails.send_endpoint_disabled(endpoint, recipients)
    except Exception as exc:
        logger.warning("Staff not told that webhook endpoint %s was disabled: %s", endpoint_id, exc.__class__.__name__)
        ours.update(staff_alert_claimed_at=None, staff_alert_error=str(exc)[:300])
        return False
    ours.update(staff_told_at=timezone.now(), staff_alert_error="")
    return True


def tell_staff_of_disabled_endpoints() -> int:
    """Retry the alerts that failed (or whose worker died): the beat task calls this."""
    waiting = WebhookEndpoint.objects.filter(is_active=False, disabled_at__isnull=False, staff_told_at__isnull=True)
    return sum(tell_staff(pk) for pk in waiting.values_list("pk", flat=True))


def redeliver(delivery_ids, now: datetime | None = None) -> tuple[int, int]:
    """Send these deliveries again, from a fresh retry window. Returns (queued, refused).

    Refused: the endpoint is disabled, or an attempt is running right now.
    """
    now = now or timezone.now()
    ids = set(delivery_ids)
    queued = (
        Delivery.objects.filter(pk__in=ids, endpoint__is_active=True)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(
            status=Delivery.Status.PENDING, next_attempt_at=now, first_attempt_at=None, queued_until=None,
            lease_until=None, delivered_at=None, last_error="",
        )
    )  # fmt: skip
    if queued:
        transaction.on_commit(ask_for_delivery, robust=True)
    return queued, len(ids) - queued
