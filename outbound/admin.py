"""Staff register endpoints, read the outbox and its deliveries, and redeliver.

The signing secret is shown once, in the response to the form that created (or rotated) it,
and never again: no form field, column or page displays it, and it never goes through the
session or a message cookie.
"""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from common.admin import PortalModelAdmin, ReadOnlyAdminMixin, show_secret_once

from . import delivery, endpoints
from .models import EVENT_DESCRIPTIONS, Delivery, Event, EventType, WebhookEndpoint


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(label="URL", max_length=500, assume_scheme="https", help_text="Where events are POSTed.")
    event_types = forms.MultipleChoiceField(
        choices=[(value, f"{value}: {EVENT_DESCRIPTIONS[value]}") for value in EventType.values],
        widget=forms.CheckboxSelectMultiple,
        initial=EventType.values,
        help_text="Only these are sent to this endpoint.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["name", "url", "event_types"]

    def clean_url(self):
        url = self.cleaned_data["url"]
        endpoints.validate_endpoint_url(url)
        return url


def _secret_page(request, admin_site, endpoint: WebhookEndpoint, secret: str, *, rotated: bool) -> TemplateResponse:
    return show_secret_once(request, admin_site, "admin/outbound/webhookendpoint/secret.html", {
        "title": "Signing secret",
        "endpoint": endpoint,
        "secret": secret,
        "rotated": rotated,
        "opts": WebhookEndpoint._meta,
        "change_url": reverse("admin:outbound_webhookendpoint_change", args=[endpoint.pk]),
    })


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(PortalModelAdmin):
    form = WebhookEndpointForm
    list_display = ("name", "url", "types", "is_active", "failing_since", "last_success_at", "disabled_at")
    list_filter = ("is_active",)
    search_fields = ("name", "url")
    state_fields = (
        "is_active", "failing_since", "last_success_at", "disabled_at", "disabled_reason", "staff_told_at",
        "staff_alert_error", "created_at", "updated_at", "deliveries_link",
    )  # fmt: skip
    readonly_fields = ("signing_secret", *state_fields)
    actions = ["rotate_secret", "enable_again", "disable"]

    def get_fieldsets(self, request, obj=None):
        main = (None, {"fields": ("name", "url", "event_types", "signing_secret")})
        return [main] if obj is None else [main, ("State", {"fields": self.state_fields})]

    def get_queryset(self, request):
        # Pages never need the secrets: they are not decrypted to draw a list or a form.
        return super().get_queryset(request).defer("secret", "previous_secret")

    @admin.display(description="Events")
    def types(self, obj: WebhookEndpoint) -> str:
        return ", ".join(obj.event_types) or "—"

    @admin.display(description="Signing secret")
    def signing_secret(self, obj: WebhookEndpoint) -> str:
        if not obj.pk:
            return "Created when you save; shown once on the next page."
        text = f"Set {obj.secret_set_at:%Y-%m-%d %H:%M} UTC; shown only when it was created. "
        if obj.previous_secret_until:
            text += f"The previous secret also signs until {obj.previous_secret_until:%Y-%m-%d %H:%M} UTC. "
        return text + "Use “Rotate the signing secret” to get a new one."

    @admin.display(description="Deliveries")
    def deliveries_link(self, obj: WebhookEndpoint) -> str:
        if not obj.pk:
            return "—"
        url = reverse("admin:outbound_delivery_changelist") + f"?endpoint__id__exact={obj.pk}"
        return format_html('<a href="{}">{} deliveries</a>', url, obj.deliveries.count())

    def save_model(self, request, obj, form, change):
        if not change:
            request._outbound_new_secret = endpoints.issue_secret(obj)
        super().save_model(request, obj, form, change)

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "_outbound_new_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return _secret_page(request, self.admin_site, obj, secret, rotated=False)

    @admin.action(description="Rotate the signing secret (shown once; the old one signs for a day more)",
                  permissions=["change"])
    def rotate_secret(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one endpoint: its new secret is shown once.", messages.ERROR)
            return None
        endpoint = queryset.get()
        return _secret_page(request, self.admin_site, endpoint, endpoints.rotate_secret(endpoint), rotated=True)

    @admin.action(description="Enable again (after the receiver is fixed)", permissions=["change"])
    def enable_again(self, request, queryset):
        count = endpoints.enable_again(queryset.values_list("pk", flat=True))
        self.message_user(request, f"{count} endpoint(s) enabled. Redeliver what they missed from Deliveries.")

    @admin.action(description="Disable", permissions=["change"])
    def disable(self, request, queryset):
        user = request.user.get_username()
        count = endpoints.disable(queryset.values_list("pk", flat=True), f"Disabled by {user}.")
        self.message_user(request, f"{count} endpoint(s) disabled.")


class DeliveryInline(admin.TabularInline):
    model = Delivery
    extra = 0
    fields = ("endpoint", "status", "attempts", "last_status_code", "last_error", "last_attempt_at", "delivered_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    list_display = ("event_id", "type", "client", "occurred_at", "delivery_summary")
    list_filter = ("type",)
    list_select_related = ("client",)
    search_fields = ("event_id", "key", "client__name")
    date_hierarchy = "occurred_at"
    fields = ("event_id", "type", "key", "client", "occurred_at", "body")
    readonly_fields = fields
    inlines = [DeliveryInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("deliveries")

    @admin.display(description="Deliveries")
    def delivery_summary(self, obj: Event) -> str:
        statuses = [item.status for item in obj.deliveries.all()]
        if not statuses:
            return "none (no endpoint heard this type)"
        return ", ".join(f"{statuses.count(status)} {status}" for status in sorted(set(statuses)))

    @admin.display(description="Body sent (before signing)")
    def body(self, obj: Event) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.envelope(), indent=2, sort_keys=True))


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    list_display = (
        "event_link", "endpoint", "status", "attempts", "last_status_code", "last_attempt_at", "next_attempt_at",
    )
    list_filter = ("status", "endpoint", "event__type")
    list_select_related = ("event", "endpoint")
    search_fields = ("event__event_id", "event__client__name")
    fields = (
        "event_link", "endpoint", "status", "attempts", "first_attempt_at", "last_attempt_at", "next_attempt_at",
        "last_status_code", "last_error", "delivered_at", "created_at",
    )  # fmt: skip
    readonly_fields = fields
    actions = ["redeliver"]

    @admin.display(description="Event")
    def event_link(self, obj: Delivery) -> str:
        url = reverse("admin:outbound_event_change", args=[obj.event_id])
        return format_html('<a href="{}">{}</a> {}', url, obj.event.type, obj.event.event_id)

    def has_redeliver_permission(self, request) -> bool:
        return request.user.has_perm("outbound.change_delivery")

    @admin.action(description="Redeliver (same event id, signed afresh, a new retry window)", permissions=["redeliver"])
    def redeliver(self, request, queryset):
        queued, refused = delivery.redeliver(queryset.values_list("pk", flat=True))
        self.message_user(request, f"{queued} delivery(ies) queued again.")
        if refused:
            self.message_user(
                request,
                f"{refused} not queued: their endpoint is disabled (enable it again first) or an attempt is running.",
                messages.WARNING,
            )


