from __future__ import annotations

from datetime import date, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from common.transitions import StatusTransitionsMixin
from graph import permissions

# Meta: "existing businesses get 60 days from the notification" (docs/meta.md).
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

    # Statuses in which Meta's deadline is running: access continues until it passes.
    DEADLINE_STATUSES = (Status.REQUIRED, Status.SUBMITTED, Status.REJECTED, Status.LOST)
    # Statuses in which gated permissions keep working with no deadline at all.
    GOOD_STANDING_STATUSES = (Status.NOT_REQUIRED, Status.VERIFIED)

    def deadline_is_running(self) -> bool:
        return self.status in self.DEADLINE_STATUSES and self.deadline is not None

    def days_until_deadline(self, today: date | None = None) -> int | None:
        """Whole days from today to the deadline (0 on the day, negative once passed); None if none runs."""
        if not self.deadline_is_running():
            return None
        return (self.deadline - (today or timezone.localdate())).days

    def passes_gating(self, today: date | None = None) -> bool:
        """Would Meta accept gated permissions for people without a role on the app, on that day?"""
        if self.status in self.GOOD_STANDING_STATUSES:
            return True
        return self.deadline is not None and (today or timezone.localdate()) <= self.deadline

    def passes_gating_after_deadline(self) -> bool:
        return self.status in self.GOOD_STANDING_STATUSES


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
    notes = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["permission"]
        verbose_name_plural = "permission access"

    def __str__(self) -> str:
        return self.permission

    # What Meta publishes about a permission is read from graph/permissions.py, never stored twice.
    @property
    def gated_by_tech_provider(self) -> bool:
        return self.permission in permissions.TECH_PROVIDER_GATED

    @property
    def supported_for_user(self) -> bool:
        return self.permission in permissions.supported_permissions(permissions.USER)

    @property
    def supported_for_system_user(self) -> bool:
        return self.permission in permissions.supported_permissions(permissions.SYSTEM_USER)

    @property
    def is_advanced(self) -> bool:
        return self.access_level == self.AccessLevel.ADVANCED


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




class ApiCallHour(models.Model):
    """Graph calls and errors per hour and API; the Graph hook adds to it with one atomic upsert.

    Hours, not days, so "the last N calls" can be read back from the newest buckets
    (docs/decisions.md, D6). Days are sums of hours.
    """

    class Api(models.TextChoices):
        GRAPH = "graph", "Graph API"
        MARKETING = "marketing", "Marketing API"

    hour = models.DateTimeField(help_text="Start of the hour (UTC).")
    api = models.CharField(max_length=10, choices=Api.choices)
    calls = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-hour", "api"]
        verbose_name = "API calls per hour"
        verbose_name_plural = "API calls per hour"
        constraints = [models.UniqueConstraint(fields=["hour", "api"], name="api_call_hour_unique")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.api}: {self.calls} calls, {self.errors} errors"


class ReportedCallHour(models.Model):
    """Calls a service of the provider made to Meta without the proxy, as it reported them (per hour and API).

    One row per service, hour and API (``POST /api/v1/usage``): a later report of the same hour
    replaces the earlier one, so a service may report the running hour as often as it likes and
    a report sent twice counts once (docs/decisions.md D58). The upkeep figures add these rows to
    the ledger's own buckets (``ApiCallHour``: the portal's calls, the proxy's included).
    """

    service = models.CharField(max_length=200, help_text="The reporting service credential's name.")
    hour = models.DateTimeField(help_text="Start of the hour (UTC).")
    api = models.CharField(max_length=10, choices=ApiCallHour.Api.choices)
    calls = models.PositiveBigIntegerField()
    errors = models.PositiveBigIntegerField()
    first_reported_at = models.DateTimeField(default=timezone.now)
    reported_at = models.DateTimeField(default=timezone.now, help_text="When the figures were last reported.")

    class Meta:
        ordering = ["-hour", "service", "api"]
        verbose_name = "reported API calls per hour"
        verbose_name_plural = "reported API calls per hour"
        constraints = [
            models.UniqueConstraint(fields=["service", "hour", "api"], name="reported_call_hour_unique"),
            models.CheckConstraint(condition=models.Q(errors__lte=models.F("calls")), name="reported_errors_le_calls"),
        ]
        indexes = [models.Index(fields=["api", "hour"], name="reported_api_hour_idx")]

    def __str__(self) -> str:
        return f"{self.service} {self.hour:%Y-%m-%d %H:00} {self.api}: {self.calls} calls, {self.errors} errors"


