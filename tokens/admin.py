from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import BinaryField
from django.db.models.functions import Cast
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from common.admin import ReadOnlyAdminMixin
from graph.errors import GraphError

from . import crypto, page_tokens, reminders, sweep, system_users
from .models import AccessToken, Asset, AssetGrant, Reminder, SweepRun, TokenEvent

CHECK_NOW_LIMIT = 100  # "check now" runs in the request: keep it to what a few Graph batches do quickly


class ExpiresWithinFilter(admin.SimpleListFilter):
    """Already ended, or ends within N days (on the field named by ``field_name``)."""

    title = "expires within"
    parameter_name = "expires_within"
    field_name = "expires_at"

    def lookups(self, request, model_admin):
        return [("ended", "Already ended"), ("1", "1 day"), ("7", "7 days"), ("14", "14 days"), ("30", "30 days")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "ended":
            return queryset.filter(**{f"{self.field_name}__lte": now})
        if self.value() in {"1", "7", "14", "30"}:
            until = now + timedelta(days=int(self.value()))
            return queryset.filter(**{f"{self.field_name}__gt": now, f"{self.field_name}__lte": until})
        return queryset


class AccessExpiresWithinFilter(ExpiresWithinFilter):
    title = "access ends within"
    parameter_name = "access_ends_within"
    field_name = "user_access_expire_time"


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
class AccessTokenAdmin(admin.ModelAdmin):
    list_display = ("id", "client", "configuration", "kind", "health", "masked_value", "expires_at", "next_check_at")
    list_filter = ("status", "kind", ExpiresWithinFilter, "configuration")
    list_select_related = ("client", "configuration")
    search_fields = ("client__name", "meta_user_id", "client__meta_business_id")
    date_hierarchy = "created_at"
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
    actions = ["check_now", "derive_page_tokens", "fetch_current_system_user_token", "create_granular_token"]

    def get_queryset(self, request):
        # The value is read as ciphertext and only masked here: a row no key can read must
        # not break the whole page (the model would raise while loading it).
        ciphertext = Cast("value", output_field=BinaryField())
        return super().get_queryset(request).defer("value").annotate(ciphertext=ciphertext)

    @admin.display(description="Status", ordering="status")
    def health(self, obj: AccessToken) -> str:
        # A removed permission is not "invalid": the token works, minus what needs that permission.
        if obj.missing_permissions and obj.is_live():
            return f"{obj.get_status_display()}, permission removed ({', '.join(obj.missing_permissions)})"
        return obj.get_status_display()

    @admin.display(description="Token")
    def masked_value(self, obj: AccessToken) -> str:
        if getattr(obj, "ciphertext", None) is None:
            return "—"
        try:
            return crypto.mask(crypto.decrypt(bytes(obj.ciphertext)))
        except crypto.TokenDecryptionError:
            return "unreadable with the configured keys"

    def has_add_permission(self, request):
        return False

    @admin.action(description="Check now with Meta (validity, expiry, assets)")
    def check_now(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True)[: CHECK_NOW_LIMIT + 1])
        if len(ids) > CHECK_NOW_LIMIT:
            self.message_user(
                request, f"Select at most {CHECK_NOW_LIMIT} tokens; the sweep checks the rest.", messages.ERROR
            )
            return
        try:
            result = sweep.check_tokens(ids)
        except GraphError as error:
            self.message_user(request, f"Meta could not be asked: {error}", messages.ERROR)
            return
        reminders.plan_reminders()
        self.message_user(
            request,
            f"Checked {result.checked}: {result.active} active, {result.expiring} expiring, {result.invalid} invalid; "
            f"{result.permissions_removed} with a permission removed; "
            f"{result.errors} could not be checked now, {result.deferred} deferred (rate limit), "
            f"{result.skipped} not live. Assets: {result.assets_added} added, {result.assets_removed} removed.",
            messages.WARNING if result.errors or result.deferred else messages.SUCCESS,
        )

    @admin.action(description="Derive the Page tokens of these user tokens from Meta")
    def derive_page_tokens(self, request, queryset):
        derived = 0
        live_user_tokens = queryset.filter(kind=AccessToken.Kind.USER, status__in=AccessToken.LIVE_STATUSES)
        for token in live_user_tokens[:CHECK_NOW_LIMIT]:
            try:
                derived += len(page_tokens.derive_page_tokens(token))
            except (GraphError, crypto.TokenDecryptionError) as error:
                self.message_user(request, f"Token #{token.pk}: {error}", messages.ERROR)
        self.message_user(request, f"{derived} new Page token(s) stored.", messages.SUCCESS)

    @admin.action(description="Fetch the current system-user token from Meta")
    def fetch_current_system_user_token(self, request, queryset):
        for token in queryset.select_related("client"):
            try:
                changed = system_users.fetch_current_system_user_token(token, actor_user=request.user)
            except (system_users.SystemUserTokenError, GraphError, crypto.TokenDecryptionError) as error:
                self.message_user(request, f"Token #{token.pk}: {error}", messages.ERROR)
                continue
            self.message_user(
                request, f"Token #{token.pk}: " + ("a newer token was stored." if changed else "unchanged.")
            )

    @admin.action(description="Create a granular system-user token…")
    def create_granular_token(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one system-user token.", messages.ERROR)
            return None
        parent = queryset.select_related("client").get()
        if "apply" in request.POST:
            form = GranularTokenForm(request.POST, parent=parent)
            if form.is_valid():
                try:
                    token = system_users.create_granular_token(
                        parent,
                        assets=list(form.cleaned_data["assets"]),
                        scopes=form.cleaned_data["scopes"],
                        expires_in_60_days=form.cleaned_data["expires_in_60_days"],
                        purpose=form.cleaned_data["purpose"],
                        actor_user=request.user,
                    )
                except (system_users.SystemUserTokenError, GraphError, crypto.TokenDecryptionError) as error:
                    form.add_error(None, str(error))
                else:
                    self.message_user(request, f"Granular token #{token.pk} created.", messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:tokens_accesstoken_change", args=[token.pk]))
        else:
            form = GranularTokenForm(parent=parent)
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
class AssetAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "meta_id", "client")
    list_filter = ("kind",)
    list_select_related = ("client",)
    search_fields = ("name", "meta_id", "client__name")


@admin.register(AssetGrant)
class AssetGrantAdmin(admin.ModelAdmin):
    list_display = ("asset", "token", "status", "user_access_expire_time", "last_checked_at")
    list_filter = ("status", AccessExpiresWithinFilter, "asset__kind")
    list_select_related = ("asset", "token", "token__client")
    search_fields = ("asset__name", "asset__meta_id", "token__client__name")
    readonly_fields = ("token", "asset", "created_at", "removed_at", "last_checked_at")

    def get_queryset(self, request):
        return super().get_queryset(request).defer("token__value")


@admin.register(Reminder)
class ReminderAdmin(admin.ModelAdmin):
    list_display = (
        "recipient_email", "client", "reason", "stage", "status", "due_at", "attempts", "sent_at", "last_error_short",
    )  # fmt: skip
    list_filter = ("status", "reason", "stage")
    list_select_related = ("client",)
    search_fields = ("recipient_email", "client__name")
    readonly_fields = [field.name for field in Reminder._meta.fields]
    actions = ["retry_now"]

    @admin.display(description="Last error")
    def last_error_short(self, obj: Reminder) -> str:
        return obj.last_error[:80]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Send again now (failed or pending reminders)")
    def retry_now(self, request, queryset):
        count = reminders.retry_reminders(list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} reminder(s) will be sent by the next run (within a minute).")


@admin.register(TokenEvent)
class TokenEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "kind", "client", "token", "actor", "message")
    list_filter = ("kind", "actor")
    list_select_related = ("client", "token")
    search_fields = ("client__name", "message")
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return super().get_queryset(request).defer("token__value")


