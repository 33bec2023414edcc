from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from common.admin import PortalModelAdmin, ReadOnlyAdminMixin
from graph import permissions

from . import limits, services
from .models import (
    ApiCallHour,
    AppRole,
    BusinessVerification,
    MarketingAccessLevel,
    PermissionAccess,
    ReportedCallHour,
    StaffAlert,
    TechProviderVerification,
    UpkeepRule,
    VerificationTransition,
)


class VerificationTransitionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = VerificationTransition
    extra = 0
    readonly_fields = ("at", "from_status", "to_status", "actor", "note")
    fields = readonly_fields


class ChangeStatusForm(forms.Form):
    new_status = forms.ChoiceField(label="New status")
    notified_on = forms.DateField(
        required=False,
        label="Meta's notification date",
        help_text="Required for “Required”: the 60-day deadline counts from it. Optional for “Lost”. YYYY-MM-DD.",
    )
    note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Recorded with the change. Resubmitting after a rejection: say what changed in the use case.",
    )

    def __init__(self, *args, record: TechProviderVerification, **kwargs):
        super().__init__(*args, **kwargs)
        status = TechProviderVerification.Status
        self.fields["new_status"].choices = [(s, status(s).label) for s in services.allowed_next_statuses(record)]


@admin.register(TechProviderVerification)
class TechProviderVerificationAdmin(PortalModelAdmin):
    list_display = (
        "name", "meta_business_id", "is_provider", "status", "deadline", "days_left", "expected_decision_on",
    )
    list_filter = ("status", "is_provider")
    search_fields = ("name", "meta_business_id")
    # The status and its dates change only through change_status() (the "Change status" page).
    readonly_fields = (
        "status_with_link", "notified_on", "deadline", "days_left", "submitted_at", "expected_decision_on",
        "decided_at", "updated_at",
    )
    fields = ("name", "meta_business_id", "is_provider", *readonly_fields, "notes")
    inlines = [VerificationTransitionInline]

    @admin.display(description="Days left")
    def days_left(self, obj: TechProviderVerification):
        days = obj.days_until_deadline()
        if days is None:
            return "—"
        return f"{-days} days overdue" if days < 0 else days

    @admin.display(description="Status")
    def status_with_link(self, obj: TechProviderVerification):
        if obj.pk is None:
            return obj.get_status_display()
        url = reverse("admin:verification_techproviderverification_status", args=[obj.pk])
        return format_html('{} · <a href="{}">Change status</a>', obj.get_status_display(), url)

    def get_urls(self):
        urls = [
            path(
                "<int:pk>/status/",
                self.admin_site.admin_view(self.change_status_view),
                name="verification_techproviderverification_status",
            ),
        ]
        return urls + super().get_urls()

    def change_status_view(self, request, pk: int):
        record = get_object_or_404(TechProviderVerification, pk=pk)
        if not self.has_change_permission(request, record):
            return redirect("admin:index")
        form = ChangeStatusForm(request.POST or None, record=record)
        if request.method == "POST" and form.is_valid():
            try:
                services.change_status(
                    record,
                    form.cleaned_data["new_status"],
                    actor=request.user,
                    note=form.cleaned_data["note"],
                    notified_on=form.cleaned_data["notified_on"],
                )
            except ValidationError as exc:
                form.add_error(None, exc)
            else:
                self.message_user(request, f"{record.name} is now “{record.get_status_display()}”.", messages.SUCCESS)
                return redirect("admin:verification_techproviderverification_change", record.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Change the status of {record.name}",
            "record": record,
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/verification/change_status.html", context)


@admin.register(BusinessVerification)
class BusinessVerificationAdmin(PortalModelAdmin):
    list_display = ("name", "meta_business_id", "status", "verified_at")
    list_filter = ("status",)
    search_fields = ("name", "meta_business_id")


class GatedFilter(admin.SimpleListFilter):
    title = "gated by Tech Provider verification"
    parameter_name = "gated"

    def lookups(self, request, model_admin):
        return [("yes", "Gated"), ("no", "Not gated")]

    def queryset(self, request, queryset):
        gated = Q(permission__in=permissions.TECH_PROVIDER_GATED)
        if self.value() == "yes":
            return queryset.filter(gated)
        if self.value() == "no":
            return queryset.exclude(gated)
        return queryset


@admin.register(PermissionAccess)
class PermissionAccessAdmin(PortalModelAdmin):
    list_display = ("permission", "access_level", "review_state", "gated", "user_tokens", "system_user_tokens")
    list_editable = ("access_level", "review_state")
    list_filter = ("access_level", "review_state", GatedFilter)
    search_fields = ("permission",)
    readonly_fields = ("gated", "user_tokens", "system_user_tokens", "description", "updated_at")

    @admin.display(description="Gated by Tech Provider verification", boolean=True)
    def gated(self, obj: PermissionAccess) -> bool:
        return obj.gated_by_tech_provider

    @admin.display(description="FLfB user tokens", boolean=True)
    def user_tokens(self, obj: PermissionAccess) -> bool:
        return obj.supported_for_user

    @admin.display(description="FLfB system-user tokens", boolean=True)
    def system_user_tokens(self, obj: PermissionAccess) -> bool:
        return obj.supported_for_system_user

    @admin.display(description="What it allows")
    def description(self, obj: PermissionAccess) -> str:
        return permissions.describe(obj.permission)


@admin.register(AppRole)
class AppRoleAdmin(PortalModelAdmin):
    list_display = ("name", "role", "meta_user_id", "email")
    list_filter = ("role",)
    search_fields = ("name", "meta_user_id", "email")


def only_one_selected(model_admin, request, queryset, noun: str):
    """The one row an action needs, or None after telling staff to select exactly one."""
    if queryset.count() != 1:
        model_admin.message_user(request, f"Select exactly one {noun}.", messages.ERROR)
        return None
    return queryset.get()


@admin.register(UpkeepRule)
class UpkeepRuleAdmin(PortalModelAdmin):
    list_display = ("name", "is_active", "describe")
    list_filter = ("is_active",)
    actions = ["make_active"]

    @admin.action(description="Make the selected rule the one in force", permissions=["change"])
    def make_active(self, request, queryset):
        rule = only_one_selected(self, request, queryset, "rule")
        if rule is None:
            return
        services.make_the_only_one(rule, "is_active")
        self.message_user(request, f"“{rule.name}” is now the rule in force.", messages.SUCCESS)


@admin.register(MarketingAccessLevel)
class MarketingAccessLevelAdmin(PortalModelAdmin):
    list_display = ("level", "system_users", "admin_system_users", "is_current")
    actions = ["make_current"]

    def changelist_view(self, request, extra_context=None):
        for usage in limits.system_user_usage():
            if usage.warning:
                self.message_user(request, usage.warning, messages.WARNING)
        return super().changelist_view(request, extra_context)

    @admin.action(description="Make the selected level the provider's current one", permissions=["change"])
    def make_current(self, request, queryset):
        level = only_one_selected(self, request, queryset, "level")
        if level is None:
            return
        services.make_the_only_one(level, "is_current")
        for usage in limits.system_user_usage(level):
            if usage.headroom < 0:
                self.message_user(request, usage.warning, messages.WARNING)
        self.message_user(request, f"The current access level is now {level}.", messages.SUCCESS)


@admin.register(ApiCallHour)
class ApiCallHourAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    list_display = ("hour", "api", "calls", "errors")
    list_filter = ("api",)
    date_hierarchy = "hour"


@admin.register(ReportedCallHour)
class ReportedCallHourAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    """What services reported for calls made without the proxy (``POST /api/v1/usage``); read-only."""

    list_display = ("hour", "service", "api", "calls", "errors", "reported_at")
    list_filter = ("api",)
    search_fields = ("service",)
    date_hierarchy = "hour"


@admin.register(StaffAlert)
class StaffAlertAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    list_display = ("created_at", "kind", "subject", "status", "attempts", "sent_at", "resolved_at")
    list_filter = ("kind", "status")
    search_fields = ("key", "subject")


