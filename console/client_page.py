"""One page per client: everything staff need to see and do about one client (docs/decisions.md D86).

A fixed number of queries whatever the client's size: each list is one query, capped; the audit
timeline merges the token events with the admin's log of staff changes to the client and its tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Case, IntegerField, Prefetch, Q, Value, When

from api.models import ApiUse
from onboarding.models import ClientBusiness, Invitation
from outbound.models import Delivery, Event
from tokens.models import AccessToken, AssetGrant, ClientHealth, Reminder, TokenEvent

LIST_ROWS = 20  # per list; each has a link to the full filtered list
GRANT_ROWS = 200
TIMELINE_ROWS = 40


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    what: str
    actor: str
    message: str
    source: str  # "event" (the token audit trail) or "staff" (the admin's log)


def _live_first():
    return Case(When(status__in=AccessToken.LIVE_STATUSES, then=Value(0)), default=Value(1),
                output_field=IntegerField())


def client_page(client: ClientBusiness) -> dict:
    tokens = list(
        AccessToken.objects.filter(client=client).defer("value").select_related("configuration", "granted_by")
        .annotate(_live_first=_live_first()).order_by("_live_first", "-created_at")[:LIST_ROWS]
    )
    live_ids = [token.pk for token in tokens if token.is_live()]
    grants = list(
        AssetGrant.objects.filter(token_id__in=live_ids).select_related("asset")
        .order_by("user_access_expire_time", "asset__kind", "asset__name")[:GRANT_ROWS]
    )
    reminders = list(Reminder.objects.filter(client=client).order_by("-created_at", "-id")[:LIST_ROWS])
    links = list(Invitation.objects.filter(client=client).select_related("configuration")
                 .order_by("-created_at", "-id")[:LIST_ROWS])
    events = list(
        Event.objects.filter(client=client).order_by("-occurred_at", "-id")
        .prefetch_related(Prefetch("deliveries", queryset=Delivery.objects.select_related("endpoint")))[:LIST_ROWS]
    )
    api_uses = list(ApiUse.objects.filter(client=client).select_related("credential")
                    .order_by("-at", "-id")[:LIST_ROWS])
    return {
        "client": client,
        "api_uses": api_uses,
        # The day it breaks and why (tokens.health, D25): the stored row; none: never connected.
        "health": ClientHealth.objects.filter(client=client).select_related("asset", "token").first(),
        "tokens": tokens,
        "live_token_ids": live_ids,
        "grants": grants,
        "reminders": reminders,
        "links": links,
        "webhook_events": events,
        "timeline": timeline(client),
    }


def timeline(client: ClientBusiness, rows: int = TIMELINE_ROWS) -> list[TimelineEntry]:
    """Token events and staff changes (add, change, delete, actions) on the client and its tokens, newest first."""
    events = [
        TimelineEntry(e.created_at, e.get_kind_display(), e.actor, e.message, "event")
        for e in TokenEvent.objects.filter(client=client).order_by("-created_at", "-id")[:rows]
    ]
    client_type = ContentType.objects.get_for_model(ClientBusiness)
    token_type = ContentType.objects.get_for_model(AccessToken)
    token_ids = [str(pk) for pk in AccessToken.objects.filter(client=client).values_list("pk", flat=True)]
    entries = (
        LogEntry.objects.filter(Q(content_type=client_type, object_id=str(client.pk))
                                | Q(content_type=token_type, object_id__in=token_ids))
        .select_related("user").order_by("-action_time")[:rows]
    )
    staff = [
        TimelineEntry(entry.action_time, {1: "Added", 2: "Changed", 3: "Deleted"}.get(entry.action_flag, "Staff"),
                      f"staff:{entry.user.get_username()}", f"{entry.object_repr}: {entry.get_change_message()}",
                      "staff")
        for entry in entries
    ]
    return sorted(events + staff, key=lambda entry: entry.at, reverse=True)[:rows]
