"""Meta's side of the world, in the simulator's own tables.

Nothing here is the portal's data: these rows stand for what Meta knows (apps, login
configurations, businesses, people, assets, tokens, codes). Values are stored in
clear on purpose: the simulator plays Meta, and Meta can read its own tokens.
"""

from __future__ import annotations

from django.db import models


class SimState(models.Model):
    """The one row of global state: clock offset, faults, counters."""

    clock_offset_seconds = models.FloatField(default=0)
    error_rate = models.FloatField(default=0)
    timeout_rate = models.FloatField(default=0)
    rate_limit_rate = models.FloatField(default=0)
    rate_limit_code = models.IntegerField(null=True, blank=True)
    latency_ms = models.IntegerField(default=0)
    timeout_hang_ms = models.IntegerField(default=0)
    fault_seed = models.IntegerField(null=True, blank=True)
    fault_draws = models.BigIntegerField(default=0)
    request_count = models.BigIntegerField(default=0)
    call_count = models.BigIntegerField(default=0)
    window_started_at = models.DateTimeField(null=True, blank=True)
    window_calls = models.BigIntegerField(default=0)
    usage_floor_percent = models.IntegerField(default=0)
    # Faults of the edge in front of Graph and of whole requests (simulator.faults).
    edge_error_rate = models.FloatField(default=0)
    edge_retry_after = models.IntegerField(default=0)  # seconds; > 0: a 503 with Retry-After instead of a 502
    throttle_regain_minutes = models.IntegerField(default=5)  # estimated_time_to_regain_access of injected throttles
    burst_requests = models.IntegerField(default=0)  # requests still to throttle in the current burst
    hang_skip = models.IntegerField(default=0)  # matching requests let through before the hangs start
    hang_count = models.IntegerField(default=0)  # matching requests still to hang
    hang_seconds = models.FloatField(default=0)
    hang_batches_only = models.BooleanField(default=True)
    hanging_now = models.IntegerField(default=0)
    hang_generation = models.IntegerField(default=0)  # bumped to release every hanging request

    class Meta:
        verbose_name = "simulator state"

    def __str__(self) -> str:
        return "simulator state"


class SimApp(models.Model):
    app_id = models.CharField(max_length=64, unique=True)
    app_secret = models.CharField(max_length=128)
    name = models.CharField(max_length=200, default="Tech Provider App")
    redirect_uris = models.JSONField(default=list)
    deauthorize_url = models.CharField(max_length=500, blank=True)
    data_deletion_url = models.CharField(max_length=500, blank=True)
    webhook_url = models.CharField(max_length=500, blank=True)
    require_proof = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.app_id})"


class SimConfiguration(models.Model):
    class TokenType(models.TextChoices):
        SYSTEM_USER = "system_user", "System user"
        USER = "user", "User"

    class Expiry(models.TextChoices):
        NEVER = "never", "Never"
        SIXTY_DAYS = "60_days", "60 days"

    config_id = models.CharField(max_length=64, unique=True)
    app = models.ForeignKey(SimApp, null=True, blank=True, on_delete=models.CASCADE)
    name = models.CharField(max_length=200, blank=True)
    token_type = models.CharField(max_length=16, choices=TokenType.choices)
    permissions = models.JSONField(default=list)
    asset_types = models.JSONField(default=list)
    token_expiry = models.CharField(max_length=16, choices=Expiry.choices, default=Expiry.NEVER)

    def __str__(self) -> str:
        return self.config_id


class SimBusiness(models.Model):
    business_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    # Set by migrate_to_managed_accounts(): grants made from personal accounts end 30 days later.
    managed_accounts_since = models.DateTimeField(null=True, blank=True)
    # Set by throttle_business(): calls under business-use-case rules for this business are
    # refused (80001, 80004, ...) until then; an empty list of use cases means every one.
    throttled_until = models.DateTimeField(null=True, blank=True)
    throttled_use_cases = models.JSONField(default=list, blank=True)
    # The least X-Business-Use-Case-Usage reports for this business (set_usage(business_id=)).
    usage_floor_percent = models.IntegerField(default=0)

    class Meta:
        verbose_name_plural = "sim businesses"
        ordering = ["business_id"]

    def __str__(self) -> str:
        return self.name


class SimPerson(models.Model):
    user_id = models.CharField(max_length=64, unique=True, help_text="App-scoped user id.")
    name = models.CharField(max_length=200)
    email = models.CharField(max_length=200, blank=True)
    is_managed_account = models.BooleanField(default=False)
    businesses = models.ManyToManyField(SimBusiness, related_name="people", blank=True)

    class Meta:
        verbose_name_plural = "sim people"
        ordering = ["user_id"]

    def __str__(self) -> str:
        return self.name


