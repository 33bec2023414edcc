from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import BinaryField
from django.db.models.functions import Cast
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from common.admin import (
    CreatedWithinFilter,
    EndsWithinFilter,
    FixedChoicesFilter,
    PortalModelAdmin,
    ReadOnlyAdminMixin,
    relative_when,
    status_badge,
)
from staffjobs.admin import show_job
from staffjobs.jobs import start_job

from . import crypto, reminders
from .models import AccessToken, Asset, AssetGrant, Reminder, SweepRun, TokenEvent

KIND_SHORT = {"system_user": "System user", "user": "User", "granular_system_user": "Granular", "page": "Page"}
# A job's ids travel in its row; past this many, the sweep is the tool (it checks every token daily).
ACTION_LIMIT = 5_000


class TokenEndsWithinFilter(EndsWithinFilter):
    title = "stops working within"
    parameter_name = "ends_within"
    field_names = ("expires_at", "data_access_expires_at")

    def queryset(self, request, queryset):
        queryset = super().queryset(request, queryset)
        if (self.value() or "").startswith("day:") and (bounds := self.bounds()):
            # One day of the first screen's chart: the tokens that stop working that day (the earlier
            # end); the indexed ends above narrow the rows first.
            start, end = bounds
            queryset = queryset.alias(_ends=AccessToken.ends_at_expression()).filter(_ends__gt=start, _ends__lte=end)
        return queryset


class ExpiresWithinFilter(EndsWithinFilter):
    title = "expires within"
    parameter_name = "expires_within"
    field_names = ("expires_at",)


class DataAccessEndsWithinFilter(EndsWithinFilter):
    title = "data access ends within"
    parameter_name = "data_access_ends_within"
    field_names = ("data_access_expires_at",)


class AccessExpiresWithinFilter(EndsWithinFilter):
    title = "access ends within"
    parameter_name = "access_ends_within"
    field_names = ("user_access_expire_time",)


class ActorFilter(FixedChoicesFilter):
    title = "actor"
    parameter_name = "actor"
    field_name = "actor"
    prefix_match = ("staff:",)

    def choices_for(self, request):
        return [("system", "The portal"), ("meta", "Meta"), ("client", "The client"), ("staff:", "Staff")]


class StageFilter(FixedChoicesFilter):
    title = "stage"
    parameter_name = "stage__exact"
    field_name = "stage"

    def choices_for(self, request):
        from django.conf import settings

        return [(f"{days}d", f"{days} days before") for days in settings.REMINDER_STAGES_DAYS] + [("ended", "Ended")]


class SentWithinFilter(CreatedWithinFilter):
    title = "sent in the last"
    parameter_name = "sent_within"
    field_name = "sent_at"


def client_link(client) -> str:
    if client is None:
        return "—"
    return format_html('<a href="{}">{}</a>', reverse("admin:onboarding_clientbusiness_change", args=[client.pk]),
                       client.name)


def selected_ids(model_admin, request, queryset) -> list[int] | None:
    """The selected rows' ids, or None (with a message) when there are too many for one job."""
    ids = list(queryset.order_by().values_list("pk", flat=True)[: ACTION_LIMIT + 1])
    if len(ids) > ACTION_LIMIT:
        model_admin.message_user(
            request, f"Select at most {ACTION_LIMIT:,} at once (filter the list first).", messages.ERROR
        )
        return None
    return ids


