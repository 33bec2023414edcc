"""Admin pieces shared by the apps: read-only history, audited actions, badges, relative dates,
"ends within" filters and a paginator that does not count a million rows for a page of a hundred."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta

from django.contrib import admin
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

# Status values and the colour family their badge gets (static/css/admin.css: .badge-<tone>).
TONES = {
    "ok": {"active", "succeeded", "sent", "finished", "completed", "verified", "live", "connected"},
    "warn": {"expiring", "needs_reauth", "onboarding", "pending", "sending", "opened", "queued", "running"},
    "bad": {"invalid", "ended", "failed", "disconnected", "needs_reauthorization", "expired", "rejected", "lost"},
    "muted": {"revoked", "superseded", "removed", "cancelled", "offboarded", "not_queued", "not_connected"},
}
TONE_OF = {value: tone for tone, values in TONES.items() for value in values}


def show_secret_once(request, admin_site, template: str, context: dict):
    """The page that shows a new secret once (a webhook signing secret, an API credential's secret).

    It is in this response's HTML only: never in the session or a message cookie, never cached.
    """
    from django.template.response import TemplateResponse

    response = TemplateResponse(request, template, {**admin_site.each_context(request), **context})
    response["Cache-Control"] = "no-store"
    return response


class ReadOnlyAdminMixin:
    """A record staff read but never add, change or delete from the admin (audit trails, counters)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AuditedActionsMixin:
    """Every admin action run is written to the admin's log (who, which action, on which rows).

    Adding, changing and deleting are logged by Django itself; actions are not, so this closes
    the gap. Each model admin of the portal includes it (console's tests check that they all do).
    """

    def response_action(self, request, queryset):
        action = request.POST.get("action", "")
        selected = request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME)
        if action and selected and request.user.is_authenticated and action in self.get_actions(request):
            _, _, description = self.get_actions(request)[action]
            rows = queryset.model._default_manager.filter(pk__in=selected[:1000])
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=list(rows),
                action_flag=CHANGE,
                change_message=f"Ran the action “{description}” ({action}) on {len(selected)} selected.",
            )
        return super().response_action(request, queryset)


def status_badge(value: str, label: str) -> str:
    return format_html('<span class="badge badge-{}">{}</span>', TONE_OF.get(value, "info"), label)


def relative_when(moment: datetime | None, *, now: datetime | None = None, past: str = "ended",
                  future: str = "ends", never: str = "never", alarm: bool = True) -> str:
    """ "ends in 3 days", "ended 2 days ago", "ends today", with the exact time as a tooltip."""
    if moment is None:
        return never
    now = now or timezone.now()
    delta = moment - now
    days = abs(delta) // timedelta(days=1)
    if abs(delta) < timedelta(days=1):
        hours = abs(delta) // timedelta(hours=1)
        span = f"{hours} hour{'s' if hours != 1 else ''}" if hours else "minutes"
    else:
        span = f"{days} day{'s' if days != 1 else ''}"
    text = (f"{future} in {span}" if delta >= timedelta(0) else f"{past} {span} ago").strip()
    exact = timezone.localtime(moment).strftime("%Y-%m-%d %H:%M %Z")
    tone = "plain" if not alarm else "bad" if delta < timedelta(0) else "warn" if delta < timedelta(days=7) else "plain"
    return format_html('<time class="when when-{}" datetime="{}" title="{}">{}</time>', tone,
                       moment.isoformat(), exact, text)


def day_bounds(value: str) -> tuple[datetime, datetime] | None:
    """ "day:2026-03-14" -> that day's start and the next day's, in the current time zone."""
    try:
        day = date.fromisoformat(value.removeprefix("day:"))
    except ValueError:
        return None
    start = timezone.make_aware(datetime.combine(day, time.min))
    return start, start + timedelta(days=1)


