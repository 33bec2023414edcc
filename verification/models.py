from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from tokens.transitions import StatusTransitionsMixin

# Meta: "existing businesses get 60 days from the notification" (meta-graph-facts.md).
TECH_PROVIDER_DEADLINE = timedelta(days=60)


class TechProviderVerification(StatusTransitionsMixin, models.Model):
    """Tech Provider access verification of the provider's business or a linked business account."""

    class Status(models.TextChoices):
        NOT_REQUIRED = "not_required", "Not required"
        REQUIRED = "required", "Required"
        SUBMITTED = "submitted", "Submitted"
        VERIFIED = "verified", "Verified"
        REJECTED = "rejected", "Rejected"
        LOST = "lost", "Lost (temporarily)"

    STATUS_TRANSITIONS = {
        "not_required": {"required"},
        "required": {"submitted", "not_required"},
        "submitted": {"verified", "rejected"},
        "verified": {"lost"},
        "rejected": {"submitted"},
        "lost": {"submitted", "verified"},
    }

    name = models.CharField(max_length=200)
    meta_business_id = models.CharField("Meta business id", max_length=64, unique=True)
    is_provider = models.BooleanField(default=False, help_text="The provider's own business (not a linked one).")
    status = models.CharField(max_length=14, choices=Status.choices, default=Status.NOT_REQUIRED)
    notified_on = models.DateField(null=True, blank=True, help_text="Date of Meta's notification email.")
    deadline = models.DateField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    expected_decision_on = models.DateField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-is_provider", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_provider"],
                condition=models.Q(is_provider=True),
                name="verification_one_provider",
                violation_error_message="Only one record can be the provider's own business.",
            ),
        ]
        indexes = [models.Index(fields=["status", "deadline"], name="verification_deadline_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_status_display()})"


class VerificationTransition(models.Model):
    verification = models.ForeignKey(TechProviderVerification, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=14)
    to_status = models.CharField(max_length=14)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    note = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.from_status} → {self.to_status}"


class BusinessVerification(models.Model):
    class Status(models.TextChoices):
        NOT_STARTED = "not_started", "Not started"
        PENDING = "pending", "Pending"
        VERIFIED = "verified", "Verified"
        REJECTED = "rejected", "Rejected"

    name = models.CharField(max_length=200)
    meta_business_id = models.CharField("Meta business id", max_length=64, unique=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.NOT_STARTED)
    verified_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.get_status_display()})"


class PermissionAccess(models.Model):
    class AccessLevel(models.TextChoices):
        NONE = "none", "None"
        STANDARD = "standard", "Standard"
        ADVANCED = "advanced", "Advanced"

    class ReviewState(models.TextChoices):
        NOT_SUBMITTED = "not_submitted", "Not submitted"
        IN_REVIEW = "in_review", "In review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    permission = models.CharField(max_length=100, unique=True)
    access_level = models.CharField(max_length=10, choices=AccessLevel.choices, default=AccessLevel.STANDARD)
    review_state = models.CharField(max_length=14, choices=ReviewState.choices, default=ReviewState.NOT_SUBMITTED)
    gated_by_tech_provider = models.BooleanField(default=False)
    supported_for_user = models.BooleanField(default=True)
    supported_for_system_user = models.BooleanField(default=True)
    notes = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["permission"]
        verbose_name_plural = "permission access"

    def __str__(self) -> str:
        return self.permission


class AppRole(models.Model):
    class Role(models.TextChoices):
        ADMIN = "admin", "Administrator"
        DEVELOPER = "developer", "Developer"
        TESTER = "tester", "Tester"

    name = models.CharField(max_length=200)
    meta_user_id = models.CharField("Meta user id", max_length=64, unique=True)
    role = models.CharField(max_length=10, choices=Role.choices)
    email = models.EmailField(blank=True)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_role_display()})"


class ApiCallDay(models.Model):
    """Graph calls and errors per day and API family; one atomic increment per call."""

    day = models.DateField()
    api = models.CharField(max_length=20, help_text="graph or marketing")
    calls = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-day", "api"]
        constraints = [models.UniqueConstraint(fields=["day", "api"], name="api_call_day_unique")]

    def __str__(self) -> str:
        return f"{self.day} {self.api}: {self.calls} calls, {self.errors} errors"
