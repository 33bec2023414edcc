"""Service credentials of the provider's services, and the audit of every use (docs/decisions.md D41, D42)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

CLIENT_MODEL = "onboarding.ClientBusiness"
CONFIGURATION_MODEL = "onboarding.LoginConfiguration"


class Scope(models.TextChoices):
    TOKENS_READ = "tokens:read", "tokens:read — read the working token of an asset"
    GRAPH_PROXY = "graph:proxy", "graph:proxy — call Meta's Graph API through the portal"
    USAGE_WRITE = "usage:write", "usage:write — report calls made outside the proxy"
    RECONNECT_WRITE = "reconnect:write", "reconnect:write — ask for reconnect links"
    HEALTH_READ = "health:read", "health:read — read connection health"


class ServiceCredential(models.Model):
    """One service of the provider: its scopes, optional limits, and the hash of its secret (never the secret)."""

    name = models.CharField(max_length=200, unique=True, help_text="Which service of the provider uses it.")
    scopes = models.JSONField(default=list, help_text="What it may do.")
    clients = models.ManyToManyField(
        CLIENT_MODEL, blank=True, related_name="+",
        help_text="Only these clients (empty: every client). Another client's assets answer 404.",
    )  # fmt: skip
    configurations = models.ManyToManyField(
        CONFIGURATION_MODEL, blank=True, related_name="+",
        help_text="Only tokens of these login configurations (empty: every configuration).",
    )  # fmt: skip
    # SHA-256 of the secret (256 random bits: no key or slow hash needed, D41); the lookup column.
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    secret_hint = models.CharField(
        max_length=16, editable=False, help_text="The secret's first characters, to recognise it; not enough to use it."
    )
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_by = models.CharField(max_length=150, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "service credential"

    def __str__(self) -> str:
        return self.name

    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class ApiUse(models.Model):
    """One request by a credential: what it asked about and how it was answered. Never a token or secret."""

    # One row per API request: no single-column indexes (the composite ones below start with these
    # columns) and no database-level foreign keys (their checks lock the credential's and the
    # client's rows on every insert); Django still applies PROTECT and SET_NULL on delete (D90).
    credential = models.ForeignKey(ServiceCredential, on_delete=models.PROTECT, related_name="uses",
                                   db_index=False, db_constraint=False)
    action = models.CharField(max_length=60, help_text="The endpoint, by name (e.g. asset_token).")
    method = models.CharField(max_length=8)
    client = models.ForeignKey(CLIENT_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                               db_index=False, db_constraint=False)
    asset_meta_id = models.CharField("asset Meta id", max_length=64, blank=True)
    status_code = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=40, help_text="ok, or the error code answered.")
    request_id = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "API use"
        verbose_name_plural = "API uses"
        indexes = [
            models.Index(fields=["client", "-at"], name="apiuse_client_at_idx"),
            models.Index(fields=["credential", "-at"], name="apiuse_credential_at_idx"),
            models.Index(fields=["at"], name="apiuse_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.credential_id} {self.action} {self.status_code}"
