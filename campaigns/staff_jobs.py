"""Sending and reminding as staff jobs: a batch of recipients per job, progress per recipient (D76)."""

from __future__ import annotations

from django.core.mail import get_connection

from staffjobs.jobs import ERROR, SUCCESS, WARNING, JobContext
from staffjobs.registry import staff_job

from . import service
from .models import Campaign, Recipient


def _run(job: JobContext, recipient_ids: list[int], campaign_id: int, *, reminder: bool) -> None:
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or (reminder and campaign.is_closed):
        job.note(WARNING, "The campaign was closed or deleted before this job ran: nothing was sent.")
        return
    job.set_result_url(f"/admin/campaigns/campaign/{campaign.pk}/change/")
    sent = failed = 0
    connection = get_connection()
    with connection:
        for recipient_id in recipient_ids:
            outcome = service.send_one(recipient_id, connection, reminder=reminder)
            sent += outcome == Recipient.Status.SENT
            failed += outcome == Recipient.Status.FAILED
            job.advance()
    if sent:
        job.note(SUCCESS, f"{sent} {'reminder' if reminder else 'link'}(s) sent.")
    if failed:
        job.note(ERROR, f"{failed} could not be sent: the campaign page says why for each client.")
    if not reminder:
        service.finish_sending(campaign.pk)


@staff_job(service.SEND_JOB)
def send_campaign(job: JobContext, recipient_ids: list[int], *, campaign_id: int) -> None:
    _run(job, recipient_ids, campaign_id, reminder=False)


@staff_job(service.REMIND_JOB)
def remind_campaign(job: JobContext, recipient_ids: list[int], *, campaign_id: int) -> None:
    _run(job, recipient_ids, campaign_id, reminder=True)
