from django.contrib import admin

from .models import AccessToken, Asset, AssetGrant, Reminder, SweepRun, TokenEvent


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AssetGrantInline(admin.TabularInline):
    model = AssetGrant
    extra = 0
    fields = ("asset", "status", "user_access_expire_time", "last_checked_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    list_display = ("id", "client", "configuration", "kind", "status", "masked_value", "expires_at", "next_check_at")
    list_filter = ("status", "kind", "configuration")
    list_select_related = ("client", "configuration")
    search_fields = ("client__name", "meta_user_id", "client__meta_business_id")
    date_hierarchy = "created_at"
    # The value itself is never a field here: only its masked form is shown.
    exclude = ("value",)
    readonly_fields = (
        "masked_value", "fingerprint", "client", "configuration", "kind", "meta_app_id", "meta_user_id",
        "granted_by", "scopes", "granular_scopes", "issued_at", "expires_at", "data_access_expires_at",
        "status", "status_reason", "error_code", "error_subcode", "last_checked_at", "next_check_at",
        "consecutive_check_failures", "parent", "superseded_by", "revoked_at", "created_at", "updated_at",
    )
    inlines = [AssetGrantInline]

    @admin.display(description="Token")
    def masked_value(self, obj: AccessToken) -> str:
        return obj.masked()

    def has_add_permission(self, request):
        return False


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "meta_id", "client")
    list_filter = ("kind",)
    list_select_related = ("client",)
    search_fields = ("name", "meta_id", "client__name")


@admin.register(AssetGrant)
class AssetGrantAdmin(admin.ModelAdmin):
    list_display = ("asset", "token", "status", "user_access_expire_time", "last_checked_at")
    list_filter = ("status", "asset__kind")
    list_select_related = ("asset", "token", "token__client")
    search_fields = ("asset__name", "asset__meta_id", "token__client__name")
    readonly_fields = ("token", "asset", "created_at", "removed_at", "last_checked_at")


@admin.register(Reminder)
class ReminderAdmin(admin.ModelAdmin):
    list_display = ("recipient_email", "client", "reason", "stage", "status", "due_at", "attempts", "sent_at")
    list_filter = ("status", "reason", "stage")
    list_select_related = ("client",)
    search_fields = ("recipient_email", "client__name")
    readonly_fields = ("subject_key", "claimed_at", "claimed_by", "sent_at", "attempts", "last_error", "created_at")


@admin.register(TokenEvent)
class TokenEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "kind", "client", "token", "actor", "message")
    list_filter = ("kind", "actor")
    list_select_related = ("client", "token")
    search_fields = ("client__name", "message")
    date_hierarchy = "created_at"


@admin.register(SweepRun)
class SweepRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("job", "status", "started_at", "finished_at", "chunks_done", "chunks_total", "items_done", "errors")
    list_filter = ("job", "status")