class SimAsset(models.Model):
    class Kind(models.TextChoices):
        PAGE = "page", "Page"
        AD_ACCOUNT = "ad_account", "Ad account"
        WHATSAPP_BUSINESS_ACCOUNT = "whatsapp_business_account", "WhatsApp Business account"
        INSTAGRAM_ACCOUNT = "instagram_account", "Instagram account"
        CATALOG = "catalog", "Catalog"
        PIXEL = "pixel", "Pixel"

    asset_id = models.CharField(max_length=64, unique=True, help_text="Numeric id (ad accounts without act_).")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    name = models.CharField(max_length=200)
    owner = models.ForeignKey(SimBusiness, on_delete=models.CASCADE, related_name="owned_assets")
    # Assets another business lets this one manage (the business's client_* edges).
    client_of = models.ManyToManyField(SimBusiness, related_name="client_assets", blank=True)

    class Meta:
        ordering = ["asset_id"]

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


class SimSystemUser(models.Model):
    """The Business Integration System User an app gets in a client business."""

    system_user_id = models.CharField(max_length=64, unique=True)
    app = models.ForeignKey(SimApp, on_delete=models.CASCADE)
    business = models.ForeignKey(SimBusiness, on_delete=models.CASCADE)
    name = models.CharField(max_length=200)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["app", "business"], name="sim_one_bisu_per_app_business")]

    def __str__(self) -> str:
        return self.name


class SimToken(models.Model):
    class Type(models.TextChoices):
        USER = "USER", "User"
        SYSTEM_USER = "SYSTEM_USER", "System user"
        PAGE = "PAGE", "Page"

    value = models.CharField(max_length=255, unique=True)
    app = models.ForeignKey(SimApp, on_delete=models.CASCADE)
    type = models.CharField(max_length=16, choices=Type.choices)
    person = models.ForeignKey(SimPerson, null=True, blank=True, on_delete=models.CASCADE)
    system_user = models.ForeignKey(SimSystemUser, null=True, blank=True, on_delete=models.CASCADE)
    business = models.ForeignKey(SimBusiness, null=True, blank=True, on_delete=models.CASCADE)
    configuration = models.ForeignKey(SimConfiguration, null=True, blank=True, on_delete=models.SET_NULL)
    # A long-lived user token's short-lived original, a granular token's installation token, or
    # the user / system-user token a Page token was derived from (it dies with that one).
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL)
    # Page tokens only: the Page the token acts as (debug_token's profile_id).
    page = models.ForeignKey("SimAsset", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    scopes = models.JSONField(default=list)
    # Permissions the person removed (DELETE /{user}/permissions/{permission}): "declined" in /me/permissions.
    declined_scopes = models.JSONField(default=list, blank=True)
    asset_ids = models.JSONField(default=list)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    data_access_expires_at = models.DateTimeField(null=True, blank=True)
    long_lived = models.BooleanField(default=False)
    invalid_subcode = models.IntegerField(null=True, blank=True)
    invalid_message = models.CharField(max_length=300, blank=True)
    # fetch_only on system_user_access_tokens returns this one.
    is_primary = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["parent", "page"], condition=models.Q(type="PAGE"), name="sim_one_page_token_per_parent"
            )
        ]

    def __str__(self) -> str:
        return f"{self.type} token #{self.pk}"


class SimCode(models.Model):
    value = models.CharField(max_length=255, unique=True)
    app = models.ForeignKey(SimApp, on_delete=models.CASCADE)
    redirect_uri = models.CharField(max_length=500)
    configuration = models.ForeignKey(SimConfiguration, null=True, blank=True, on_delete=models.SET_NULL)
    person = models.ForeignKey(SimPerson, on_delete=models.CASCADE)
    business = models.ForeignKey(SimBusiness, null=True, blank=True, on_delete=models.CASCADE)
    asset_ids = models.JSONField(default=list)
    scopes = models.JSONField(default=list, help_text="Classic login only: the dialog's scope parameter.")
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"code #{self.pk}"


class SimDelivery(models.Model):
    """A callback or webhook the simulator sent to an app, and how it went."""

    kind = models.CharField(max_length=32)  # deauthorize, webhook
    url = models.CharField(max_length=500)
    body = models.TextField()
    status_code = models.IntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error = models.CharField(max_length=300, blank=True)
    sent_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "sim deliveries"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} to {self.url}"
