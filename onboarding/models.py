from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.db.models import Q
from django.utils import timezone

from common.transitions import StatusTransitionsMixin


def validate_email_list(value: str) -> None:
    for address in split_emails(value):
        try:
            validate_email(address)
        except ValidationError:
            raise ValidationError(f"“{address}” is not a valid email address.", code="invalid_email")


def split_emails(value: str) -> list[str]:
    return [part.strip() for part in value.replace(";", ",").replace("\n", ",").split(",") if part.strip()]


class ClientBusiness(StatusTransitionsMixin, models.Model):
    class Status(models.TextChoices):
        INVITED = "invited", "Invited"
        ONBOARDING = "onboarding", "Onboarding"
        ACTIVE = "active", "Active"
        NEEDS_REAUTH = "needs_reauth", "Needs reauthorization"
        DISCONNECTED = "disconnected", "Disconnected"
        OFFBOARDED = "offboarded", "Offboarded"

    STATUS_TRANSITIONS = {
        "invited": {"onboarding", "active", "offboarded"},
        "onboarding": {"invited", "active", "disconnected", "offboarded"},
        "active": {"needs_reauth", "disconnected", "offboarded"},
        "needs_reauth": {"onboarding", "active", "disconnected", "offboarded"},
        "disconnected": {"invited", "onboarding", "active", "offboarded"},
        "offboarded": {"invited"},
    }

    name = models.CharField(max_length=200)
    meta_business_id = models.CharField(
        "Meta business id", max_length=64, null=True, blank=True, help_text="The client_business_id, once known."
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.INVITED)
    notification_emails = models.TextField(
        blank=True,
        validators=[validate_email_list],
        help_text="Addresses that receive every reminder for this client, separated by commas or new lines.",
    )
    notes = models.TextField(blank=True)
    status_changed_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "client business"
        verbose_name_plural = "client businesses"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["meta_business_id"],
                condition=Q(meta_business_id__isnull=False),
                name="client_unique_meta_business_id",
                violation_error_message="Another client already has this Meta business id.",
            ),
        ]
        indexes = [models.Index(fields=["status"], name="client_status_idx")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if self.meta_business_id == "":
            self.meta_business_id = None
        if getattr(self, "_loaded_status", None) not in (None, self.status):
            self.status_changed_at = timezone.now()
        super().save(*args, **kwargs)

    def notification_email_list(self) -> list[str]:
        return split_emails(self.notification_emails)


class Contact(models.Model):
    client = models.ForeignKey(ClientBusiness, on_delete=models.CASCADE, related_name="contacts")
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField()
    meta_user_id = models.CharField(
        "Meta user id", max_length=64, blank=True, help_text="App-scoped id, known once this person grants access."
    )
    receives_reminders = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["client", "email"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "email"],
                name="contact_unique_email_per_client",
                violation_error_message="This client already has a contact with this email.",
            ),
        ]
        indexes = [models.Index(fields=["meta_user_id"], name="contact_meta_user_idx")]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


class LoginConfiguration(models.Model):
    class TokenType(models.TextChoices):
        SYSTEM_USER = "system_user", "System-user access token"
        USER = "user", "User access token"

    class Variant(models.TextChoices):
        STANDARD = "standard", "Standard"
        WHATSAPP_EMBEDDED_SIGNUP = "whatsapp_embedded_signup", "WhatsApp Embedded Signup"
        INSTAGRAM = "instagram", "Instagram onboarding"

    class TokenExpiry(models.TextChoices):
        NEVER = "never", "Never"
        SIXTY_DAYS = "60_days", "60 days"

    name = models.CharField(max_length=200)
    config_id = models.CharField("Meta configuration id", max_length=64, unique=True)
    token_type = models.CharField(max_length=20, choices=TokenType.choices)
    variant = models.CharField(max_length=32, choices=Variant.choices, default=Variant.STANDARD)
    permissions = models.JSONField(default=list, help_text="Permission names, as configured in Meta's App Dashboard.")
    asset_types = models.JSONField(default=list, help_text="Asset types the person is asked to select.")
    token_expiry = models.CharField(max_length=10, choices=TokenExpiry.choices, default=TokenExpiry.NEVER)
    description = models.TextField(blank=True, help_text="Shown to the client on the invitation page.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.config_id})"

    def clean(self) -> None:
        from .validation import configuration_problems

        if isinstance(self.permissions, list):
            self.permissions = sorted({str(p).strip() for p in self.permissions if str(p).strip()})
        if isinstance(self.asset_types, list):
            self.asset_types = sorted({str(a).strip() for a in self.asset_types if str(a).strip()})
        problems = configuration_problems(
            token_type=self.token_type,
            variant=self.variant,
            permissions=self.permissions,
            asset_types=self.asset_types,
            token_expiry=self.token_expiry,
        )
        if problems:
            errors: dict[str, list[ValidationError]] = {}
            for problem in problems:
                errors.setdefault(problem.field, []).append(ValidationError(problem.message, code=problem.code))
            raise ValidationError(errors)

    def warnings(self) -> list[str]:
        from .validation import configuration_warnings

        return configuration_warnings(token_type=self.token_type, variant=self.variant, token_expiry=self.token_expiry)

    def dialog_extras(self) -> dict | None:
        """The login dialog's ``extras`` for this variant (docs/meta.md)."""
        if self.variant == self.Variant.WHATSAPP_EMBEDDED_SIGNUP:
            return {"setup": {}, "featureType": "", "sessionInfoVersion": "3"}
        if self.variant == self.Variant.INSTAGRAM:
            return {"setup": {"channel": "IG_API_ONBOARDING"}}
        return None

    @property
    def needs_code_response(self) -> bool:
        """System-user (BISU) configurations need the authorization-code grant."""
        return self.token_type == self.TokenType.SYSTEM_USER


class Invitation(models.Model):
    class Mode(models.TextChoices):
        ONBOARD = "onboard", "Onboard"
        RECONNECT = "reconnect", "Reconnect"

    client = models.ForeignKey(ClientBusiness, on_delete=models.CASCADE, related_name="invitations")
    configuration = models.ForeignKey(LoginConfiguration, on_delete=models.PROTECT, related_name="invitations")
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="invitations")
    email = models.EmailField(blank=True)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.ONBOARD)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    message = models.TextField(blank=True, help_text="Staff's words for the person, shown on the link's page.")
    switching_from = models.ForeignKey(
        LoginConfiguration, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The configuration the client connected through before: the page explains the move.",
    )  # fmt: skip
    sent_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"], name="invitation_expires_idx")]

    def __str__(self) -> str:
        return f"{self.get_mode_display()} {self.client} ({self.configuration.name})"

    def is_expired(self, now=None) -> bool:
        return (now or timezone.now()) >= self.expires_at

    def state_label(self, now=None) -> str:
        """Where the invitation stands, for staff."""
        if self.revoked_at:
            return "Revoked"
        if self.completed_at:
            return "Completed"
        if self.is_expired(now):
            return "Expired"
        if self.opened_at:
            return "Opened"
        return "Sent" if self.sent_at else "Created"


