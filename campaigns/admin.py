"""Campaigns in the staff console: start one from a filter, follow it per client, remind, close (operators)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse

from common.admin import PortalModelAdmin, relative_when, status_badge
from onboarding.models import LoginConfiguration

from . import service
from .models import Campaign

REFRESH_SECONDS = 3  # the campaign page reloads itself while its jobs run


class CampaignForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="For staff: what this campaign is about.")
    kind = forms.ChoiceField(choices=Campaign.Kind.choices, initial=Campaign.Kind.RECONNECT)
    selection = forms.ChoiceField(choices=Campaign.Selection.choices, label="Who")
    days = forms.IntegerField(min_value=1, max_value=365, initial=30, required=False,
                              help_text="With “access ends within N days”.")
    configuration = forms.ModelChoiceField(LoginConfiguration.objects.all(), required=False,
                                           help_text="With “every client of a configuration”.")
    business_id = forms.RegexField(regex=r"^[0-9]{1,30}$", required=False, label="Meta business id",
                                   help_text="With the managed-accounts filter: only this client business "
                                             "(empty: every one Meta reports as moving).")
    target_configuration = forms.ModelChoiceField(
        LoginConfiguration.objects.filter(token_type=LoginConfiguration.TokenType.SYSTEM_USER, is_active=True),
        required=False, label="System-user configuration",
        help_text="When moving clients to a system user: the configuration the links open.")
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), max_length=4000,
                              help_text="Shown in the email and on the link's page, under the client's name.")

    def clean(self):
        data = super().clean()
        selection = data.get("selection")
        if selection == Campaign.Selection.CONFIGURATION and not data.get("configuration"):
            self.add_error("configuration", "Choose the configuration whose clients to ask.")
        if selection == Campaign.Selection.ACCESS_ENDING and not data.get("days"):
            self.add_error("days", "Say within how many days access ends.")
        if data.get("kind") == Campaign.Kind.MOVE_TO_SYSTEM_USER and not data.get("target_configuration"):
            self.add_error("target_configuration", "Choose the system-user configuration the links open.")
        return data

    def params(self) -> dict:
        data, selection = self.cleaned_data, self.cleaned_data["selection"]
        if selection == Campaign.Selection.ACCESS_ENDING:
            return {"days": data["days"]}
        if selection == Campaign.Selection.CONFIGURATION:
            return {"configuration_id": data["configuration"].pk}
        if selection == Campaign.Selection.MIGRATING_BUSINESS:
            return {"business_id": data.get("business_id") or ""}
        return {}


@admin.register(Campaign)
class CampaignAdmin(PortalModelAdmin):
    list_display = ("name", "kind", "status_badge", "recipient_count", "started")
    list_filter = ("status", "kind")
    search_fields = ("name",)
    change_form_template = "admin/campaigns/campaign/campaign_page.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(recipient_total=Count("recipients"))

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Campaign) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="Recipients", ordering="recipient_total")
    def recipient_count(self, obj: Campaign) -> int:
        return obj.recipient_total

    @admin.display(description="Started", ordering="created_at")
    def started(self, obj: Campaign) -> str:
        return relative_when(obj.created_at, past="", alarm=False)

    def has_delete_permission(self, request, obj=None):
        return False  # the history of who was asked stays

    def get_urls(self):
        act = self.admin_site.admin_view
        return [
            path("<int:pk>/remind/", act(self.remind_view), name="campaigns_campaign_remind"),
            path("<int:pk>/close/", act(self.close_view), name="campaigns_campaign_close"),
            *super().get_urls(),
        ]

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = CampaignForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                started = service.create_campaign(
                    name=data["name"], kind=data["kind"], selection=data["selection"], params=form.params(),
                    message=data["message"], target_configuration=data.get("target_configuration"),
                    user=request.user)  # fmt: skip
            except service.CampaignError as error:
                form.add_error(None, str(error))
            else:
                campaign = started.campaign
                self.log_addition(request, campaign, f"Started the campaign with {campaign.recipients.count()} "
                                                     "recipient(s).")  # fmt: skip
                for sentence in started.skipped[:20]:
                    self.message_user(request, f"Left out: {sentence}", messages.WARNING)
                self.message_user(request, f"Started “{campaign.name}”: {len(started.jobs)} sending job(s) queued.")
                return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
        return TemplateResponse(request, "admin/campaigns/campaign/start.html", {
            **self.admin_site.each_context(request), "title": "Start a reconnect campaign", "form": form,
            "opts": self.model._meta,
        })  # fmt: skip

    def change_view(self, request, object_id, form_url="", extra_context=None):
        campaign = self.get_object(request, object_id)
        if campaign is None:
            return self._get_obj_does_not_exist_redirect(request, self.model._meta, object_id)
        if not self.has_view_or_change_permission(request, campaign):
            raise PermissionDenied
        totals, clients = service.progress(campaign)
        jobs = list(service.campaign_jobs(campaign).order_by("pk"))
        running = [job for job in jobs if not job.is_done]
        context = {
            **self.admin_site.each_context(request), "title": campaign.name, "campaign": campaign,
            "opts": self.model._meta, "totals": totals, "clients": clients[:500], "client_total": len(clients),
            "jobs": jobs, "jobs_done": sum(job.items_done for job in jobs),
            "jobs_total": sum(job.items_total for job in jobs),
            "can_act": self.has_change_permission(request, campaign) and not campaign.is_closed,
            "not_acted": service.not_acted(campaign).count(), "refresh_seconds": REFRESH_SECONDS if running else None,
        }  # fmt: skip
        response = TemplateResponse(request, self.change_form_template, context)
        if running:
            response["Refresh"] = str(REFRESH_SECONDS)
        return response

    def _campaign_for_action(self, request, pk: int) -> Campaign:
        campaign = get_object_or_404(Campaign, pk=pk)
        if request.method != "POST" or not self.has_change_permission(request, campaign):
            raise PermissionDenied
        return campaign

    def remind_view(self, request, pk: int):
        campaign = self._campaign_for_action(request, pk)
        try:
            jobs = service.remind(campaign, user=request.user)
        except service.CampaignError as error:
            self.message_user(request, str(error), messages.WARNING)
        else:
            count = sum(job.items_total for job in jobs)
            self.log_change(request, campaign, f"Reminded the {count} recipient(s) who hadn't acted.")
            self.message_user(request, f"Reminding the {count} recipient(s) who haven't acted.")
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))

    def close_view(self, request, pk: int):
        campaign = self._campaign_for_action(request, pk)
        if service.close(campaign):
            self.log_change(request, campaign, "Closed the campaign.")
            self.message_user(request, f"“{campaign.name}” is closed: no more sending or reminders.")
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
