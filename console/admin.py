"""The staff console's pages inside the admin: one page per client, the admin's log, TOTP devices."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.models import LogEntry
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from common.admin import ReadOnlyAdminMixin, relative_when
from onboarding.admin import ClientBusinessAdmin
from onboarding.invitations import create_invitation, invitation_url, refusal_for
from onboarding.models import ClientBusiness, Invitation
from onboarding.staff_jobs import reconnect_configuration
from staffjobs.admin import show_job
from staffjobs.jobs import start_job
from tokens.models import AccessToken

from .client_page import client_page

# onboarding registers the client admin; the console puts the client's page on its change view.
admin.site.unregister(ClientBusiness)


@admin.register(ClientBusiness)
class ClientPageAdmin(ClientBusinessAdmin):
    change_form_template = "admin/console/client_page.html"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        client = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if client is not None:
            extra.update(client_page(client))
            extra.setdefault("title", client.name)
            extra["can_act"] = request.user.has_perm("tokens.change_accesstoken")
        return super().change_view(request, object_id, form_url, extra_context=extra)

    def get_urls(self):
        act = self.admin_site.admin_view
        return [
            path("<int:pk>/check/", act(self.check_client), name="console_client_check"),
            path("<int:pk>/reconnect/", act(self.send_reconnect), name="console_client_reconnect"),
            path("<int:pk>/fresh-link/", act(self.fresh_link), name="console_client_fresh_link"),
            path("<int:pk>/revoke/", act(self.revoke_client), name="console_client_revoke"),
            *super().get_urls(),
        ]

    def _client_for_action(self, request, pk: int) -> ClientBusiness:
        if request.method != "POST" or not request.user.has_perm("tokens.change_accesstoken"):
            raise PermissionDenied
        return get_object_or_404(ClientBusiness, pk=pk)

    def _live_token_ids(self, client) -> list[int]:
        return list(AccessToken.objects.filter(client=client, status__in=AccessToken.LIVE_STATUSES)
                    .order_by("pk").values_list("pk", flat=True))

    def _back(self, client) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:onboarding_clientbusiness_change", args=[client.pk]))

    def check_client(self, request, pk: int):
        client = self._client_for_action(request, pk)
        ids = self._live_token_ids(client)
        if not ids:
            self.message_user(request, f"{client} has no live token to check.", messages.WARNING)
            return self._back(client)
        job = start_job("tokens.check_now", title=f"Check {client}'s {len(ids)} live token(s) with Meta",
                        target_ids=ids, user=request.user)
        return show_job(self, request, job)

    def _refused(self, request, client) -> HttpResponseRedirect | None:
        """A client the portal would refuse gets no link: staff read why instead."""
        refusal = refusal_for(client)
        if refusal:
            self.message_user(request, refusal, messages.ERROR)
            return self._back(client)
        return None

    def send_reconnect(self, request, pk: int):
        client = self._client_for_action(request, pk)
        if refused := self._refused(request, client):
            return refused
        job = start_job("onboarding.send_reconnect_links", title=f"Send {client} a reconnect link",
                        target_ids=[client.pk], user=request.user)
        return show_job(self, request, job)

    def fresh_link(self, request, pk: int):
        """A new reconnect link, shown once on the page for staff to copy (it is not stored in clear)."""
        client = self._client_for_action(request, pk)
        if refused := self._refused(request, client):
            return refused
        configuration = reconnect_configuration(client)
        if configuration is None:
            self.message_user(request, f"{client} has no active configuration to reconnect through.", messages.ERROR)
            return self._back(client)
        invitation, key = create_invitation(client, configuration, created_by=request.user,
                                            mode=Invitation.Mode.RECONNECT)
        self.log_change(request, client, f"Created a reconnect link (invitation #{invitation.pk}) to copy.")
        return self.change_view(request, str(client.pk), extra_context={
            "fresh_link": invitation_url(key), "fresh_link_expires": invitation.expires_at})

    def revoke_client(self, request, pk: int):
        client = self._client_for_action(request, pk)
        ids = self._live_token_ids(client)
        tokens = AccessToken.objects.filter(pk__in=ids).select_related("client")
        return TemplateResponse(request, "admin/tokens/accesstoken/revoke_confirm.html", {
            **self.admin_site.each_context(request),
            "title": f"Revoke {client}'s tokens at Meta",
            "tokens": tokens,
            "count": len(ids),
            "ids": ids,
            "opts": AccessToken._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "form_url": reverse("admin:tokens_accesstoken_changelist"),
        })


@admin.register(LogEntry)
class StaffLogAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every staff change and action in the admin (Django's log, plus console's audited actions)."""

    list_display = ("when", "user", "content_type", "object_repr", "change_message_text")
    list_filter = ("action_flag", "content_type")
    list_select_related = ("user", "content_type")
    search_fields = ("object_repr", "change_message", "user__username")
    ordering = ("-action_time",)

    @admin.display(description="When", ordering="action_time")
    def when(self, obj: LogEntry) -> str:
        return relative_when(obj.action_time, past="", alarm=False)

    @admin.display(description="What")
    def change_message_text(self, obj: LogEntry) -> str:
        return obj.get_change_message()
