from django import forms
from django.contrib import admin, messages
from django.db.models import Count
from django.template.response import TemplateResponse

from common.admin import ReadOnlyAdminMixin
from graph.permissions import ASSET_TYPES, FLFB_SUPPORTED, describe

from .invitations import revoke_invitation, send_invitations
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


@admin.register(ClientBusiness)
class ClientBusinessAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "meta_business_id", "contact_count", "status_changed_at")
    list_filter = ("status",)
    search_fields = ("name", "meta_business_id", "contacts__email")
    readonly_fields = ("status_changed_at", "created_at", "updated_at")
    inlines = [ContactInline]
    actions = ["send_onboarding_invitation"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_contacts=Count("contacts"))

    @admin.display(description="Contacts", ordering="_contacts")
    def contact_count(self, obj) -> int:
        return obj._contacts

    @admin.action(description="Send onboarding invitation")
    def send_onboarding_invitation(self, request, queryset):
        form = SendInvitationForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            batch = send_invitations(
                queryset.prefetch_related("contacts"), form.cleaned_data["configuration"], created_by=request.user
            )
            if batch.sent:
                self.message_user(request, f"{len(batch.sent)} invitation(s) sent.", messages.SUCCESS)
            if batch.clients_without_contacts:
                names = ", ".join(client.name for client in batch.clients_without_contacts)
                self.message_user(request, f"No contact to invite for: {names}. Add a contact first.", messages.WARNING)
            for email, error in batch.failed:
                self.message_user(request, f"Could not send to {email} ({error}).", messages.ERROR)
            return None
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
class ContactAdmin(admin.ModelAdmin):
    list_display = ("email", "name", "client", "meta_user_id", "receives_reminders")
    list_select_related = ("client",)
    search_fields = ("email", "name", "client__name", "meta_user_id")


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
class LoginConfigurationAdmin(admin.ModelAdmin):
    form = LoginConfigurationForm
    list_display = ("name", "config_id", "token_type", "variant", "token_expiry", "is_active")
    list_filter = ("token_type", "variant", "is_active")
    search_fields = ("name", "config_id")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        for warning in obj.warnings():
            self.message_user(request, warning, messages.WARNING)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = (
        "client", "configuration", "mode", "email", "state", "sent_at", "opened_at", "completed_at", "expires_at",
    )  # fmt: skip
    list_filter = ("mode",)
    list_select_related = ("client", "configuration")
    search_fields = ("client__name", "email")
    readonly_fields = ("key_hash", "sent_at", "opened_at", "completed_at", "revoked_at", "created_at", "created_by")
    actions = ["revoke"]

    @admin.display(description="State")
    def state(self, obj) -> str:
        return obj.state_label()

    def has_add_permission(self, request):
        return False  # invitations are created by the "Send onboarding invitation" action (the key is shown once)

    @admin.action(description="Revoke selected invitations")
    def revoke(self, request, queryset):
        for invitation in queryset:
            revoke_invitation(invitation)
        self.message_user(request, f"{queryset.count()} invitation(s) revoked.", messages.SUCCESS)


@admin.register(LoginAttempt)
class LoginAttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("id", "client", "configuration", "mode", "outcome", "failure_kind", "created_at", "is_mobile")
    list_filter = ("outcome", "mode", "is_mobile", "failure_kind")
    list_select_related = ("client", "configuration")
    search_fields = ("client__name",)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("received_at", "object_type", "fields", "duplicates", "summary")


@admin.register(DataDeletionRequest)
class DataDeletionRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("confirmation_code", "status", "tokens_purged", "contacts_removed", "requested_at")