class AssetGrantInline(admin.TabularInline):
    model = AssetGrant
    extra = 0
    fields = ("asset", "status", "user_access_expire_time", "last_checked_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True


class GranularTokenForm(forms.Form):
    assets = forms.ModelMultipleChoiceField(
        queryset=Asset.objects.none(), widget=forms.CheckboxSelectMultiple, help_text="A subset of the original's."
    )
    scopes = forms.MultipleChoiceField(choices=(), widget=forms.CheckboxSelectMultiple, label="Permissions")
    expires_in_60_days = forms.BooleanField(required=False, label="Expires in 60 days")
    purpose = forms.CharField(max_length=200, required=False, help_text="What this token is for.")

    def __init__(self, *args, parent: AccessToken, **kwargs):
        super().__init__(*args, **kwargs)
        live = (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING)
        self.fields["assets"].queryset = Asset.objects.filter(grants__token=parent, grants__status__in=live)
        self.fields["scopes"].choices = [(scope, scope) for scope in parent.scopes]


@admin.register(AccessToken)
class AccessTokenAdmin(PortalModelAdmin):
    list_display = ("id", "client_name", "kind_short", "status_badge", "ends", "configuration_name", "checked",
                    "masked_value")
    list_display_links = ("id",)
    list_filter = ("status", "kind", TokenEndsWithinFilter, ExpiresWithinFilter, DataAccessEndsWithinFilter,
                   "configuration")
    list_select_related = ("client", "configuration")
    search_fields = ("client__name", "=client__meta_business_id", "=meta_user_id", "=granted_by__email")
    search_help_text = "Client name, or an exact Meta business id, Meta user id or grantor's email."
    ordering = ("-id",)
    # The value itself is never a field here: only its masked form is shown.
    exclude = ("value",)
    readonly_fields = (
        "masked_value", "fingerprint", "client", "configuration", "kind", "meta_app_id", "meta_user_id",
        "granted_by", "scopes", "granular_scopes", "issued_at", "expires_at", "data_access_expires_at",
        "status", "status_reason", "missing_permissions", "permissions_removed_at", "error_code", "error_subcode",
        "last_checked_at", "next_check_at", "consecutive_check_failures", "parent", "superseded_by", "purpose",
        "revoked_at", "created_at", "updated_at",
    )  # fmt: skip
    inlines = [AssetGrantInline]
    actions = ["check_now", "derive_page_tokens", "fetch_current_system_user_token", "create_granular_token", "revoke"]

    def get_queryset(self, request):
        # The value is read as ciphertext and only masked here: a row no key can read must
        # not break the whole page (the model would raise while loading it).
        ciphertext = Cast("value", output_field=BinaryField())
        return super().get_queryset(request).defer("value").annotate(ciphertext=ciphertext)

    @admin.display(description="Token")
    def masked_value(self, obj: AccessToken) -> str:
        if getattr(obj, "ciphertext", None) is None:
            return "—"
        try:
            return crypto.mask(crypto.decrypt(bytes(obj.ciphertext)))
        except crypto.TokenDecryptionError:
            return "unreadable with the configured keys"

    @admin.display(description="Client", ordering="client__name")
    def client_name(self, obj: AccessToken) -> str:
        return client_link(obj.client)

    @admin.display(description="Configuration", ordering="configuration__name")
    def configuration_name(self, obj: AccessToken) -> str:
        name = obj.configuration.name if obj.configuration else "—"
        return name if len(name) <= 28 else format_html('<span title="{}">{}…</span>', name, name[:27])

    @admin.display(description="Kind", ordering="kind")
    def kind_short(self, obj: AccessToken) -> str:
        return KIND_SHORT.get(obj.kind, obj.kind)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: AccessToken) -> str:
        badge = status_badge(obj.status, obj.get_status_display())
        # A removed permission is not "invalid": the token works, minus what needs that permission.
        if obj.missing_permissions and obj.is_live():
            return format_html('{} <span class="badge badge-warn" title="{}">permission removed</span>', badge,
                               ", ".join(obj.missing_permissions))
        return badge

    @admin.display(description="Ends", ordering="expires_at")
    def ends(self, obj: AccessToken) -> str:
        if not obj.is_live():
            return "—"
        ends = obj.ends_at()
        what = "data access ends" if ends and ends == obj.data_access_expires_at != obj.expires_at else "ends"
        return relative_when(ends, future=what, past=what.replace("ends", "ended"))

    @admin.display(description="Checked", ordering="last_checked_at")
    def checked(self, obj: AccessToken) -> str:
        return relative_when(obj.last_checked_at, past="", never="not yet", alarm=False)

    def has_add_permission(self, request):
        return False

    @admin.action(description="Check now with Meta (validity, expiry, assets)", permissions=["change"])
    def check_now(self, request, queryset):
        if (ids := selected_ids(self, request, queryset)) is None:
            return None
        job = start_job("tokens.check_now", title=f"Check {len(ids)} token(s) with Meta", target_ids=ids,
                        user=request.user)
        return show_job(self, request, job)

    @admin.action(description="Derive the Page tokens of these user tokens from Meta", permissions=["change"])
    def derive_page_tokens(self, request, queryset):
        live_user_tokens = queryset.filter(kind=AccessToken.Kind.USER, status__in=AccessToken.LIVE_STATUSES)
        if (ids := selected_ids(self, request, live_user_tokens)) is None:
            return None
        job = start_job("tokens.derive_page_tokens", title=f"Derive the Page tokens of {len(ids)} user token(s)",
                        target_ids=ids, user=request.user)
        return show_job(self, request, job)

    @admin.action(description="Fetch the current system-user token from Meta", permissions=["change"])
    def fetch_current_system_user_token(self, request, queryset):
        if (ids := selected_ids(self, request, queryset)) is None:
            return None
        job = start_job("tokens.fetch_system_user_token", title=f"Fetch the current token of {len(ids)} system "
                        "user(s) from Meta", target_ids=ids, user=request.user)
        return show_job(self, request, job)

    @admin.action(description="Revoke at Meta…", permissions=["change"])
    def revoke(self, request, queryset):
        if (ids := selected_ids(self, request, queryset)) is None:
            return None
        if "apply" in request.POST:
            job = start_job("tokens.revoke", title=f"Revoke {len(ids)} token(s) at Meta", target_ids=ids,
                            user=request.user)
            return show_job(self, request, job)
        return TemplateResponse(
            request,
            "admin/tokens/accesstoken/revoke_confirm.html",
            {
                **self.admin_site.each_context(request),
                "title": "Revoke tokens at Meta",
                "tokens": queryset.select_related("client").order_by("pk")[:100],
                "count": len(ids),
                "ids": ids,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )

    @admin.action(description="Create a granular system-user token…", permissions=["change"])
    def create_granular_token(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one system-user token.", messages.ERROR)
            return None
        parent = queryset.select_related("client").get()
        form = GranularTokenForm(request.POST if "apply" in request.POST else None, parent=parent)
        if "apply" in request.POST and form.is_valid():
            job = start_job(
                "tokens.create_granular_token",
                title=f"Create a granular token from #{parent.pk} ({parent.client})",
                target_ids=[parent.pk],
                params={
                    "asset_ids": [asset.pk for asset in form.cleaned_data["assets"]],
                    "scopes": list(form.cleaned_data["scopes"]),
                    "expires_in_60_days": form.cleaned_data["expires_in_60_days"],
                    "purpose": form.cleaned_data["purpose"],
                },
                user=request.user,
            )
            return show_job(self, request, job)
        return TemplateResponse(
            request,
            "admin/tokens/accesstoken/granular_form.html",
            {
                **self.admin_site.each_context(request),
                "title": "Create a granular system-user token",
                "parent": parent,
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


@admin.register(Asset)
class AssetAdmin(PortalModelAdmin):
    list_display = ("name", "kind", "meta_id", "client_name")
    list_filter = ("kind",)
    list_select_related = ("client",)
    search_fields = ("name", "=meta_id", "client__name")
    search_help_text = "Asset or client name, or an exact Meta id."
    ordering = ("-id",)
    readonly_fields = ("client", "kind", "meta_id", "created_at", "updated_at")  # Meta's data

    @admin.display(description="Client", ordering="client__name")
    def client_name(self, obj: Asset) -> str:
        return client_link(obj.client)


@admin.register(AssetGrant)
class AssetGrantAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    """What Meta says a token reaches: read here, changed only by the sweep and reconnecting."""

    list_display = ("asset_name", "asset_kind", "client_name", "token_link", "status_badge", "access_ends",
                    "checked")
    list_filter = ("status", AccessExpiresWithinFilter, "asset__kind", "token__configuration")
    list_select_related = ("asset", "token__client")
    search_fields = ("asset__name", "=asset__meta_id", "token__client__name")
    search_help_text = "Asset or client name, or an exact Meta id."
    ordering = ("token_id", "asset_id")  # the unique (token, asset) index serves the first page

    def get_queryset(self, request):
        return super().get_queryset(request).defer("token__value")

    @admin.display(description="Asset", ordering="asset__name")
    def asset_name(self, obj: AssetGrant) -> str:
        return obj.asset.name or obj.asset.meta_id

    @admin.display(description="Kind")
    def asset_kind(self, obj: AssetGrant) -> str:
        return obj.asset.get_kind_display()

    @admin.display(description="Client")
    def client_name(self, obj: AssetGrant) -> str:
        return client_link(obj.token.client)

    @admin.display(description="Token", ordering="token")
    def token_link(self, obj: AssetGrant) -> str:
        return format_html('<a href="{}">#{}</a>', reverse("admin:tokens_accesstoken_change", args=[obj.token_id]),
                           obj.token_id)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: AssetGrant) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="Access ends", ordering="user_access_expire_time")
    def access_ends(self, obj: AssetGrant) -> str:
        return relative_when(obj.user_access_expire_time)

    @admin.display(description="Checked", ordering="last_checked_at")
    def checked(self, obj: AssetGrant) -> str:
        return relative_when(obj.last_checked_at, past="", never="not yet", alarm=False)


@admin.register(Reminder)
class ReminderAdmin(PortalModelAdmin):
    list_display = ("recipient_email", "client_name", "reason", "stage", "status_badge", "due", "attempts",
                    "last_error_short")
    list_filter = ("status", SentWithinFilter, "reason", StageFilter)
    list_select_related = ("client",)
    search_fields = ("recipient_email", "client__name")
    search_help_text = "Recipient email or client name."
    ordering = ("-id",)
    readonly_fields = [field.name for field in Reminder._meta.fields]
    actions = ["retry_now"]

    @admin.display(description="Client", ordering="client__name")
    def client_name(self, obj: Reminder) -> str:
        return client_link(obj.client)

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Reminder) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="Due", ordering="due_at")
    def due(self, obj: Reminder) -> str:
        if obj.status == Reminder.Status.SENT and obj.sent_at:
            return relative_when(obj.sent_at, past="sent", alarm=False)
        return relative_when(obj.due_at, past="due", future="due", alarm=False)

    @admin.display(description="Last error")
    def last_error_short(self, obj: Reminder) -> str:
        return obj.last_error[:60]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # the unique key would plan a deleted reminder again: cancel it by fixing its cause

    @admin.action(description="Send again now (failed or pending reminders)", permissions=["change"])
    def retry_now(self, request, queryset):
        # One UPDATE, whatever the selection: the sending job (every minute) does the mail.
        count = reminders.retry_reminders(list(queryset.values_list("pk", flat=True)[:ACTION_LIMIT]))
        self.message_user(request, f"{count} reminder(s) will be sent by the next run (within a minute).")


