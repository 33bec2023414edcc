"""Staff create service credentials (the secret is shown once), revoke them, and read every use.

Administrators only (console.roles): a credential reaches every client's working tokens.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html

from common.admin import PortalModelAdmin, ReadOnlyAdminMixin, relative_when, show_secret_once, status_badge

from . import credentials
from .models import ApiUse, Scope, ServiceCredential


class ServiceCredentialForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple,
                                       help_text="Give each service only what it needs.")

    class Meta:
        model = ServiceCredential
        fields = ["name", "scopes", "clients", "configurations", "notes"]

    def clean_scopes(self):
        return sorted(set(self.cleaned_data["scopes"]))


@admin.register(ServiceCredential)
class ServiceCredentialAdmin(PortalModelAdmin):
    form = ServiceCredentialForm
    list_display = ("name", "state", "scope_list", "limits", "hint", "last_used", "created_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name",)
    filter_horizontal = ("clients", "configurations")
    readonly_fields = ("secret", "created_by", "created_at", "last_used_at", "revoked_at", "revoked_by", "uses_link")
    actions = ["revoke"]

    def get_fieldsets(self, request, obj=None):
        main = (None, {"fields": ("name", "scopes", "secret", "notes")})
        limits = ("Limits (empty: every client, every configuration)", {"fields": ("clients", "configurations")})
        if obj is None:
            return [main, limits]
        state = ("State", {"fields": ("created_by", "created_at", "last_used_at", "revoked_at", "revoked_by",
                                      "uses_link")})
        return [main, limits, state]

    @admin.display(description="State")
    def state(self, obj: ServiceCredential) -> str:
        return status_badge("revoked", "revoked") if obj.is_revoked() else status_badge("active", "active")

    @admin.display(description="Scopes")
    def scope_list(self, obj: ServiceCredential) -> str:
        return ", ".join(obj.scopes) or "—"

    @admin.display(description="Limited to")
    def limits(self, obj: ServiceCredential) -> str:
        clients, configurations = obj.client_count, obj.configuration_count
        parts = [f"{clients} client(s)" if clients else "",
                 f"{configurations} configuration(s)" if configurations else ""]
        return ", ".join(part for part in parts if part) or "everything"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            client_count=Count("clients", distinct=True), configuration_count=Count("configurations", distinct=True))

    @admin.display(description="Secret starts")
    def hint(self, obj: ServiceCredential) -> str:
        return format_html("<code>{}…</code>", obj.secret_hint) if obj.secret_hint else "—"

    @admin.display(description="Last used", ordering="last_used_at")
    def last_used(self, obj: ServiceCredential) -> str:
        return relative_when(obj.last_used_at, past="", never="never", alarm=False)

    @admin.display(description="Secret")
    def secret(self, obj: ServiceCredential) -> str:
        if not obj.pk:
            return "Created when you save; shown once on the next page."
        return format_html("Starts <code>{}…</code>; shown only when it was created. Lost? Create a new credential "
                           "and revoke this one.", obj.secret_hint)

    @admin.display(description="Uses")
    def uses_link(self, obj: ServiceCredential) -> str:
        url = reverse("admin:api_apiuse_changelist") + f"?credential__id__exact={obj.pk}"
        return format_html('<a href="{}">Every use of this credential</a>', url)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
            request._api_new_secret = credentials.issue_secret(obj)
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "_api_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return show_secret_once(request, self.admin_site, "admin/api/servicecredential/secret.html", {
            "title": "Service credential secret",
            "credential": obj,
            "secret": secret,
            "opts": ServiceCredential._meta,
            "change_url": reverse("admin:api_servicecredential_change", args=[obj.pk]),
        })

    @admin.action(description="Revoke (its next request gets a 401)", permissions=["change"])
    def revoke(self, request, queryset):
        count = credentials.revoke(queryset.values_list("pk", flat=True), by=f"staff:{request.user.get_username()}")
        self.message_user(request, f"{count} credential(s) revoked.")


class AnsweredFilter(admin.SimpleListFilter):
    """By how the request was answered; by status ranges, never a SELECT DISTINCT over every use."""

    title = "answer"
    parameter_name = "answer"
    RANGES = {"ok": Q(status_code__lt=400), "no_token": Q(status_code=409),
              "refused": Q(status_code__gte=400, status_code__lt=500) & ~Q(status_code=409),
              "failed": Q(status_code__gte=500)}

    def lookups(self, request, model_admin):
        return [("ok", "Answered"), ("no_token", "No working token (409)"), ("refused", "Refused (4xx)"),
                ("failed", "Failed (5xx)")]

    def queryset(self, request, queryset):
        condition = self.RANGES.get(self.value() or "")
        return queryset if condition is None else queryset.filter(condition)


@admin.register(ApiUse)
class ApiUseAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    list_display = ("at", "credential", "action", "method", "client", "asset_meta_id", "status_code", "outcome")
    list_filter = (AnsweredFilter, "credential")
    list_select_related = ("credential", "client")
    search_fields = ("=asset_meta_id", "=request_id", "=action")

    def lookup_allowed(self, lookup, value, request=None):
        # The client page links to its client's uses; no client filter is listed (100,000 choices).
        return lookup == "client__id__exact" or super().lookup_allowed(lookup, value, request)
    fields = ("at", "credential", "action", "method", "client", "asset_meta_id", "status_code", "outcome", "request_id")
    readonly_fields = fields
