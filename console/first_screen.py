"""The figures of the admin's first screen: who breaks next and what to do (docs/decisions.md D85).

Every figure is one SQL aggregate (counts grouped by state or by day, or filtered counts), and
every figure comes with the URL of the filtered list behind it. Nothing here loops over tokens,
grants or clients in Python: the queries are the same at ten clients and at a hundred thousand.

At a large provider's size those aggregates scan hundreds of thousands of rows (about a second
of database time in all), too slow for a page opened all day. So they are kept as a snapshot:
``refresh_snapshot`` computes them (beat, every minute) and the page reads the latest one, saying
when it was taken. A page that finds no snapshot, or one older than STALE_AFTER (beat not
running), computes it there and then.
"""

from __future__ import annotations

import time as clock
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone

from onboarding.models import ClientBusiness, Invitation, LoginAttempt
from tokens.models import AccessToken, AssetGrant, ClientHealth, Reminder, SweepRun
from verification import gating, limits
from verification.upkeep import active_rule, upkeep_figures

CHART_DAYS = 60  # how far ahead the chart of access ending looks
STALE_AFTER = timedelta(minutes=10)  # beat refreshes every minute; older means beat is not running
FUNNEL_DAYS = 30
LIVE_GRANTS = (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING)


@dataclass(frozen=True)
class Figure:
    label: str
    count: int
    url: str
    tone: str = "info"


@dataclass
class ChartDay:
    day: date
    tokens: int = 0
    grants: int = 0
    tokens_url: str = ""
    grants_url: str = ""


@dataclass
class FirstScreen:
    clients_by_state: list[Figure]
    chart: list[ChartDay]
    ending_soon: list[Figure]
    reminders: list[Figure]
    funnel: list[Figure]
    standing: dict = field(default_factory=dict)
    sweep: list[Figure] = field(default_factory=list)

    @property
    def chart_max(self) -> int:
        return max((day.tokens + day.grants for day in self.chart), default=0)


def _changelist(app_model: str, **params) -> str:
    url = reverse(f"admin:{app_model}_changelist")
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{url}?{query}" if query else url


State = ClientHealth.State
STATE_TONES = {State.CONNECTED: "ok", State.EXPIRING: "warn", State.NEEDS_REAUTH: "bad",
               State.DISCONNECTED: "bad", State.NOT_CONNECTED: "info"}
BREAK_SOONEST_ROWS = 20


def clients_by_state() -> list[Figure]:
    """Clients by their connection's state (tokens.health, D25), offboarded clients counted apart.

    A client with no health row has never connected: the total minus the rows counted.
    """
    offboarded = ClientBusiness.Status.OFFBOARDED
    counts = dict(ClientHealth.objects.exclude(client__status=offboarded).values_list("state")
                  .annotate(n=Count("pk")).order_by())
    totals = ClientBusiness.objects.aggregate(all=Count("pk"), offboarded=Count("pk", filter=Q(status=offboarded)))
    counted = sum(n for state, n in counts.items() if state != State.NOT_CONNECTED)
    counts[State.NOT_CONNECTED] = totals["all"] - totals["offboarded"] - counted
    figures = [
        Figure(label, counts.get(value, 0), _changelist("onboarding_clientbusiness", connection=value),
               STATE_TONES[value])
        for value, label in State.choices
    ]
    figures.append(Figure("Offboarded", totals["offboarded"],
                          _changelist("onboarding_clientbusiness", status__exact=offboarded), "muted"))
    return figures


def break_soonest(limit: int = BREAK_SOONEST_ROWS) -> list[ClientHealth]:
    """The clients still connected whose connection breaks first, with the day and the reason, and
    the reconnect campaign each is in (``row.campaign``: an open or sending one, else None).

    Read live (not from the snapshot): two queries (the health rows' index, the campaigns of those
    clients), so a reconnect link just sent or a reconnect just made shows at once.
    """
    from campaigns.models import Campaign, Recipient

    rows = list(
        ClientHealth.objects.filter(state__in=(State.CONNECTED, State.EXPIRING), breaks_at__isnull=False)
        .exclude(client__status=ClientBusiness.Status.OFFBOARDED)
        .select_related("client").order_by("breaks_at", "client_id")[:limit]
    )
    running = (Recipient.objects.filter(client_id__in=[row.client_id for row in rows],
                                        campaign__status__in=(Campaign.Status.SENDING, Campaign.Status.OPEN))
               .select_related("campaign").order_by("-campaign__created_at"))
    campaigns: dict[int, Campaign] = {}
    for recipient in running:
        campaigns.setdefault(recipient.client_id, recipient.campaign)
    for row in rows:
        row.campaign = campaigns.get(row.client_id)
    return rows