@admin.register(TokenEvent)
class TokenEventAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    list_display = ("created", "kind", "client_name", "token_link", "actor", "message")
    list_filter = ("kind", ActorFilter)
    list_select_related = ("client",)
    search_fields = ("client__name", "message")
    search_help_text = "Client name or words of the message."

    @admin.display(description="When", ordering="created_at")
    def created(self, obj: TokenEvent) -> str:
        return relative_when(obj.created_at, past="", alarm=False)

    @admin.display(description="Client", ordering="client__name")
    def client_name(self, obj: TokenEvent) -> str:
        return client_link(obj.client)

    @admin.display(description="Token")
    def token_link(self, obj: TokenEvent) -> str:
        if obj.token_id is None:
            return "—"
        return format_html('<a href="{}">#{}</a>', reverse("admin:tokens_accesstoken_change", args=[obj.token_id]),
                           obj.token_id)


@admin.register(SweepRun)
class SweepRunAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    list_display = (
        "job", "status_badge", "started", "finished_at", "progress", "items_deferred", "errors", "unchecked",
    )  # fmt: skip
    list_filter = ("job", "status")
    readonly_fields = (
        "job", "status", "progress", "started_at", "deadline", "finished_at", "items_total", "items_done",
        "items_invalid", "items_expiring", "items_deferred", "errors", "items_unchecked", "chunks_done", "chunks_total",
        "requeues", "totals", "last_error",
    )  # fmt: skip
    change_list_template = "admin/tokens/sweeprun/change_list.html"
    change_form_template = "admin/tokens/sweeprun/change_form.html"
    REFRESH_SECONDS = 5

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: SweepRun) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="Started", ordering="started_at")
    def started(self, obj: SweepRun) -> str:
        return relative_when(obj.started_at, past="", alarm=False)

    @admin.display(description="Checked")
    def progress(self, obj: SweepRun) -> str:
        """Tokens Meta answered about, of the run's tokens: a lease or a deferral is not a check."""
        total = max(obj.items_total, 1)
        percent = round(100 * obj.items_done / total) if obj.items_total else 100
        return format_html(
            '<progress max="{}" value="{}" title="{}%">{}%</progress> {} / {} tokens',
            total, obj.items_done, percent, percent, obj.items_done, obj.items_total,
        )  # fmt: skip

    @admin.display(description="Never checked", ordering="items_unchecked")
    def unchecked(self, obj: SweepRun) -> str:
        """A failed run's tokens no chunk handled by the deadline (due again for the next sweep)."""
        if not obj.items_unchecked:
            return "—"
        return status_badge("failed", f"{obj.items_unchecked} never checked")

    def changelist_view(self, request, extra_context=None):
        running = SweepRun.objects.filter(status=SweepRun.Status.RUNNING).exists()
        extra = {"refresh_seconds": self.REFRESH_SECONDS if running else None, **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        running = SweepRun.objects.filter(pk=object_id, status=SweepRun.Status.RUNNING).exists()
        extra = {"refresh_seconds": self.REFRESH_SECONDS if running else None, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context=extra)
