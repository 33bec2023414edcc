from django.contrib import admin

from .models import (
    AppRole,
    BusinessVerification,
    PermissionAccess,
    TechProviderVerification,
    VerificationTransition,
)


class VerificationTransitionInline(admin.TabularInline):
    model = VerificationTransition
    extra = 0
    can_delete = False
    readonly_fields = ("from_status", "to_status", "actor", "note", "at")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(TechProviderVerification)
class TechProviderVerificationAdmin(admin.ModelAdmin):
    list_display = ("name", "meta_business_id", "is_provider", "status", "deadline", "expected_decision_on")
    list_filter = ("status", "is_provider")
    search_fields = ("name", "meta_business_id")
    inlines = [VerificationTransitionInline]


@admin.register(BusinessVerification)
class BusinessVerificationAdmin(admin.ModelAdmin):
    list_display = ("name", "meta_business_id", "status", "verified_at")
    list_filter = ("status",)


@admin.register(PermissionAccess)
class PermissionAccessAdmin(admin.ModelAdmin):
    list_display = ("permission", "access_level", "review_state")
    list_filter = ("access_level", "review_state")
    search_fields = ("permission",)


@admin.register(AppRole)
class AppRoleAdmin(admin.ModelAdmin):
    list_display = ("name", "role", "meta_user_id", "email")
    list_filter = ("role",)
    search_fields = ("name", "meta_user_id", "email")