@admin.register(SweepRun)
class SweepRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("job", "status", "started_at", "finished_at", "progress", "items_done", "items_total", "errors")
    list_filter = ("job", "status")
    readonly_fields = (
        "job", "status", "progress", "started_at", "finished_at", "chunks_done", "chunks_total", "items_done",
        "items_total", "errors", "totals", "last_error",
    )  # fmt: skip
    change_list_template = "admin/tokens/sweeprun/change_list.html"
    change_form_template = "admin/tokens/sweeprun/change_form.html"
    REFRESH_SECONDS = 5

    @admin.display(description="Progress")
    def progress(self, obj: SweepRun) -> str:
        total = max(obj.chunks_total, 1)
        done = obj.chunks_total if obj.status == SweepRun.Status.FINISHED else obj.chunks_done
        percent = round(100 * done / total) if obj.chunks_total else 100
        return format_html(
            '<progress max="{}" value="{}" title="{}%">{}%</progress> {} / {} chunks',
            total, done, percent, percent, done, obj.chunks_total,
        )  # fmt: skip

    def changelist_view(self, request, extra_context=None):
        running = SweepRun.objects.filter(status=SweepRun.Status.RUNNING).exists()
        extra = {"refresh_seconds": self.REFRESH_SECONDS if running else None, **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        running = SweepRun.objects.filter(pk=object_id, status=SweepRun.Status.RUNNING).exists()
        extra = {"refresh_seconds": self.REFRESH_SECONDS if running else None, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context=extra)
