from __future__ import annotations

from datetime import UTC, timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from common.transitions import StatusTransitionsMixin

from . import crypto

# Models of the onboarding app are referenced by label, never imported:
# tokens must not depend on onboarding (docs/architecture.md, "Dependency direction").
CLIENT_MODEL = "onboarding.ClientBusiness"
CONFIGURATION_MODEL = "onboarding.LoginConfiguration"
CONTACT_MODEL = "onboarding.Contact"


class AccessToken(StatusTransitionsMixin, models.Model):
    class Kind(models.TextChoices):
        SYSTEM_USER = "system_user", "System user"
        USER = "user", "User"
        GRANULAR_SYSTEM_USER = "granular_system_user", "Granular system user"
        # Derived from a user token (``/me/accounts``); its parent is the thing that expires.
        PAGE = "page", "Page"

    # Kinds derived from another token (``parent``): never the one live token of a configuration.
    DERIVED_KINDS = (Kind.GRANULAR_SYSTEM_USER, Kind.PAGE)

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRING = "expiring", "Expiring"
        INVALID = "invalid", "Invalid"
        REVOKED = "revoked", "Revoked"
        SUPERSEDED = "superseded", "Superseded"

    LIVE_STATUSES = (Status.ACTIVE, Status.EXPIRING)
    STATUS_TRANSITIONS = {
        "active": {"expiring", "invalid", "revoked", "superseded"},
        "expiring": {"active", "invalid", "revoked", "superseded"},
        "invalid": {"revoked", "superseded"},
        "superseded": {"revoked"},
        "revoked": set(),
    }

    client = models.ForeignKey(CLIENT_MODEL, on_delete=models.PROTECT, related_name="tokens")
    configuration = models.ForeignKey(
        CONFIGURATION_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="tokens"
    )
    kind = models.CharField(max_length=24, choices=Kind.choices)
    value = crypto.EncryptedTokenField(null=True)
    fingerprint = models.CharField(max_length=64, unique=True, null=True, editable=False)
    meta_app_id = models.CharField(max_length=64, blank=True)
    meta_user_id = models.CharField(
        "Meta user id", max_length=64, blank=True, help_text="App-scoped user id, or the system user's id."
    )
    granted_by = models.ForeignKey(
        CONTACT_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="granted_tokens"
    )
    scopes = models.JSONField(default=list, blank=True)
    granular_scopes = models.JSONField(default=list, blank=True, help_text="[{scope, target_ids?}] from debug_token.")
    issued_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    data_access_expires_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.ACTIVE)
    status_reason = models.CharField(max_length=300, blank=True)
    error_code = models.IntegerField(null=True, blank=True)
    error_subcode = models.IntegerField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    consecutive_check_failures = models.PositiveIntegerField(default=0)
    # The health sweep's bookkeeping (decisions.md D60): the run this token was last put in,
    # whether that run still has to handle it, and the lease of the chunk working on it now.
    # A lease is not a check: ``last_checked_at`` moves only when Meta's answer was written.
    sweep_run = models.ForeignKey(
        "SweepRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False, editable=False
    )
    sweep_pending = models.BooleanField(default=False, editable=False)
    claim_id = models.CharField(max_length=100, blank=True, default="", editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    missing_permissions = models.JSONField(
        default=list, blank=True, help_text="Permissions the person removed since granting (Meta no longer lists them)."
    )
    permissions_removed_at = models.DateTimeField(null=True, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="granular_tokens",
        help_text="The token this one derives from: a granular token's system-user token, a Page token's user token.",
    )  # fmt: skip
    superseded_by = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    purpose = models.CharField(max_length=200, blank=True, help_text="What a granular token is for.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "configuration"],
                condition=Q(status__in=["active", "expiring"]) & ~Q(kind__in=["granular_system_user", "page"]),
                name="token_one_live_per_client_configuration",
                violation_error_message="This client already has a live token for this configuration.",
            ),
            models.CheckConstraint(
                condition=~Q(kind="granular_system_user") | Q(parent__isnull=False),
                name="token_granular_has_parent",
                violation_error_message="A granular system-user token must name the token it derives from.",
            ),
            models.CheckConstraint(
                condition=~Q(kind="page") | Q(parent__isnull=False),
                name="token_page_has_parent",
                violation_error_message="A Page token must name the user token it was derived from.",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "next_check_at"], name="token_due_check_idx"),
            models.Index(fields=["expires_at"], name="token_expires_idx"),
            models.Index(fields=["data_access_expires_at"], name="token_data_access_idx"),
            models.Index(fields=["meta_user_id"], name="token_meta_user_idx"),
            # The tokens a run has still to handle: small, read after every chunk and by the reaper.
            models.Index(fields=["sweep_run"], condition=Q(sweep_pending=True), name="token_sweep_pending_idx"),
        ]

    def __str__(self) -> str:
        # Staff read names, not ids (the admin's titles, breadcrumbs and log); the id stays a detail.
        return f"{self.get_kind_display()} token #{self.pk} for {self.client.name if self.client_id else 'no client'}"

    def save(self, *args, **kwargs):
        if self.value:
            self.fingerprint = crypto.fingerprint(self.value)
        super().save(*args, **kwargs)

    def masked(self) -> str:
        return crypto.mask(self.value or "")

    def is_live(self) -> bool:
        return self.status in self.LIVE_STATUSES

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and (now or timezone.now()) >= self.expires_at

    def ends_at(self):
        """When this token stops working: the earlier of expiry and data-access expiry.

        A Page token has no expiry of its own from a long-lived user token, but dies with the
        user token's access: its end is its parent's.
        """
        ends = [moment for moment in (self.expires_at, self.data_access_expires_at) if moment]
        if self.kind == self.Kind.PAGE and self.parent_id is not None:
            ends.append(self.parent.ends_at())
        ends = [moment for moment in ends if moment]
        return min(ends) if ends else None

    def permission_note(self) -> str:
        """What staff and people see when a permission was removed (empty when none was)."""
        if not self.missing_permissions:
            return ""
        return f"Permission removed: {', '.join(self.missing_permissions)}. Reconnect to grant it again."

    @staticmethod
    def ends_at_expression():
        """``ends_at()`` in SQL: the earlier of expiry and data-access expiry (NULL when neither)."""
        from django.db.models import DateTimeField
        from django.db.models.functions import Coalesce, Least

        return Least(Coalesce("expires_at", "data_access_expires_at"), Coalesce("data_access_expires_at", "expires_at"),
                     output_field=DateTimeField())

    def days_left(self, now=None) -> int | None:
        ends = self.ends_at()
        if ends is None:
            return None
        return max((ends - (now or timezone.now())) // timedelta(days=1), 0)

    def covered_asset_ids(self) -> set[str]:
        """Asset ids named by granular_scopes target_ids (no target_ids: covers everything)."""
        return {str(target) for entry in self.granular_scopes for target in entry.get("target_ids") or []}


class Asset(models.Model):
    class Kind(models.TextChoices):
        PAGE = "page", "Page"
        AD_ACCOUNT = "ad_account", "Ad account"
        BUSINESS = "business", "Business"
        WHATSAPP_BUSINESS_ACCOUNT = "whatsapp_business_account", "WhatsApp business account"
        INSTAGRAM_ACCOUNT = "instagram_account", "Instagram account"
        CATALOG = "catalog", "Catalog"
        PIXEL = "pixel", "Pixel"

    client = models.ForeignKey(CLIENT_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="assets")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    meta_id = models.CharField("Meta id", max_length=64)
    name = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "meta_id"],
                name="asset_unique_meta_id_per_kind",
                violation_error_message="An asset of this kind with this Meta id already exists.",
            ),
        ]
        # The API and the proxy find an asset by its Meta id alone (tokens.selection): the unique
        # index above starts with the kind, so it can't serve that lookup.
        indexes = [models.Index(fields=["meta_id"], name="asset_meta_id_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.name or self.meta_id}"


class AssetGrant(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        EXPIRING = "expiring", "Access ending"
        ENDED = "ended", "Access ended"
        REMOVED = "removed", "Removed by the client"
        REVOKED = "revoked", "Revoked"
        # The person removed the permission this asset needs: Meta answers 10/200 until they grant it again.
        PERMISSION_REMOVED = "permission_removed", "Permission removed"
        # Its token was replaced by a newer one (reconnecting): what the client grants now is the
        # newer token's grants; an asset left out of them was dropped (tokens.health, D24).
        SUPERSEDED = "superseded", "Superseded"

    token = models.ForeignKey(AccessToken, on_delete=models.CASCADE, related_name="grants")
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="grants")
    scopes = models.JSONField(default=list, blank=True, help_text="Permissions that name this asset.")
    user_access_expire_time = models.DateTimeField(
        null=True, blank=True, help_text="Set by Meta when the person's access to this asset ends."
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["token", "asset"]
        constraints = [
            models.UniqueConstraint(
                fields=["token", "asset"],
                name="grant_unique_token_asset",
                violation_error_message="This token already has a grant for this asset.",
            ),
        ]
        indexes = [
            models.Index(fields=["user_access_expire_time"], name="grant_access_expire_idx"),
            models.Index(fields=["status"], name="grant_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.asset} via token #{self.token_id}"


class ClientHealth(models.Model):
    """The truth about one client's connection, kept by ``tokens.health.refresh_clients`` (D25).

    One row per client that ever had a token; a client without a row has never connected.
    Written in the transaction of whatever changed its tokens or grants, and by a periodic
    recompute for what time and the provider's standing change. Read by the console (a column,
    a filter, the first screen's "break soonest"), the API and outgoing webhooks.
    """

    class State(models.TextChoices):
        CONNECTED = "connected", "Connected"
        EXPIRING = "expiring", "Access ending"
        NEEDS_REAUTH = "needs_reauthorization", "Needs reauthorization"
        DISCONNECTED = "disconnected", "Disconnected"
        NOT_CONNECTED = "not_connected", "Not connected yet"

    class Fix(models.TextChoices):
        NONE = "", "Nothing to do"
        RECONNECT = "reconnect", "The client reconnects"
        PROVIDER = "provider", "The provider acts (verification, upkeep)"

    client = models.OneToOneField(CLIENT_MODEL, primary_key=True, on_delete=models.CASCADE, related_name="health")
    state = models.CharField(max_length=24, choices=State.choices, default=State.NOT_CONNECTED)
    breaks_at = models.DateTimeField(
        null=True, blank=True, help_text="The moment it breaks (or broke); empty: nothing ends."
    )
    breaks_reason = models.CharField(max_length=300, blank=True)
    cause = models.CharField(max_length=32, blank=True, help_text="What breaks it, as a code (tokens.health).")
    fix = models.CharField(max_length=10, choices=Fix.choices, blank=True, default=Fix.NONE)
    token = models.ForeignKey(AccessToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    asset = models.ForeignKey("Asset", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    computed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "connection health"
        verbose_name_plural = "connection health"
        indexes = [
            models.Index(fields=["breaks_at"], name="health_breaks_idx"),
            models.Index(fields=["state", "breaks_at"], name="health_state_breaks_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_state_display()} ({self.client_id})"

    @property
    def breaks_on(self):
        """The day it breaks (UTC)."""
        return self.breaks_at.astimezone(UTC).date() if self.breaks_at else None


class Reminder(models.Model):
    class Reason(models.TextChoices):
        TOKEN_EXPIRING = "token_expiring", "Token expiring"
        ASSET_ACCESS_ENDING = "asset_access_ending", "Asset access ending"
        TOKEN_INVALID = "token_invalid", "Token invalid"
        DATA_ACCESS_EXPIRING = "data_access_expiring", "Data access expiring"
        PERMISSION_REMOVED = "permission_removed", "Permission removed"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (gave up)"
        CANCELLED = "cancelled", "Cancelled (no longer needed)"
        # Its stage passed (or an "ended" notice aged out) before it could be delivered: the mail
        # server was unreachable or kept deferring it. Staff are alerted (decisions.md D66).
        UNDELIVERED = "undelivered", "Not delivered in time"
        # The subject reached a stage but there is no one to write to (no grantor who receives
        # reminders, no notification address): one row per stage, recipient "" (D67).
        NOBODY = "nobody", "Nobody to tell"

    client = models.ForeignKey(CLIENT_MODEL, on_delete=models.CASCADE, related_name="reminders")
    token = models.ForeignKey(AccessToken, null=True, blank=True, on_delete=models.CASCADE, related_name="reminders")
    grant = models.ForeignKey(AssetGrant, null=True, blank=True, on_delete=models.CASCADE, related_name="reminders")
    subject_key = models.CharField(max_length=64, help_text="token:<id> or grant:<id>", editable=False)
    reason = models.CharField(max_length=24, choices=Reason.choices)
    stage = models.CharField(max_length=10, help_text="Days before the end (e.g. 14d), or “ended”.")
    recipient_email = models.EmailField()
    recipient_contact = models.ForeignKey(
        CONTACT_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="reminders"
    )
    ends_at = models.DateTimeField(null=True, blank=True, help_text="When access ends, as known when planned.")
    due_at = models.DateTimeField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=200, blank=True)
    send_started_at = models.DateTimeField(
        null=True, blank=True, help_text="Set just before this message is handed to the mail server."
    )
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    given_up_at = models.DateTimeField(
        null=True, blank=True, help_text="When it became failed, not delivered in time, or nobody to tell."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["subject_key", "reason", "stage", "recipient_email"],
                name="reminder_unique_key",
                violation_error_message="This reminder is already planned.",
            ),
            models.CheckConstraint(
                condition=Q(token__isnull=False) | Q(grant__isnull=False),
                name="reminder_has_subject",
                violation_error_message="A reminder is about a token or an asset grant.",
            ),
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="reminder_due_idx")]

    def __str__(self) -> str:
        return f"{self.get_reason_display()} {self.stage} to {self.recipient_email}"

    def save(self, *args, **kwargs):
        if not self.subject_key:
            self.subject_key = f"grant:{self.grant_id}" if self.grant_id else f"token:{self.token_id}"
        super().save(*args, **kwargs)


class TokenEvent(models.Model):
    """Append-only audit of what happened to a client, a token or an asset, and who did it."""

    class Kind(models.TextChoices):
        INSTALLED = "installed", "Installed"
        CHECKED = "checked", "Checked"
        EXPIRING = "expiring", "Expiring"
        INVALIDATED = "invalidated", "Invalidated"
        PERMISSION_REMOVED = "permission_removed", "Permission removed"
        REVOKED = "revoked", "Revoked"
        SUPERSEDED = "superseded", "Superseded"
        RECONNECTED = "reconnected", "Reconnected"
        ASSETS_CHANGED = "assets_changed", "Assets changed"
        GRANULAR_CREATED = "granular_created", "Granular token created"
        REMINDER_SENT = "reminder_sent", "Reminder sent"
        REMINDER_FAILED = "reminder_failed", "Reminder failed"
        DATA_DELETED = "data_deleted", "Data deleted"
        STAFF_ACTION = "staff_action", "Staff action"
        KEY_ROTATED = "key_rotated", "Encryption key rotated"

    client = models.ForeignKey(CLIENT_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    token = models.ForeignKey(AccessToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    asset = models.ForeignKey(Asset, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor = models.CharField(max_length=100, default="system", help_text="system, staff:<username>, meta, client")
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.CharField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Token events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Token events are append-only.")


class SweepRun(models.Model):
    """One run of the health sweep (``job``), with its chunks and totals, for staff to follow."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"
        FAILED = "failed", "Failed"

    job = models.CharField(max_length=50)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(
        null=True, blank=True, help_text="Tokens not handled by then are queued again once, then the run fails."
    )
    requeues = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0, help_text="Chunk deliveries that handled tokens.")
    items_total = models.PositiveIntegerField(default=0)
    # Counted in the transaction that writes each token's outcome, so each token counts once.
    items_done = models.PositiveIntegerField(default=0, help_text="Tokens checked: Meta answered about them.")
    items_invalid = models.PositiveIntegerField(default=0)
    items_expiring = models.PositiveIntegerField(default=0)
    items_deferred = models.PositiveIntegerField(
        default=0, help_text="Not asked: Meta's rate limit, usage near the budget, Meta unreachable, out of time."
    )
    errors = models.PositiveIntegerField(default=0, help_text="Asked, without a usable answer (5xx, timeouts...).")
    items_unchecked = models.PositiveIntegerField(
        default=0, help_text="Never handled by the deadline (a failed run): due again for the next sweep."
    )
    totals = models.JSONField(default=dict, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["job", "status"], name="sweep_job_status_idx")]

    def __str__(self) -> str:
        return f"{self.job} {self.started_at:%Y-%m-%d %H:%M} ({self.status})"


class MailOutage(models.Model):
    """The reminder senders' one view of the mail server (a single row, pk=1; decisions.md D66).

    A connection failure stops the batch and closes the gate until ``retry_at``; the gate backs
    off as a whole (not per reminder), and one sender at a time probes when it opens again.
    """

    failures = models.PositiveIntegerField(default=0, help_text="Connection failures in a row.")
    since = models.DateTimeField(null=True, blank=True, help_text="First failure of this outage.")
    retry_at = models.DateTimeField(null=True, blank=True, help_text="No sender tries before this.")
    last_error = models.TextField(blank=True)

    class Meta:
        verbose_name = "mail server outage"

    def __str__(self) -> str:
        return f"mail server: {self.failures} failure(s) since {self.since}" if self.failures else "mail server up"
