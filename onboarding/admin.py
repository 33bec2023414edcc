from django.contrib import admin

from .models import ClientBusiness, Contact, Invitation, LoginAttempt, LoginConfiguration


class ContactInline(admin.TabularInline):
    model = Contact
    extra = 0
    fields = ("name", "email", "meta_user_id", "receives_reminders")


@admin.register(ClientBusiness)
class ClientBusinessAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "meta_business_id", "status_changed_at")
    list_filter = ("status",)
    search_fields = ("name", "meta_business_id", "contacts__email")
    readonly_fields = ("status_changed_at", "created_at", "updated_at")
    inlines = [ContactInline]


@admin.register(Contact)
class ContactAdmin(admin.ModelAdmin):
    list_display = ("email", "name", "client", "meta_user_id", "receives_reminders")
    list_select_related = ("client",)
    search_fields = ("email", "name", "client__name", "meta_user_id")


@admin.register(LoginConfiguration)
class LoginConfigurationAdmin(admin.ModelAdmin):
    list_display = ("name", "config_id", "token_type", "variant", "token_expiry", "is_active")
    list_filter = ("token_type", "variant", "is_active")
    search_fields = ("name", "config_id")


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("client", "configuration", "mode", "email", "sent_at", "opened_at", "completed_at", "expires_at")
    list_filter = ("mode",)
    list_select_related = ("client", "configuration")
    search_fields = ("client__name", "email")
    readonly_fields = ("key_hash", "sent_at", "opened_at", "completed_at", "created_at", "created_by")


@admin.register(LoginAttempt)
class LoginAttemptAdmin(admin.ModelAdmin):
    list_display = ("id", "client", "configuration", "mode", "outcome", "failure_kind", "created_at", "is_mobile")
    list_filter = ("outcome", "mode", "is_mobile")
    list_select_related = ("client", "configuration")
    search_fields = ("client__name",)
    readonly_fields = [f.name for f in LoginAttempt._meta.fields]

    def has_add_permission(self, request):
        return False
