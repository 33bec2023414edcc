"""Outgoing webhooks to the provider's product: endpoints, the outbox of events, one delivery per pair.

Meta's *incoming* webhooks are onboarding's (``onboarding.meta_callbacks``); nothing here receives.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.db import models
from django.db.models import Q

from tokens.crypto import EncryptedTokenField


class EventType(models.TextChoices):
    CONNECTION_CREATED = "connection.created", "connection.created"
    CONNECTION_EXPIRING = "connection.expiring", "connection.expiring"
    CONNECTION_BROKEN = "connection.broken", "connection.broken"
    CONNECTION_RECONNECTED = "connection.reconnected", "connection.reconnected"
    ASSET_ACCESS_ENDING = "asset.access_ending", "asset.access_ending"


EVENT_DESCRIPTIONS = {
    EventType.CONNECTION_CREATED: "a client connected a configuration for the first time",
    EventType.CONNECTION_EXPIRING: "a token reached a reminder stage (the day it breaks is given)",
    EventType.CONNECTION_BROKEN: "a token stopped working: invalid, revoked, app removed, access ended",
    EventType.CONNECTION_RECONNECTED: "a new token replaced an earlier one (covered and missing assets)",
    EventType.ASSET_ACCESS_ENDING: "access to one asset ends soon, or has ended",
}


class WebhookEndpoint(models.Model):
    """A URL of the provider's product that hears some event types, signed with a secret of its own."""

    name = models.CharField(max_length=200, help_text="Which service of the provider this is.")
    url = models.URLField("URL", max_length=500)
    # Encrypted like tokens (it signs, so it can't be a hash); shown once, never displayed again.
    secret = EncryptedTokenField()
    # After a rotation the previous secret signs too, until this moment, so receivers can switch over.
    previous_secret = EncryptedTokenField(null=True)
    previous_secret_until = models.DateTimeField(null=True, blank=True)
    secret_set_at = models.DateTimeField()
    event_types = models.JSONField(default=list, help_text="Event types delivered to this endpoint.")
    is_active = models.BooleanField("active", default=True)
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="First failed attempt since the last success (empty: not failing)."
    )
    last_success_at = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    # Staff are told once per disabling: the claim is written before the email, the outcome after it.
    staff_alert_claimed_at = models.DateTimeField(null=True, blank=True, editable=False)
    staff_told_at = models.DateTimeField(null=True, blank=True)
    staff_alert_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return self.name

    def hears(self, event_type: str) -> bool:
        return event_type in self.event_types

    @property
    def host(self) -> str:
        """Where it points, without a path or query (which a receiver may have put a key in)."""
        return urlsplit(self.url).netloc.rpartition("@")[2]


class Event(models.Model):
    """The outbox: one row per cause (``key``), written in the transaction that made the change."""

    event_id = models.CharField(max_length=40, unique=True, editable=False, help_text="Receivers de-duplicate on it.")
    type = models.CharField(max_length=40, choices=EventType.choices)
    key = models.CharField(max_length=200, unique=True, editable=False, help_text="The cause: one event per key.")
    client = models.ForeignKey(
        "onboarding.ClientBusiness", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    data = models.JSONField(default=dict)
    occurred_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"

    def envelope(self) -> dict:
        """What the receiver gets as the body (the same bytes on every attempt, apart from the signature)."""
        return {
            "id": self.event_id,
            "type": self.type,
            "created": self.occurred_at.isoformat().replace("+00:00", "Z"),
            "data": self.data,
        }


class Delivery(models.Model):
    """One event to one endpoint: claimed, attempted, retried with backoff, recorded."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Delivered"
        FAILED = "failed", "Failed (gave up)"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # A claimed attempt runs until this; a worker that died mid-attempt lets it lapse (then: sent again).
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    # Handed to a worker by the beat task until this, so a backlog is not queued once a minute.
    queued_until = models.DateTimeField(null=True, blank=True, editable=False)
    first_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Retries stop a window after this.")
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["event", "endpoint"],
                name="delivery_one_per_event_endpoint",
                violation_error_message="This event already has a delivery to this endpoint.",
            ),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="delivery_due_idx", condition=Q(status="pending")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} to {self.endpoint}"