class UpkeepRule(models.Model):
    """Meta's bar for keeping advanced Marketing API access, as data: Meta changes it."""

    class ErrorWindow(models.TextChoices):
        DAYS = "days", "Over a number of days"
        CALLS = "calls", "Over the last N calls"

    name = models.CharField(max_length=200)
    min_calls = models.PositiveIntegerField(help_text="Minimum Marketing API calls over the window.")
    calls_window_days = models.PositiveIntegerField(default=15)
    max_error_rate = models.DecimalField(
        max_digits=5, decimal_places=2, help_text="Error rate (percent) must stay strictly below this."
    )
    error_window = models.CharField(max_length=5, choices=ErrorWindow.choices, default=ErrorWindow.DAYS)
    error_window_days = models.PositiveIntegerField(null=True, blank=True)
    error_window_calls = models.PositiveIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=False, help_text="The rule Meta applies now; only one can be active.")
    source = models.CharField(max_length=300, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-is_active", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=models.Q(is_active=True),
                name="upkeep_one_active_rule",
                violation_error_message="Only one upkeep rule can be active.",
            ),
            models.CheckConstraint(
                condition=(
                    # isnull=False: a CHECK on NULL > 0 would pass.
                    models.Q(error_window="days", error_window_days__isnull=False, error_window_days__gt=0)
                    | models.Q(error_window="calls", error_window_calls__isnull=False, error_window_calls__gt=0)
                ),
                name="upkeep_error_window_sized",
                violation_error_message="Give the error-rate window its size (days or number of calls).",
            ),
            models.CheckConstraint(
                condition=models.Q(calls_window_days__gt=0),
                name="upkeep_calls_window_positive",
                violation_error_message="The calls window must be at least one day.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def describe(self) -> str:
        if self.error_window == self.ErrorWindow.CALLS:
            errors = f"over the last {self.error_window_calls} calls"
        else:
            errors = f"over {self.error_window_days} days"
        return (
            f"≥ {self.min_calls} calls in {self.calls_window_days} days, "
            f"error rate < {self.max_error_rate.normalize():f}% {errors}"
        )


class MarketingAccessLevel(models.Model):
    """An access level of the Marketing API and its system-user limits; one is the provider's current level."""

    class Level(models.TextChoices):
        STANDARD = "standard", "Standard (Limited tier)"
        ADVANCED = "advanced", "Advanced (Full tier)"

    level = models.CharField(max_length=10, choices=Level.choices, unique=True)
    system_users = models.PositiveIntegerField(help_text="System users allowed per business, besides the admin.")
    admin_system_users = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=False, help_text="The level the provider's app has now.")

    class Meta:
        ordering = ["system_users"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_current"],
                condition=models.Q(is_current=True),
                name="access_level_one_current",
                violation_error_message="Only one access level can be the current one.",
            ),
        ]

    def __str__(self) -> str:
        return self.get_level_display()

    @property
    def total_system_users(self) -> int:
        return self.system_users + self.admin_system_users


class StaffAlert(models.Model):
    """An email to staff administrators, claimed by its unique key before it is sent, so it goes out once."""

    class Status(models.TextChoices):
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=30)
    subject = models.CharField(max_length=300, blank=True)
    recipients = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True, help_text="When the condition that raised it ended.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["kind", "resolved_at"], name="staff_alert_open_idx")]

    def __str__(self) -> str:
        return f"{self.kind}: {self.subject or self.key}"
