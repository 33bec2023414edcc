from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from common.admin import PortalModelAdmin, ReadOnlyAdminMixin, relative_when, status_badge

from .models import StaffJob

REFRESH_SECONDS = 2  # a job's page reloads itself while it runs (no JavaScript needed)


def show_job(model_admin, request, job: StaffJob) -> HttpResponseRedirect:
    """What an admin action returns after starting a job: its page, where progress shows."""
    model_admin.message_user(request, f"Started: {job.title}. This page follows it.")
    return HttpResponseRedirect(reverse("admin:staffjobs_staffjob_change", args=[job.pk]))


@admin.register(StaffJob)
class StaffJobAdmin(ReadOnlyAdminMixin, PortalModelAdmin):
    list_display = ("title", "status_badge", "progress", "requested_by", "created")
    list_filter = ("status", "kind")
    list_select_related = ("requested_by",)
    search_fields = ("title", "requested_by__username")
    fields = ("title", "status_badge", "progress", "outcome_list", "result_link", "requested_by", "created_at",
              "started_at", "finished_at")
    readonly_fields = fields
    change_form_template = "admin/staffjobs/staffjob/change_form.html"

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: StaffJob) -> str:
        return status_badge(obj.status, obj.get_status_display())

    @admin.display(description="Progress")
    def progress(self, obj: StaffJob) -> str:
        if obj.status == StaffJob.Status.QUEUED:
            return "waiting for a worker"
        return format_html('<progress class="job" max="100" value="{}">{}%</progress> {} of {}', obj.percent(),
                           obj.percent(), obj.items_done, obj.items_total)

    @admin.display(description="Started")
    def created(self, obj: StaffJob) -> str:
        return relative_when(obj.created_at, past="", alarm=False)

    @admin.display(description="What happened")
    def outcome_list(self, obj: StaffJob) -> str:
        if not obj.outcome:
            return "Nothing yet." if not obj.is_done else "Nothing to report."
        lines = ((line.get("level", "info"), line.get("text", "")) for line in obj.outcome)
        items = format_html_join("", '<li class="level-{}">{}</li>', lines)
        return format_html('<ul class="advice">{}</ul>', items)

    @admin.display(description="Result")
    def result_link(self, obj: StaffJob) -> str:
        return format_html('<a href="{}">Open the result</a>', obj.result_url) if obj.result_url else "—"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        running = StaffJob.objects.filter(pk=object_id, status__in=("queued", "running")).exists()
        extra = {"refresh_seconds": REFRESH_SECONDS if running else None, **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context=extra)