def access_ending_chart(now: datetime, days: int = CHART_DAYS) -> list[ChartDay]:
    """Live tokens (expiry or data access) and live grants (the asset's access end) ending, per day."""
    until = now + timedelta(days=days)
    tokens = (
        AccessToken.objects.filter(status__in=AccessToken.LIVE_STATUSES)
        .filter(Q(expires_at__gt=now, expires_at__lte=until)
                | Q(data_access_expires_at__gt=now, data_access_expires_at__lte=until))
        .annotate(day=TruncDate(AccessToken.ends_at_expression())).values_list("day").annotate(n=Count("pk")).order_by()
    )
    grants = (
        AssetGrant.objects.filter(status__in=LIVE_GRANTS, user_access_expire_time__gt=now,
                                  user_access_expire_time__lte=until)
        .annotate(day=TruncDate("user_access_expire_time")).values_list("day").annotate(n=Count("pk")).order_by()
    )
    token_counts, grant_counts = dict(tokens), dict(grants)
    today = timezone.localdate(now)
    chart = []
    for offset in range(days + 1):
        day = today + timedelta(days=offset)
        chart.append(ChartDay(
            day=day, tokens=token_counts.get(day, 0), grants=grant_counts.get(day, 0),
            tokens_url=_changelist("tokens_accesstoken", ends_within=f"day:{day.isoformat()}"),
            grants_url=_changelist("tokens_assetgrant", access_ends_within=f"day:{day.isoformat()}"),
        ))
    return chart


def ending_soon(now: datetime) -> list[Figure]:
    """What ends within 7 and 30 days, tokens and grants, each a link to its list."""
    live_tokens = AccessToken.objects.filter(status__in=AccessToken.LIVE_STATUSES)
    live_grants = AssetGrant.objects.filter(status__in=LIVE_GRANTS)
    figures = []
    for days in (7, 30):
        until = now + timedelta(days=days)
        tokens = live_tokens.filter(Q(expires_at__gt=now, expires_at__lte=until)
                                    | Q(data_access_expires_at__gt=now, data_access_expires_at__lte=until)).count()
        grants = live_grants.filter(user_access_expire_time__gt=now, user_access_expire_time__lte=until).count()
        tone = "bad" if days == 7 else "warn"
        figures += [
            Figure(f"tokens end within {days} days", tokens, _changelist("tokens_accesstoken", ends_within=days),
                   tone),
            Figure(f"asset grants end within {days} days", grants,
                   _changelist("tokens_assetgrant", access_ends_within=days), tone),
        ]
    return figures


def reminder_figures(now: datetime) -> list[Figure]:
    since = now - timedelta(days=FUNNEL_DAYS)
    counts = Reminder.objects.aggregate(
        sent=Count("pk", filter=Q(status=Reminder.Status.SENT, sent_at__gte=since)),
        failed=Count("pk", filter=Q(status=Reminder.Status.FAILED)),
        pending=Count("pk", filter=Q(status__in=(Reminder.Status.PENDING, Reminder.Status.SENDING))),
        late=Count("pk", filter=Q(status=Reminder.Status.UNDELIVERED)),
        nobody=Count("pk", filter=Q(status=Reminder.Status.NOBODY)),
    )
    return [
        Figure(f"sent in {FUNNEL_DAYS} days", counts["sent"],
               _changelist("tokens_reminder", status__exact="sent", sent_within=FUNNEL_DAYS), "ok"),
        Figure("failed (gave up)", counts["failed"], _changelist("tokens_reminder", status__exact="failed"), "bad"),
        Figure("waiting to be sent", counts["pending"], _changelist("tokens_reminder", status__exact="pending"),
               "warn"),
        # Staff are emailed about these too (verification.alerts.check_reminder_alerts, D67).
        Figure("not delivered in time", counts["late"], _changelist("tokens_reminder", status__exact="undelivered"),
               "bad"),
        Figure("access ending, nobody to tell", counts["nobody"],
               _changelist("tokens_reminder", status__exact="nobody"), "bad"),
    ]


def sweep_figures(now: datetime) -> list[Figure]:
    """The health sweep in brief: what the last finished run checked, and runs that lost tokens (D60)."""
    since = now - timedelta(days=7)
    last = SweepRun.objects.filter(status=SweepRun.Status.FINISHED).order_by("-started_at").first()
    failed = SweepRun.objects.filter(status=SweepRun.Status.FAILED, started_at__gte=since).aggregate(
        runs=Count("pk"), unchecked=Sum("items_unchecked")
    )
    failed_list = _changelist("tokens_sweeprun", status__exact="failed")
    figures = []
    if last is not None:
        url = reverse("admin:tokens_sweeprun_change", args=[last.pk])
        figures += [
            Figure(f"of {last.items_total} checked by the last sweep", last.items_done, url, "ok"),
            Figure("asked again soon (Meta failed or said wait)", last.errors + last.items_deferred, url, "warn"),
        ]
    return figures + [
        Figure("sweeps failed in 7 days", failed["runs"], failed_list, "bad"),
        Figure("tokens those sweeps never checked (due again)", failed["unchecked"] or 0, failed_list, "bad"),
    ]


