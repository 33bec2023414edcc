"""One page per client: its tokens, assets, reminders, links, webhooks and history, and buttons that
start jobs; a fixed number of queries whatever the client's size."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from onboarding.invitations import create_invitation
from onboarding.models import Invitation
from outbound import outbox
from outbound.models import EventType
from staffjobs.models import StaffJob
from testsupport.factories import make_asset, make_client, make_configuration, make_contact, make_grant, make_token
from testsupport.staff import make_staff, run_queued_jobs, sign_in
from tokens import health
from tokens.events import record_event
from tokens.models import AccessToken, Reminder

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme():
    client = make_client()
    contact = make_contact(client, email="ana@acme.test")
    configuration = make_configuration(name="Pages and ads")
    token = make_token(client, configuration=configuration, granted_by=contact,
                       expires_at=timezone.now() + timedelta(days=3), value="EAAB-acme-live-token-value")
    make_token(client, configuration=configuration, status=AccessToken.Status.SUPERSEDED)
    make_grant(token, make_asset(client, "Acme Page", meta_id="11"), timezone.now() + timedelta(days=5))
    Reminder.objects.create(client=client, token=token, reason="token_expiring", stage="7d",
                            recipient_email=contact.email, due_at=timezone.now(), status="sent",
                            sent_at=timezone.now())
    create_invitation(client, configuration, contact=contact, mode=Invitation.Mode.RECONNECT)
    record_event("checked", token=token, message="Checked with Meta: still valid.")
    outbox.record([outbox.NewEvent(EventType.CONNECTION_EXPIRING, f"expiring:{token.pk}", {}, client_id=client.pk)])
    health.refresh_clients([client.pk])
    return client


def page_of(client_business):
    return f"/admin/onboarding/clientbusiness/{client_business.pk}/change/"


def test_the_client_page_shows_the_connection_what_was_sent_and_what_happened(admin_client, acme):
    page = admin_client.get(page_of(acme)).content.decode()

    for section in ('id="tokens"', 'id="assets"', 'id="reminders"', 'id="links"', 'id="webhooks"', 'id="timeline"'):
        assert section in page
    assert "Acme Page" in page and "Pages and ads" in page and "ana@acme.test" in page
    assert "Checked with Meta: still valid." in page and "connection.expiring" in page
    assert "Check now with Meta" in page and "Copy a fresh link" in page
    assert 'class="gap-note"' not in page
    breaks = page[page.index('id="breaks"'):page.index('id="tokens"')]
    assert "Access ending" in breaks and "The user token expires on" in breaks  # in 3 days, before the Page's 5
    assert (timezone.now() + timedelta(days=3)).strftime("%A %-d %B %Y") in breaks
    assert "the client reconnects" in breaks
    assert "EAAB-acme-live-token-value" not in page


def test_a_viewer_sees_the_page_without_its_buttons(client, acme):
    sign_in(client, make_staff("vera", "Viewer"))
    page = client.get(page_of(acme)).content.decode()
    assert 'id="tokens"' in page and "Check now with Meta" not in page
    assert client.post(f"{page_of(acme).removesuffix('change/')}check/").status_code == 403


def test_check_now_and_send_a_reconnect_link_start_jobs(client, acme, settings):
    operator = make_staff("olga", "Operator")
    sign_in(client, operator)
    base = page_of(acme).removesuffix("change/")

    checked = client.post(f"{base}check/")
    reconnect = client.post(f"{base}reconnect/")

    check_job, reconnect_job = StaffJob.objects.order_by("pk")
    live = AccessToken.objects.get(client=acme, status="active")
    assert checked.status_code == 302 and check_job.target_ids == [live.pk]
    assert reconnect.url == f"/admin/staffjobs/staffjob/{reconnect_job.pk}/change/"
    assert mail.outbox == []
    job = run_queued_jobs()[1]
    assert [m.to for m in mail.outbox] == [["ana@acme.test"]]
    assert "reconnect link sent to ana@acme.test" in job.outcome[0]["text"]
    assert Invitation.objects.filter(client=acme, mode="reconnect", created_by=operator).count() == 1


def test_a_fresh_link_is_shown_once_and_recorded(client, acme):
    operator = make_staff("olga", "Operator")
    sign_in(client, operator)

    page = client.post(f"{page_of(acme).removesuffix('change/')}fresh-link/").content.decode()

    invitation = Invitation.objects.filter(client=acme, created_by=operator).get()
    assert 'id="fresh-link"' in page and "/invite/" in page and invitation.mode == "reconnect"
    from django.contrib.admin.models import LogEntry

    assert LogEntry.objects.filter(object_id=str(acme.pk), user=operator,
                                   change_message__contains="reconnect link").exists()


def test_revoke_asks_first_then_runs_as_a_job(client, acme):
    sign_in(client, make_staff("olga", "Operator"))
    live = AccessToken.objects.get(client=acme, status="active")

    confirm = client.post(f"{page_of(acme).removesuffix('change/')}revoke/").content.decode()
    started = client.post("/admin/tokens/accesstoken/", {"action": "revoke", "_selected_action": [live.pk],
                                                        "apply": "1"})

    assert "Revoke at Meta" in confirm and f"#{live.pk}" in confirm
    assert started.status_code == 302 and StaffJob.objects.get().kind == "tokens.revoke"


def test_the_client_page_costs_the_same_queries_for_a_big_client(admin_client, acme,
                                                                 django_assert_max_num_queries):
    admin_client.get(page_of(acme))
    with CaptureQueriesContext(connection) as small:
        admin_client.get(page_of(acme))
    token = AccessToken.objects.get(client=acme, status="active")
    for n in range(15):
        make_grant(token, make_asset(acme, f"Page {n}"), timezone.now() + timedelta(days=n))
        record_event("checked", token=token, message=f"check {n}")
        make_contact(acme)
    with django_assert_max_num_queries(len(small)):
        assert admin_client.get(page_of(acme)).status_code == 200
