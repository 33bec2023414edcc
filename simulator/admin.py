"""Read-mostly admin for the simulator's world. Token values, codes and secrets are never shown."""

from django.contrib import admin

from .models import SimApp, SimAsset, SimBusiness, SimConfiguration, SimDelivery, SimPerson, SimToken


@admin.register(SimApp)
class SimAppAdmin(admin.ModelAdmin):
    list_display = ["app_id", "name", "require_proof"]
    exclude = ["app_secret"]


@admin.register(SimConfiguration)
class SimConfigurationAdmin(admin.ModelAdmin):
    list_display = ["config_id", "token_type", "token_expiry"]


@admin.register(SimBusiness)
class SimBusinessAdmin(admin.ModelAdmin):
    list_display = ["business_id", "name", "managed_accounts_since"]


@admin.register(SimPerson)
class SimPersonAdmin(admin.ModelAdmin):
    list_display = ["user_id", "name", "is_managed_account"]


@admin.register(SimAsset)
class SimAssetAdmin(admin.ModelAdmin):
    list_display = ["asset_id", "kind", "name", "owner"]
    list_filter = ["kind"]
    list_select_related = ["owner"]


@admin.register(SimToken)
class SimTokenAdmin(admin.ModelAdmin):
    list_display = ["id", "type", "app", "business", "issued_at", "expires_at", "invalid_subcode"]
    list_filter = ["type", "invalid_subcode"]
    list_select_related = ["app", "business"]
    fields = ["type", "app", "business", "scopes", "asset_ids", "issued_at", "expires_at", "invalid_subcode"]
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(SimDelivery)
class SimDeliveryAdmin(admin.ModelAdmin):
    list_display = ["sent_at", "kind", "url", "status_code", "error"]
    fields = ["kind", "url", "status_code", "error", "sent_at"]  # the body holds a signed_request
    readonly_fields = fields