def onboarding_funnel(now: datetime) -> list[Figure]:
    since = now - timedelta(days=FUNNEL_DAYS)
    invitations = Invitation.objects.filter(created_at__gte=since, mode=Invitation.Mode.ONBOARD).aggregate(
        invited=Count("pk"), opened=Count("pk", filter=Q(opened_at__isnull=False)),
    )
    attempts = LoginAttempt.objects.filter(created_at__gte=since, mode=Invitation.Mode.ONBOARD).aggregate(
        started=Count("pk"),
        completed=Count("pk", filter=Q(outcome=LoginAttempt.Outcome.SUCCEEDED)),
        failed=Count("pk", filter=Q(outcome__in=(LoginAttempt.Outcome.FAILED, LoginAttempt.Outcome.CANCELLED))),
    )
    recent = {"created_within": FUNNEL_DAYS, "mode__exact": "onboard"}
    return [
        Figure("invited", invitations["invited"], _changelist("onboarding_invitation", **recent)),
        Figure("opened", invitations["opened"], _changelist("onboarding_invitation", **recent, state="opened_ever")),
        Figure("started", attempts["started"], _changelist("onboarding_loginattempt", **recent)),
        Figure("completed", attempts["completed"],
               _changelist("onboarding_loginattempt", **recent, outcome__exact="succeeded"), "ok"),
        Figure("failed or cancelled", attempts["failed"],
               _changelist("onboarding_loginattempt", **recent, outcome_group="unsuccessful"), "bad"),
    ]


def standing_with_meta(today) -> dict:
    """What the risk dashboard shows, in brief: the deadline, what Meta would refuse, upkeep, system users."""
    provider = gating.provider_record()
    rule = active_rule()
    figures = upkeep_figures(rule) if rule else None
    risk = gating.risk_counts_by_when(today)
    return {
        "provider_status": provider.get_status_display() if provider else None,
        "days_left": provider.days_until_deadline(today) if provider else None,
        "risk_today": asdict(risk["today"]),
        "risk_after_deadline": asdict(risk["after_deadline"]),
        "rule_name": rule.name if rule else None,
        "upkeep_at_risk": figures.at_risk if figures else None,
        "upkeep_calls": figures.calls if figures else None,
        "upkeep_error_rate": figures.error_rate if figures else None,
        "fullest_system_users": [(u.client_name, u.in_use, u.headroom) for u in limits.system_user_usage(limit=3)],
    }


def compute(now: datetime | None = None) -> FirstScreen:
    now = now or timezone.now()
    return FirstScreen(
        clients_by_state=clients_by_state(),
        chart=access_ending_chart(now),
        ending_soon=ending_soon(now),
        reminders=reminder_figures(now),
        funnel=onboarding_funnel(now),
        standing=standing_with_meta(timezone.localdate(now)),
        sweep=sweep_figures(now),
    )


def refresh_snapshot(now: datetime | None = None):
    """Compute the figures and keep them as the one current snapshot (beat, every minute)."""
    from .models import FirstScreenSnapshot

    now = now or timezone.now()
    started = clock.perf_counter()
    screen = compute(now)
    figures = asdict(screen)
    for day in figures["chart"]:
        day["day"] = day["day"].isoformat()
    snapshot, _ = FirstScreenSnapshot.objects.update_or_create(
        pk=1, defaults={"computed_at": now, "seconds": clock.perf_counter() - started, "figures": figures}
    )
    return snapshot


def current(now: datetime | None = None) -> tuple[FirstScreen, datetime]:
    """The latest figures and when they were computed (computed now if there are none fresh enough)."""
    from .models import FirstScreenSnapshot

    now = now or timezone.now()
    snapshot = FirstScreenSnapshot.objects.filter(pk=1).first()
    if snapshot is None or snapshot.computed_at < now - STALE_AFTER:
        snapshot = refresh_snapshot(now)
    figures = snapshot.figures
    return FirstScreen(
        clients_by_state=[Figure(**f) for f in figures["clients_by_state"]],
        chart=[ChartDay(**{**d, "day": date.fromisoformat(d["day"])}) for d in figures["chart"]],
        ending_soon=[Figure(**f) for f in figures["ending_soon"]],
        reminders=[Figure(**f) for f in figures["reminders"]],
        funnel=[Figure(**f) for f in figures["funnel"]],
        standing=figures["standing"],
        sweep=[Figure(**f) for f in figures.get("sweep", [])],  # absent from snapshots taken before it
    ), snapshot.computed_at
