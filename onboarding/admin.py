from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Exists, IntegerField, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.template.response import TemplateResponse
from django.utils import timezone
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
from graph.permissions import ASSET_TYPES, FLFB_SUPPORTED, describe
from staffjobs.admin import show_job
from staffjobs.jobs import start_job
from tokens.models import AccessToken, ClientHealth

from .invitations import refusal_for, revoke_invitation
from .models import (
    ClientBusiness,
    Contact,
    DataDeletionRequest,
    Invitation,
    LoginAttempt,
    LoginConfiguration,
    WebhookDelivery,
)


class ContactInline(admin.TabularInline):
    model = Contact
    extra = 0
    fields = ("name", "email", "meta_user_id", "receives_reminders")


class SendInvitationForm(forms.Form):
    configuration = forms.ModelChoiceField(
        queryset=LoginConfiguration.objects.filter(is_active=True),
        help_text="What the clients will be asked to grant.",
    )


def _count_of(queryset) -> Coalesce:
    """A per-client count as a subquery: computed for the page's rows only, not by grouping the table."""
    counted = queryset.order_by().values("client").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


class TokenEndsWithinFilter(admin.SimpleListFilter):
    """Clients with a live token that has ended, or ends (expiry or data access) within N days."""

    title = "a live token ends within"
    parameter_name = "token_ends_within"

    def lookups(self, request, model_admin):
        return [("ended", "Already ended"), ("7", "7 days"), ("30", "30 days")]

    def queryset(self, request, queryset):
        if self.value() not in ("ended", "7", "30"):
            return queryset
        now = timezone.now()
        until = now if self.value() == "ended" else now + timedelta(days=int(self.value()))
        live = AccessToken.objects.filter(client=OuterRef("pk"), status__in=AccessToken.LIVE_STATUSES)
        ending = live.filter(Q(expires_at__lte=until) | Q(data_access_expires_at__lte=until))
        return queryset.filter(Exists(ending))


class ConnectionStateFilter(admin.SimpleListFilter):
    """The connection's state (tokens.health): a client with no health row has never connected.
    Offboarded clients are left out (the first screen counts them apart, by their status)."""

    title = "connection"
    parameter_name = "connection"

    def lookups(self, request, model_admin):
        return ClientHealth.State.choices

    def queryset(self, request, queryset):
        value = self.value()
        if value not in ClientHealth.State.values:
            return queryset
        queryset = queryset.exclude(status=ClientBusiness.Status.OFFBOARDED)
        if value == ClientHealth.State.NOT_CONNECTED:
            return queryset.filter(Q(health__isnull=True) | Q(health__state=value))
        return queryset.filter(health__state=value)


class BreaksWithinFilter(EndsWithinFilter):
    """The day it breaks (tokens.health): already broken, within N days, or on one day."""

    title = "breaks within"
    parameter_name = "breaks_within"
    field_names = ("health__breaks_at",)
    DAYS = ("1", "7", "14", "30", "60")

    def lookups(self, request, model_admin):
        return [("ended", "Already broken"), *super().lookups(request, model_admin)[1:]]


class ConfigurationFilter(admin.SimpleListFilter):
    """Clients with a live token of this configuration."""

    title = "configuration"
    parameter_name = "configuration"

    def lookups(self, request, model_admin):
        return [(str(c.pk), c.name) for c in LoginConfiguration.objects.order_by("name")]

    def queryset(self, request, queryset):
        if not (self.value() or "").isdigit():
            return queryset
        live = AccessToken.objects.filter(client=OuterRef("pk"), status__in=AccessToken.LIVE_STATUSES,
                                          configuration_id=int(self.value()))
        return queryset.filter(Exists(live))