class EndsWithinFilter(admin.SimpleListFilter):
    """Already ended, ends within N days, or ends on one day ("day:YYYY-MM-DD", the first screen's
    chart), on the field(s) named by ``field_names`` (any of them)."""

    title = "ends within"
    parameter_name = "ends_within"
    field_names: tuple[str, ...] = ("expires_at",)
    DAYS = ("1", "7", "14", "30")

    def lookups(self, request, model_admin):
        return [("ended", "Already ended"), *((days, f"{days} day{'s' if days != '1' else ''}") for days in self.DAYS)]

    def bounds(self) -> tuple[datetime | None, datetime] | None:
        now, value = timezone.now(), self.value() or ""
        if value == "ended":
            return None, now
        if value in self.DAYS:
            return now, now + timedelta(days=int(value))
        if value.startswith("day:"):
            return day_bounds(value)
        return None if not value else (now, now)

    def queryset(self, request, queryset):
        if not self.value() or (bounds := self.bounds()) is None:
            return queryset
        start, end = bounds
        condition = Q()
        for name in self.field_names:
            within = Q(**{f"{name}__lte": end}) if start is None else Q(**{f"{name}__gt": start, f"{name}__lte": end})
            condition |= within
        return queryset.filter(condition)


class FixedChoicesFilter(admin.SimpleListFilter):
    """A filter on a plain text field with a known set of values: no SELECT DISTINCT over the table
    to find its choices (Django's default for such fields), which costs a scan at a million rows."""

    field_name = ""
    prefix_match = ()  # values matched as a prefix (e.g. "staff:" for any staff member)

    def choices_for(self, request) -> list[tuple[str, str]]:
        raise NotImplementedError

    def lookups(self, request, model_admin):
        return self.choices_for(request)

    def queryset(self, request, queryset):
        value = self.value()
        if not value or value not in dict(self.choices_for(request)):
            return queryset
        if value in self.prefix_match:
            return queryset.filter(**{f"{self.field_name}__startswith": value})
        return queryset.filter(**{self.field_name: value})


class CreatedWithinFilter(admin.SimpleListFilter):
    """Rows from the last N days (the first screen's 30-day figures link here)."""

    title = "in the last"
    parameter_name = "created_within"
    field_name = "created_at"
    DAYS = ("1", "7", "30", "90")

    def lookups(self, request, model_admin):
        return [(days, f"{days} day{'s' if days != '1' else ''}") for days in self.DAYS]

    def queryset(self, request, queryset):
        if (self.value() or "").isdigit():
            return queryset.filter(**{f"{self.field_name}__gte": timezone.now() - timedelta(days=int(self.value()))})
        return queryset


# Above this many rows (by the planner's estimate) a page says "about N" instead of counting.
EXACT_COUNT_LIMIT = 10_000


class EstimatedCountPaginator(Paginator):
    """Counts exactly up to EXACT_COUNT_LIMIT rows; above that takes PostgreSQL's estimate.

    The admin counts the whole filtered list to draw page links; on a million grants that
    COUNT(*) alone costs more than the page. The planner's row estimate (EXPLAIN) is free and
    good to a few percent, which is all a page number needs. Other databases count.
    """

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        connection = connections[getattr(self.object_list, "db", "default")]
        if query is None or connection.vendor != "postgresql":
            return super().count
        estimate = _planner_rows(self.object_list)
        if estimate is None or estimate <= EXACT_COUNT_LIMIT:
            return super().count
        return estimate


def _planner_rows(queryset) -> int | None:
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    connection = connections[queryset.db]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):
        plan = json.loads(plan)
    try:
        return int(plan[0]["Plan"]["Plan Rows"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None


class PortalModelAdmin(AuditedActionsMixin, admin.ModelAdmin):
    """The base of every model admin in the portal: audited actions, no full count on big lists."""

    show_full_result_count = False  # "99 results (1,000,000 total)" costs a second count over the table
    list_per_page = 50  # what a 1366 x 768 screen shows in two scrolls; rendering costs per row
    show_facets = admin.ShowFacets.NEVER  # a count per filter choice is a scan per choice at a million rows

    paginator = EstimatedCountPaginator
