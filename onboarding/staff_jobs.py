"""Staff actions on clients that send mail, as staff jobs (staffjobs): no request waits on a mail server."""

from __future__ import annotations

from staffjobs.jobs import ERROR, SUCCESS, WARNING, JobContext
from staffjobs.registry import staff_job

from .invitations import send_invitations
from .models import ClientBusiness, LoginConfiguration


@staff_job("onboarding.send_invitations")
def send_onboarding_invitations(job: JobContext, client_ids: list[int], *, configuration_id: int) -> None:
    configuration = LoginConfiguration.objects.filter(pk=configuration_id, is_active=True).first()
    if configuration is None:
        job.note(ERROR, "The configuration was deactivated or deleted before the job ran: nothing was sent.")
        return
    clients = ClientBusiness.objects.filter(pk__in=client_ids).prefetch_related("contacts").order_by("name")
    for client in clients:
        batch = send_invitations([client], configuration, created_by=job.user)
        if batch.sent:
            job.note(SUCCESS, f"{client}: {len(batch.sent)} invitation(s) sent.")
        if batch.clients_without_contacts:
            job.note(WARNING, f"{client}: no contact to invite. Add a contact first.")
        for email, error in batch.failed:
            job.note(ERROR, f"{client}: could not send to {email} ({error}); check the address, then send again.")
        job.advance()
