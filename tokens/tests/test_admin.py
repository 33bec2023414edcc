from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from testsupport.factories import make_client, make_contact, make_token
from testsupport.fake_graph import FakeGraph, FakeToken
from testsupport.staff import run_queued_jobs
from tokens.models import AccessToken, Reminder, SweepRun, TokenEvent
from tokens.reminders import plan_reminders
from tokens.tests.test_sweep_simulator import onboard

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def staff(admin_client):
    return admin_client


@pytest.mark.django_db
def test_a_running_sweep_shows_its_progress_in_checked_tokens_and_the_page_refreshes_itself(staff):
    run = SweepRun.objects.create(job="health_sweep", chunks_total=4, chunks_done=1, items_total=2000, items_done=480)

    listing = staff.get(reverse("admin:tokens_sweeprun_changelist")).content.decode()
    detail = staff.get(reverse("admin:tokens_sweeprun_change", args=[run.pk])).content.decode()

    for page in (listing, detail):
        assert '<meta http-equiv="refresh" content="5">' in page
        assert '<progress max="2000" value="480"' in page and "480 / 2000 tokens" in page
    SweepRun.objects.filter(pk=run.pk).update(status="finished", chunks_done=4)
    assert "http-equiv" not in staff.get(reverse("admin:tokens_sweeprun_changelist")).content.decode()


@pytest.mark.django_db
def test_a_failed_sweep_says_how_many_tokens_it_never_checked(staff):
    SweepRun.objects.create(
        job="health_sweep", status="failed", items_total=2000, items_done=1500, items_unchecked=500,
        last_error="500 token(s) were never checked by the deadline",
    )  # fmt: skip

    listing = staff.get(reverse("admin:tokens_sweeprun_changelist")).content.decode()

    assert "500 never checked" in listing and "1500 / 2000 tokens" in listing


@pytest.mark.django_db
def test_tokens_filter_by_expires_within_and_never_show_the_value(staff):
    client = make_client()
    with time_machine.travel(NOW, tick=False):
        soon = make_token(client, expires_at=NOW + timedelta(days=3), value="EAAB-soon-secret")
        make_token(client, expires_at=NOW + timedelta(days=40), value="EAAB-later-secret")
        page = staff.get(reverse("admin:tokens_accesstoken_changelist") + "?expires_within=7").content.decode()
        detail = staff.get(reverse("admin:tokens_accesstoken_change", args=[soon.pk])).content.decode()

    assert f"/admin/tokens/accesstoken/{soon.pk}/change/" in page
    assert "1 access token" in page
    for html in (page, detail):
        assert "EAAB-soon-secret" not in html and "EAAB-later-secret" not in html


@pytest.mark.django_db
def test_check_now_asks_meta_and_reports_what_it_found(staff, monkeypatch):
    meta = FakeGraph()
    monkeypatch.setattr("common.meta.graph_client", lambda: meta)
    token = make_token(make_client(), value="EAAB-check-me")
    meta.tokens["EAAB-check-me"] = FakeToken(expires_at=datetime.now(UTC) + timedelta(days=3))

    response = staff.post(
        reverse("admin:tokens_accesstoken_changelist"),
        {"action": "check_now", "_selected_action": [token.pk]},
    )
    assert response.status_code == 302 and "/admin/staffjobs/staffjob/" in response.url
    token.refresh_from_db()
    assert token.status == "active"  # nothing happens in the request: a worker runs the job

    run_queued_jobs()
    page = staff.get(response.url).content.decode()

    token.refresh_from_db()
    assert token.status == "expiring"
    assert "Checked 1: 0 active, 1 expiring, 0 invalid" in page


@pytest.mark.django_db
def test_failed_reminders_can_be_sent_again_by_staff(staff, settings):
    client = make_client()
    token = make_token(client, granted_by=make_contact(client), expires_at=datetime.now(UTC) + timedelta(days=2))
    plan_reminders()
    Reminder.objects.update(status="failed", attempts=5, last_error="SMTP down")

    staff.post(
        reverse("admin:tokens_reminder_changelist") + "?status__exact=failed",
        {"action": "retry_now", "_selected_action": list(Reminder.objects.values_list("pk", flat=True))},
    )

    assert set(Reminder.objects.filter(token=token).values_list("status", "attempts")) == {("pending", 0)}


@pytest.mark.django_db(transaction=True)
def test_staff_create_a_granular_60_day_token_and_fetch_the_current_one(simulated_meta, admin_client):
    parent = onboard(simulated_meta, make_client(meta_business_id=None), token_type="system_user")
    parent.client.meta_business_id = "9100000000000001"
    parent.client.save()
    page_grant = parent.grants.select_related("asset").filter(asset__kind="page").first()
    url = reverse("admin:tokens_accesstoken_changelist")

    form = admin_client.post(url, {"action": "create_granular_token", "_selected_action": [parent.pk]})
    assert form.status_code == 200 and "Create the token" in form.content.decode()
    created = admin_client.post(
        url,
        {
            "action": "create_granular_token",
            "_selected_action": [parent.pk],
            "apply": "1",
            "assets": [page_grant.asset_id],
            "scopes": [parent.scopes[0]],
            "expires_in_60_days": "on",
            "purpose": "Reporting job",
        },
    )

    assert created.status_code == 302 and "/admin/staffjobs/staffjob/" in created.url
    (job,) = run_queued_jobs()
    granular = AccessToken.objects.get(kind="granular_system_user")
    assert job.result_url == reverse("admin:tokens_accesstoken_change", args=[granular.pk])
    assert granular.parent == parent and granular.purpose == "Reporting job"
    assert [g.asset_id for g in granular.grants.all()] == [page_grant.asset_id]
    assert granular.expires_at is not None  # 60 days: it gets reminders like any expiring token
    assert TokenEvent.objects.filter(kind="granular_created", token=granular).exists()

    admin_client.post(url, {"action": "fetch_current_system_user_token", "_selected_action": [parent.pk]})
    run_queued_jobs()
    assert TokenEvent.objects.filter(kind="staff_action", token=parent, message__contains="unchanged").exists()


@pytest.mark.django_db
def test_a_token_no_key_can_read_breaks_neither_the_admin_nor_its_reminders(staff, stub_reconnect_links):
    from django.core import mail
    from django.db import connection

    from tokens.reminders import send_due_reminders

    client = make_client()
    token = make_token(client, granted_by=make_contact(client), expires_at=datetime.now(UTC) + timedelta(days=2))
    with connection.cursor() as cursor:
        cursor.execute("UPDATE tokens_accesstoken SET value = %s WHERE id = %s", [b"garbage", token.pk])

    listing = staff.get(reverse("admin:tokens_accesstoken_changelist"))
    detail = staff.get(reverse("admin:tokens_accesstoken_change", args=[token.pk]))
    events = staff.get(reverse("admin:tokens_tokenevent_changelist"))
    plan_reminders()
    result = send_due_reminders()

    assert (listing.status_code, detail.status_code, events.status_code) == (200, 200, 200)
    assert "unreadable with the configured keys" in listing.content.decode()
    assert result.sent == 2 and len(mail.outbox) == 2