class LoginAttempt(models.Model):
    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"
        SUCCEEDED = "succeeded", "Succeeded"
        CANCELLED = "cancelled", "Cancelled"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired"

    state_hash = models.CharField(max_length=64, unique=True, editable=False)
    session_key_hash = models.CharField(max_length=64, editable=False, help_text="Binds the attempt to one browser.")
    client = models.ForeignKey(ClientBusiness, on_delete=models.CASCADE, related_name="login_attempts")
    configuration = models.ForeignKey(LoginConfiguration, on_delete=models.PROTECT, related_name="login_attempts")
    invitation = models.ForeignKey(
        Invitation, null=True, blank=True, on_delete=models.SET_NULL, related_name="login_attempts"
    )
    mode = models.CharField(max_length=10, choices=Invitation.Mode.choices, default=Invitation.Mode.ONBOARD)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.PENDING)
    error_code = models.CharField(max_length=64, blank=True)
    error_reason = models.CharField(max_length=200, blank=True)
    error_description = models.TextField(blank=True)
    failure_kind = models.CharField(max_length=64, blank=True, help_text="Our classification of what went wrong.")
    user_agent = models.TextField(blank=True)
    is_mobile = models.BooleanField(default=False)
    token = models.ForeignKey(
        "tokens.AccessToken", null=True, blank=True, on_delete=models.SET_NULL, related_name="login_attempts"
    )
    stray_revoked_at = models.DateTimeField(
        null=True, blank=True, help_text="When the access Meta had issued for a refused attempt was removed there."
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"], name="attempt_expires_idx")]

    def __str__(self) -> str:
        return f"Login attempt {self.pk} for {self.client} ({self.outcome})"

    def is_expired(self, now=None) -> bool:
        return (now or timezone.now()) >= self.expires_at


class WebhookDelivery(models.Model):
    """One webhook body Meta delivered; the unique hash makes Meta's retries (up to 7 days) no-ops."""

    body_hash = models.CharField(max_length=64, unique=True, editable=False)
    object_type = models.CharField(max_length=64, blank=True)
    fields = models.JSONField(default=list, blank=True, help_text="The changed fields named by the delivery.")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    duplicates = models.PositiveIntegerField(default=0, help_text="How many retries of this body were ignored.")
    summary = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-received_at"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.object_type or 'webhook'} at {self.received_at:%Y-%m-%d %H:%M}"


class DataDeletionRequest(models.Model):
    """A data deletion request from Meta, and what we did; its status page is public by confirmation code."""

    class Status(models.TextChoices):
        COMPLETED = "completed", "Completed"
        NOTHING_FOUND = "nothing_found", "Completed (no data held)"

    confirmation_code = models.CharField(max_length=32, unique=True, editable=False)
    # A keyed hash, so the request can be matched to a later one without keeping the person's id.
    user_hash = models.CharField(max_length=64, editable=False, db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    tokens_purged = models.PositiveIntegerField(default=0)
    contacts_removed = models.PositiveIntegerField(default=0)
    requested_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at"]

    def __str__(self) -> str:
        return f"Data deletion {self.confirmation_code} ({self.status})"
