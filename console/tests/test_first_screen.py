"""The first screen: figures from SQL aggregates, each a link to the list behind it; kept as a
snapshot that beat refreshes, with queries that do not grow with rows."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console import first_screen
from console.models import FirstScreenSnapshot
from console.tasks import refresh_first_screen
from staffjobs.models import StaffJob
from testsupport.factories import make_asset, make_client, make_configuration, make_grant, make_token
from testsupport.staff import make_staff, sign_in
from tokens import health
from tokens.models import AccessToken

from .world import seed_world

pytestmark = pytest.mark.django_db


def figure(figures, label):
    return next(f for f in figures if f.label == label)


def test_the_figures_count_what_their_lists_show(admin_client):
    seed_world(3)  # tokens end in 3, 4, 5 days; grants' access in 5, 6, 7 days (two a day)
    gone = make_client(name="Gone")
    make_token(gone, status=AccessToken.Status.INVALID)
    health.refresh_clients([gone.pk])
    make_client(name="Waiting", status="invited")
    make_client(name="Old Mill", status="offboarded")
    now = timezone.now()

    screen = first_screen.compute(now)

    needs_reauth = figure(screen.clients_by_state, "Needs reauthorization")
    assert needs_reauth.count == 1 and needs_reauth.url.endswith("?connection=needs_reauthorization")
    assert [(f.label, f.count) for f in screen.clients_by_state] == [
        ("Connected", 0), ("Access ending", 3), ("Needs reauthorization", 1), ("Disconnected", 0),
        ("Not connected yet", 1), ("Offboarded", 1)]
    for state in screen.clients_by_state:  # each figure opens exactly its clients
        listed = admin_client.get(state.url).content.decode().count('class="action-select"')
        assert listed == state.count, state.label
    within_7 = figure(screen.ending_soon, "tokens end within 7 days")
    grants_7 = figure(screen.ending_soon, "asset grants end within 7 days")
    assert (within_7.count, grants_7.count) == (3, 6)
    assert admin_client.get(within_7.url).content.decode().count('class="action-select"') == 3
    assert admin_client.get(grants_7.url).content.decode().count('<td class="field-asset_kind">') == 6


def test_each_bar_of_the_chart_opens_exactly_that_days_tokens(admin_client):
    now = timezone.now().replace(hour=10)
    client = make_client()
    make_token(client, expires_at=now + timedelta(days=2))
    make_token(make_client(name="Two"), expires_at=now + timedelta(days=2, hours=1))
    make_token(make_client(name="Later"), expires_at=now + timedelta(days=9))
    make_grant(make_token(make_client(name="Grants")), make_asset(client), now + timedelta(days=2))

    chart = first_screen.access_ending_chart(now)
    day = next(d for d in chart if d.day == (now + timedelta(days=2)).date())

    assert (day.tokens, day.grants) == (2, 1)
    assert sum(d.tokens for d in chart) == 3 and len(chart) == first_screen.CHART_DAYS + 1
    tokens_page = admin_client.get(day.tokens_url).content.decode()
    assert tokens_page.count('class="action-select"') == 2 and "Later" not in tokens_page
    assert admin_client.get(day.grants_url).content.decode().count('<td class="field-asset_kind">') == 1


def test_the_first_screen_shows_its_figures_as_links_and_marks_what_has_not_landed(client):
    seed_world(2)
    sign_in(client, make_staff("vera", "Viewer"))

    page = client.get("/admin/").content.decode()

    assert "Who breaks next" in page and "<svg" in page and 'class="chart"' in page
    assert '/admin/onboarding/clientbusiness/?connection=expiring"' in page
    assert "/admin/tokens/accesstoken/?ends_within=day:" in page  # a bar's link
    assert "Onboarding, last 30 days" in page and "Standing with Meta" in page
    assert 'class="gap-note"' not in page  # the day it breaks and the campaigns have landed
    assert "Send reconnect link" not in page  # a viewer acts on nothing


def test_the_clients_that_break_soonest_with_the_day_the_reason_and_a_reconnect_link(client):
    now = timezone.now()
    late, soon = make_client(name="Late Cafe"), make_client(name="Soon Bakery")
    make_token(late, expires_at=now + timedelta(days=40))
    make_grant(make_token(soon, expires_at=now + timedelta(days=40)), make_asset(soon, "Soon Ads", kind="ad_account",
                                                                               meta_id="301"), now + timedelta(days=6))
    broken, never = make_client(name="Broken Ltd"), make_client(name="Quiet Co")
    make_token(broken, status=AccessToken.Status.INVALID)
    make_token(never)
    health.refresh_clients([late.pk, soon.pk, broken.pk, never.pk])
    operator = make_staff("olga", "Operator")
    sign_in(client, operator)

    rows = first_screen.break_soonest()
    page = client.get("/admin/").content.decode()

    assert [row.client.name for row in rows] == ["Soon Bakery", "Late Cafe"]  # broken or never ending: not here
    section = page[page.index('id="break-soonest"'):page.index('id="funnel"')]
    assert section.index("Soon Bakery") < section.index("Late Cafe") and "Broken Ltd" not in section
    assert "Access to ad account “Soon Ads” (301) ends on" in section
    assert (now + timedelta(days=6)).strftime("%-d %b %Y") in section
    assert f'action="/admin/onboarding/clientbusiness/{soon.pk}/reconnect/"' in section
    assert "class=\"open-campaign\"" not in section
    sent = client.post(f"/admin/onboarding/clientbusiness/{soon.pk}/reconnect/")
    assert sent.status_code == 302 and StaffJob.objects.get().kind == "onboarding.send_reconnect_links"

    from campaigns.models import Campaign, Recipient

    campaign = Campaign.objects.create(name="Managed accounts, March", selection="access_ending",
                                       selection_params={"days": 30}, message="Please reconnect.", status="open")
    Recipient.objects.create(campaign=campaign, client=soon, configuration=make_configuration())
    page = client.get("/admin/").content.decode()
    section = page[page.index('id="break-soonest"'):page.index('id="funnel"')]
    assert f'href="/admin/campaigns/campaign/{campaign.pk}/change/" class="open-campaign"' in section


def test_the_page_reads_the_snapshot_and_recomputes_only_a_stale_one():
    seed_world(1)
    first, computed_at = first_screen.current()
    with CaptureQueriesContext(connection) as reading:
        again, at = first_screen.current()
    assert at == computed_at and len(reading) == 1  # one row read, nothing recomputed

    FirstScreenSnapshot.objects.update(computed_at=timezone.now() - first_screen.STALE_AFTER - timedelta(seconds=1))
    _, refreshed_at = first_screen.current()
    assert refreshed_at > computed_at


def test_beat_refreshes_the_snapshot_and_its_queries_do_not_grow_with_rows(django_assert_max_num_queries):
    seed_world(2)
    with CaptureQueriesContext(connection) as few:
        refresh_first_screen()
    seed_world(12)
    with django_assert_max_num_queries(len(few)):
        result = refresh_first_screen()
    states = {f["label"]: f["count"] for f in FirstScreenSnapshot.objects.get().figures["clients_by_state"]}
    assert states["Access ending"] == 14
    assert result["seconds"] >= 0


def test_what_meta_would_refuse_is_counted_in_sql_and_agrees_with_the_decision_table(settings):
    from testsupport.factories import make_contact, make_verification_record
    from verification.gating import gating_decision, provider_verified, risk_counts_by_when
    from verification.models import AppRole, PermissionAccess

    make_verification_record("required", notified_on=timezone.localdate() - timedelta(days=10))
    PermissionAccess.objects.update_or_create(permission="ads_read", defaults={"access_level": "advanced"})
    PermissionAccess.objects.update_or_create(permission="pages_show_list", defaults={"access_level": "advanced"})
    role = make_client(name="Role holder")
    AppRole.objects.create(meta_user_id="555", name="Tester", role="tester")
    make_token(role, granted_by=make_contact(role, meta_user_id="555"), scopes=["pages_manage_posts"])
    for n, scopes in enumerate([["ads_read"], ["pages_show_list", "pages_manage_posts"], ["ads_management"], []]):
        make_token(make_client(name=f"C{n}"), scopes=scopes)
    make_token(make_client(name="Revoked"), scopes=["ads_management"], status=AccessToken.Status.REVOKED)

    counts = risk_counts_by_when()

    advanced = set(PermissionAccess.objects.filter(access_level="advanced").values_list("permission", flat=True))
    from graph.permissions import TECH_PROVIDER_GATED
    for when in ("today", "after_deadline"):
        verified = provider_verified(when)
        expected = sum(
            1 for token in AccessToken.objects.filter(status__in=AccessToken.LIVE_STATUSES)
            if any(not gating_decision(has_role=token.granted_by_id is not None and token.client == role,
                                       gated=p in TECH_PROVIDER_GATED, provider_verified=verified,
                                       advanced_access=p in advanced).accepted for p in token.scopes)
        )
        assert counts[when].token_count == expected, when
    assert counts["today"].token_count >= 2


def test_a_token_is_charted_and_listed_on_the_day_it_stops_working_the_earlier_of_its_two_ends(admin_client):
    now = timezone.now().replace(hour=10)
    make_token(make_client(name="Data first"), expires_at=now + timedelta(days=20),
               data_access_expires_at=now + timedelta(days=4))

    chart = {day.day: day for day in first_screen.access_ending_chart(now)}
    early, late = chart[(now + timedelta(days=4)).date()], chart[(now + timedelta(days=20)).date()]

    assert (early.tokens, late.tokens) == (1, 0)
    assert "Data first" in admin_client.get(early.tokens_url).content.decode()
    assert "Data first" not in admin_client.get(late.tokens_url).content.decode()


def test_reminders_not_delivered_in_time_and_with_nobody_to_tell_are_figures_that_open_their_lists(admin_client):
    from tokens.models import Reminder

    client = make_client()
    now = timezone.now()
    for status, count in (("undelivered", 2), ("nobody", 3), ("sent", 1)):
        for _ in range(count):
            Reminder.objects.create(client=client, token=make_token(client), reason="token_expiring", stage="3d",
                                    recipient_email="" if status == "nobody" else "ops@acme.test", due_at=now,
                                    status=status, given_up_at=now)

    screen = first_screen.compute(now)

    late = figure(screen.reminders, "not delivered in time")
    nobody = figure(screen.reminders, "access ending, nobody to tell")
    assert (late.count, nobody.count) == (2, 3)
    assert admin_client.get(late.url).content.decode().count('class="action-select"') == 2
    assert admin_client.get(nobody.url).content.decode().count('class="action-select"') == 3
    page = admin_client.get("/admin/").content.decode()
    assert f'href="{nobody.url.replace("&", "&amp;")}"' in page and "nobody to tell" in page


def test_a_failed_sweep_and_the_tokens_it_never_checked_are_on_the_first_screen(admin_client):
    from tokens.models import SweepRun

    now = timezone.now()
    SweepRun.objects.create(job="health_sweep", status="finished", started_at=now, items_total=10, items_done=7,
                            errors=2, items_deferred=1)  # fmt: skip
    SweepRun.objects.create(job="health_sweep", status="failed", started_at=now, items_total=40, items_unchecked=30)
    SweepRun.objects.create(job="health_sweep", status="failed", started_at=now - timedelta(days=8), items_unchecked=5)

    screen = first_screen.compute(now)

    assert figure(screen.sweep, "of 10 checked by the last sweep").count == 7
    assert figure(screen.sweep, "asked again soon (Meta failed or said wait)").count == 3
    failed = figure(screen.sweep, "sweeps failed in 7 days")
    assert (failed.count, figure(screen.sweep, "tokens those sweeps never checked (due again)").count) == (1, 30)
    assert "30 never checked" in admin_client.get(failed.url).content.decode()
    assert "tokens those sweeps never checked" in admin_client.get("/admin/").content.decode()
