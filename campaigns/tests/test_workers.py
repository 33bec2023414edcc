"""2,000 recipients sent by real Celery workers (Redis, PostgreSQL): the request only queues jobs, the workers
share the batches, the campaign's progress moves while they send, and every recipient gets exactly one link."""

import time

import pytest

from campaigns import service
from campaigns.models import Campaign, Recipient
from config.celery import app as celery_app
from onboarding.models import ClientBusiness, Contact, Invitation
from staffjobs.models import StaffJob
from testsupport.factories import make_configuration
from tokens.models import AccessToken
from tokens.tests.test_workers import start_workers  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.services, pytest.mark.real_worker, pytest.mark.django_db(transaction=True)]

RECIPIENTS = 2_000
DEADLINE_SECONDS = 240  # two solo workers on a shared two-core machine


def seed(count: int):
    configuration = make_configuration("user", name="Pages as a person")
    clients = ClientBusiness.objects.bulk_create(
        [ClientBusiness(name=f"Client {n:04d}", status="needs_reauth") for n in range(count)])
    Contact.objects.bulk_create([Contact(client=c, email=f"owner{n}@client{n}.test") for n, c in enumerate(clients)])
    AccessToken.objects.bulk_create([
        AccessToken(client=c, configuration=configuration, kind="user", status="invalid", value=f"EAAB-dead-{n}")
        for n, c in enumerate(clients)])  # fmt: skip


def test_two_thousand_recipients_are_sent_by_workers_with_progress(start_workers, monkeypatch, settings):  # noqa: F811
    seed(RECIPIENTS)
    settings.CAMPAIGN_SEND_BATCH = 200
    queue = start_workers(2, {"EMAIL_URL": "dummymail://"})
    monkeypatch.setitem(celery_app.conf, "task_default_queue", queue)

    started = service.create_campaign(name="Everyone broken", kind=Campaign.Kind.RECONNECT,
                                      selection=Campaign.Selection.INVALID_TOKENS, params={},
                                      message="Please reconnect.")  # fmt: skip
    campaign = started.campaign
    assert len(started.jobs) == RECIPIENTS // 200

    seen = set()
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        jobs = service.campaign_jobs(campaign)
        done = sum(jobs.values_list("items_done", flat=True))
        seen.add(done)
        if not jobs.exclude(status__in=(StaffJob.Status.FINISHED, StaffJob.Status.FAILED)).exists():
            break
        if time.monotonic() > deadline:
            pytest.fail(f"Sending did not finish in time: {done} of {RECIPIENTS} sent")
        time.sleep(0.2)  # polling with a deadline, not timing anything

    assert set(service.campaign_jobs(campaign).values_list("status", flat=True)) == {StaffJob.Status.FINISHED}
    assert [done for done in seen if 0 < done < RECIPIENTS], "progress was never seen between 0 and all"
    assert Recipient.objects.filter(campaign=campaign, status="sent").count() == RECIPIENTS
    assert Invitation.objects.filter(mode="reconnect", sent_at__isnull=False).count() == RECIPIENTS
    assert Recipient.objects.values("invitation").distinct().count() == RECIPIENTS  # one link each
    campaign.refresh_from_db()
    assert campaign.status == "open"
    totals, rows = service.progress(campaign)
    assert (totals.sent, totals.still_broken, len(rows)) == (RECIPIENTS, RECIPIENTS, RECIPIENTS)
