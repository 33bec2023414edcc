"""Reconnect campaigns: many clients asked to reconnect at once, each recipient with one single-use link.

What a recipient did is read from onboarding's rows (the link's invitation and its login attempts) and
the client's tokens, so the campaign page follows people as they act without anything writing to it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

CLIENT_MODEL = "onboarding.ClientBusiness"
CONFIGURATION_MODEL = "onboarding.LoginConfiguration"


class Campaign(models.Model):
    class Kind(models.TextChoices):
        RECONNECT = "reconnect", "Reconnect through the client's configuration"
        MOVE_TO_SYSTEM_USER = "move_to_system_user", "Move from a person's token to a system user"

    class Selection(models.TextChoices):
        ACCESS_ENDING = "access_ending", "Access ends within N days (tokens and asset grants)"
        INVALID_TOKENS = "invalid_tokens", "Tokens Meta says are invalid"
        CONFIGURATION = "configuration", "Every client of a configuration"
        MIGRATING_BUSINESS = "migrating_business", "Person's-token clients of a business moving to managed accounts"

    class Status(models.TextChoices):
        SENDING = "sending", "Sending"
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=24, choices=Kind.choices, default=Kind.RECONNECT)
    selection = models.CharField(max_length=24, choices=Selection.choices)
    selection_params = models.JSONField(default=dict, blank=True, help_text="The filter's values (days, ids).")
    message = models.TextField(help_text="Shown in the email and on the link's page.")
    target_configuration = models.ForeignKey(
        CONFIGURATION_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Moving to a system user: the system-user configuration the links open.",
    )  # fmt: skip
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SENDING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    closed_at = models.DateTimeField(null=True, blank=True)
    last_reminded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_closed(self) -> bool:
        return self.status == self.Status.CLOSED


class Recipient(models.Model):
    """One person asked by a campaign, with the one link they hold (``invitation``)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to be sent"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Could not be sent"
        NO_CONTACT = "no_contact", "Nobody to send to"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="recipients")
    client = models.ForeignKey(CLIENT_MODEL, on_delete=models.CASCADE, related_name="+")
    configuration = models.ForeignKey(CONFIGURATION_MODEL, on_delete=models.PROTECT, related_name="+",
                                      help_text="The configuration the link opens.")  # fmt: skip
    switching_from = models.ForeignKey(CONFIGURATION_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                       related_name="+")  # fmt: skip
    contact = models.ForeignKey("onboarding.Contact", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")  # fmt: skip
    email = models.EmailField(blank=True)
    invitation = models.ForeignKey("onboarding.Invitation", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+", help_text="The recipient's current link.")  # fmt: skip
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    last_error = models.CharField(max_length=300, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    reminders_sent = models.PositiveIntegerField(default=0)
    # Kept when a reminder replaces the link: what the recipient did with the earlier one.
    opened_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["campaign", "client", "email"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "client", "email"], name="recipient_once_per_campaign"),
        ]
        indexes = [models.Index(fields=["campaign", "status"], name="recipient_campaign_status_idx")]

    def __str__(self) -> str:
        return f"{self.email or 'nobody'} for {self.client.name}"