@admin.register(ClientBusiness)
class ClientBusinessAdmin(PortalModelAdmin):
    list_display = ("name", "status_badge", "connection_badge", "breaks_on", "meta_business_id", "live_tokens",
                    "contact_count")
    list_filter = ("status", ConnectionStateFilter, BreaksWithinFilter, TokenEndsWithinFilter, ConfigurationFilter)
    list_select_related = ("health",)
    search_fields = ("name", "=meta_business_id", "notification_emails", "contacts__email")
    search_help_text = "Client name, an email (a contact's or a notification address), or an exact Meta business id."
    ordering = ("name", "id")
    readonly_fields = ("status_changed_at", "created_at", "updated_at")
    inlines = [ContactInline]
    actions = ["send_onboarding_invitation"]

    def get_search_results(self, request, queryset, search_term):
        """Name, email or Meta business id; contacts are matched once (a semi-join), not per client row."""
        term = search_term.strip()
        if not term:
            return queryset, False
        if "@" in term:
            contacts = Contact.objects.filter(email__icontains=term).values("client_id")
            return queryset.filter(Q(pk__in=contacts) | Q(notification_emails__icontains=term)), False
        return queryset.filter(Q(name__icontains=term) | Q(meta_business_id=term)), False

    def get_queryset(self, request):
        live = AccessToken.objects.filter(status__in=AccessToken.LIVE_STATUSES)
        return super().get_queryset(request).annotate(
            _contacts=_count_of(Contact.objects.filter(client=OuterRef("pk"))),
            _live_tokens=_count_of(live.filter(client=OuterRef("pk"))),
        )

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="Connection", ordering="health__state")
    def connection_badge(self, obj) -> str:
        health = getattr(obj, "health", None)
        if health is None:
            return status_badge("not_connected", ClientHealth.State.NOT_CONNECTED.label)
        return status_badge(health.state, health.get_state_display())

    @admin.display(description="Breaks", ordering="health__breaks_at")
    def breaks_on(self, obj) -> str:
        """The day it breaks, relative ("in 3 days"), with the reason on hover."""
        health = getattr(obj, "health", None)
        if health is None or health.breaks_at is None:
            return "—"
        when = relative_when(health.breaks_at, past="broke", future="breaks")
        return format_html('<span title="{}">{}</span> <span class="help">{}</span>',
                           health.breaks_reason, when, health.breaks_on.isoformat())

    @admin.display(description="Contacts", ordering="_contacts")
    def contact_count(self, obj) -> int:
        return obj._contacts

    @admin.display(description="Live tokens", ordering="_live_tokens")
    def live_tokens(self, obj) -> int:
        return obj._live_tokens

    @admin.display(description="In this state", ordering="status_changed_at")
    def status_since(self, obj) -> str:
        return relative_when(obj.status_changed_at, past="since", alarm=False)

    @admin.action(description="Send onboarding invitation…", permissions=["change"])
    def send_onboarding_invitation(self, request, queryset):
        form = SendInvitationForm(request.POST if "apply" in request.POST else None)
        refused = [refusal_for(client) for client in queryset.filter(status=ClientBusiness.Status.OFFBOARDED)]
        for refusal in refused:
            self.message_user(request, refusal, messages.ERROR)
        queryset = queryset.exclude(status=ClientBusiness.Status.OFFBOARDED)
        if refused and not queryset.exists():
            return None
        if "apply" in request.POST and form.is_valid():
            ids = list(queryset.order_by().values_list("pk", flat=True))
            job = start_job(
                "onboarding.send_invitations",
                title=f"Send {form.cleaned_data['configuration'].name} invitations to {len(ids)} client(s)",
                target_ids=ids,
                params={"configuration_id": form.cleaned_data["configuration"].pk},
                user=request.user,
            )
            return show_job(self, request, job)
        return TemplateResponse(
            request,
            "onboarding/admin/send_invitation.html",
            {
                **self.admin_site.each_context(request),
                "title": "Send onboarding invitation",
                "clients": queryset.prefetch_related("contacts"),
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            },
        )


@admin.register(Contact)
class ContactAdmin(PortalModelAdmin):
    list_display = ("email", "name", "client", "meta_user_id", "receives_reminders")
    list_select_related = ("client",)
    search_fields = ("email", "name", "client__name", "=meta_user_id")
    ordering = ("-id",)


class LoginConfigurationForm(forms.ModelForm):
    permissions = forms.TypedMultipleChoiceField(
        choices=[(name, f"{name}: {describe(name)}") for name in sorted(FLFB_SUPPORTED)],
        widget=forms.CheckboxSelectMultiple,
        help_text="Exactly as configured in Meta's App Dashboard. Checked against Meta's rules on save.",
    )
    asset_types = forms.TypedMultipleChoiceField(
        choices=list(ASSET_TYPES.items()), widget=forms.CheckboxSelectMultiple, required=False
    )

    class Meta:
        model = LoginConfiguration
        fields = [
            "name", "config_id", "token_type", "variant", "permissions", "asset_types", "token_expiry",
            "description", "is_active",
        ]  # fmt: skip


@admin.register(LoginConfiguration)
class LoginConfigurationAdmin(PortalModelAdmin):
    form = LoginConfigurationForm
    list_display = ("name", "config_id", "token_type", "variant", "token_expiry", "is_active")
    list_filter = ("token_type", "variant", "is_active")
    search_fields = ("name", "config_id")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        for warning in obj.warnings():
            self.message_user(request, warning, messages.WARNING)


class InvitationStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [(name, name.capitalize()) for name in ("sent", "opened", "completed", "expired", "revoked")] + [
            ("opened_ever", "Opened at some point")
        ]

    def queryset(self, request, queryset):
        now = timezone.now()
        open_ = Q(revoked_at__isnull=True, completed_at__isnull=True, expires_at__gt=now)
        states = {
            "sent": open_ & Q(opened_at__isnull=True),
            "opened": open_ & Q(opened_at__isnull=False),
            "completed": Q(completed_at__isnull=False),
            "expired": Q(revoked_at__isnull=True, completed_at__isnull=True, expires_at__lte=now),
            "revoked": Q(revoked_at__isnull=False),
            "opened_ever": Q(opened_at__isnull=False),
        }
        return queryset.filter(states[self.value()]) if self.value() in states else queryset


INVITATION_STATE_TONES = {"Completed": "ok", "Opened": "warn", "Sent": "info", "Expired": "bad", "Revoked": "muted"}


@admin.register(Invitation)
class InvitationAdmin(PortalModelAdmin):
    list_display = ("client", "configuration", "mode", "email", "state", "sent", "expires")
    list_filter = (InvitationStateFilter, CreatedWithinFilter, "mode", "configuration")
    list_select_related = ("client", "configuration")
    search_fields = ("client__name", "email")
    search_help_text = "Client name or the invited email."
    ordering = ("-id",)
    readonly_fields = ("key_hash", "sent_at", "opened_at", "completed_at", "revoked_at", "created_at", "created_by")
    actions = ["revoke"]

    @admin.display(description="State")
    def state(self, obj) -> str:
        label = obj.state_label()
        return status_badge(label.lower(), label)

    @admin.display(description="Sent", ordering="sent_at")
    def sent(self, obj) -> str:
        return relative_when(obj.sent_at, past="", never="not sent", alarm=False)

    @admin.display(description="Link expires", ordering="expires_at")
    def expires(self, obj) -> str:
        if obj.completed_at or obj.revoked_at:
            return "—"
        return relative_when(obj.expires_at, past="expired", future="expires")

    def has_add_permission(self, request):
        return False  # invitations are created by the "Send onboarding invitation" action (the key is shown once)

    def get_readonly_fields(self, request, obj=None):
        # A sent invitation is what its recipient holds: never edited, only revoked and sent again (D74).
        if obj is not None and obj.sent_at is not None:
            return [field.name for field in obj._meta.fields]
        return super().get_readonly_fields(request, obj)

    @admin.action(description="Revoke selected invitations", permissions=["change"])
    def revoke(self, request, queryset):
        for invitation in queryset:
            revoke_invitation(invitation)
        self.message_user(request, f"{queryset.count()} invitation(s) revoked.", messages.SUCCESS)


class FailureKindFilter(FixedChoicesFilter):
    title = "what went wrong"
    parameter_name = "failure_kind__exact"
    field_name = "failure_kind"

    def choices_for(self, request):
        from .failures import FAILURES

        return [(kind, failure.title) for kind, failure in sorted(FAILURES.items())]


class OutcomeGroupFilter(admin.SimpleListFilter):
    title = "outcome group"
    parameter_name = "outcome_group"
    GROUPS = {"unsuccessful": (LoginAttempt.Outcome.FAILED, LoginAttempt.Outcome.CANCELLED)}

    def lookups(self, request, model_admin):
        return [("unsuccessful", "Failed or cancelled")]

    def queryset(self, request, queryset):
        outcomes = self.GROUPS.get(self.value() or "")
        return queryset.filter(outcome__in=outcomes) if outcomes else queryset


@admin.register(LoginAttempt)
class LoginAttemptAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    list_display = ("id", "client", "configuration", "mode", "outcome_badge", "failure_kind", "started", "is_mobile")
    list_filter = ("outcome", OutcomeGroupFilter, CreatedWithinFilter, "mode", "is_mobile", FailureKindFilter,
                   "configuration")
    list_select_related = ("client", "configuration")
    search_fields = ("client__name", "=client__meta_business_id")
    search_help_text = "Client name, or an exact Meta business id."
    ordering = ("-id",)

    @admin.display(description="Outcome", ordering="outcome")
    def outcome_badge(self, obj) -> str:
        return status_badge(obj.outcome, obj.get_outcome_display())

    @admin.display(description="Started", ordering="created_at")
    def started(self, obj) -> str:
        return relative_when(obj.created_at, past="", alarm=False)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    list_display = ("received_at", "object_type", "fields", "duplicates", "summary")


@admin.register(DataDeletionRequest)
class DataDeletionRequestAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    list_display = ("confirmation_code", "status", "tokens_purged", "contacts_removed", "requested_at")
