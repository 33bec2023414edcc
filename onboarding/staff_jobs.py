"""Staff actions on clients that send mail, as staff jobs (staffjobs): no request waits on a mail server."""

from __future__ import annotations

from django.db import models

from staffjobs.jobs import ERROR, SUCCESS, WARNING, JobContext
from staffjobs.registry import staff_job
from tokens.models import AccessToken

from .invitations import create_invitation, refusal_for, send_invitation_email, send_invitations
from .models import ClientBusiness, Invitation, LoginConfiguration


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
        for _, refusal in batch.refused:
            job.note(ERROR, refusal)
        if batch.clients_without_contacts:
            job.note(WARNING, f"{client}: no contact to invite. Add a contact first.")
        for email, error in batch.failed:
            job.note(ERROR, f"{client}: could not send to {email} ({error}); check the address, then send again.")
        job.advance()


def reconnect_configuration(client: ClientBusiness):
    """The configuration a client reconnects through: that of its newest token (live ones first)."""
    token = (
        AccessToken.objects.filter(client=client, configuration__isnull=False, configuration__is_active=True)
        .order_by(models.Case(models.When(status__in=AccessToken.LIVE_STATUSES, then=0), default=1), "-created_at")
        .select_related("configuration")
        .first()
    )
    return token.configuration if token else None


@staff_job("onboarding.send_reconnect_links")
def send_reconnect_links(job: JobContext, client_ids: list[int]) -> None:
    """A fresh reconnect link to every contact of each client who receives reminders."""
    from django.core.mail import get_connection

    connection = get_connection()
    with connection:
        for client in ClientBusiness.objects.filter(pk__in=client_ids).order_by("name"):
            refusal = refusal_for(client)
            if refusal:
                job.note(ERROR, refusal)
                job.advance()
                continue
            configuration = reconnect_configuration(client)
            contacts = list(client.contacts.filter(receives_reminders=True))
            if configuration is None:
                job.note(WARNING, f"{client}: no active configuration to reconnect through; send an invitation.")
            elif not contacts:
                job.note(WARNING, f"{client}: no contact receives reminders. Add a contact first.")
            for contact in contacts if configuration else ():
                invitation, key = create_invitation(client, configuration, contact=contact, created_by=job.user,
                                                    mode=Invitation.Mode.RECONNECT)
                try:
                    send_invitation_email(invitation, key, connection=connection)
                except Exception as error:  # one bad address must not stop the others
                    job.note(ERROR, f"{client}: could not send to {contact.email} ({error.__class__.__name__}).")
                else:
                    job.note(SUCCESS, f"{client}: reconnect link sent to {contact.email}.")
            job.advance()
