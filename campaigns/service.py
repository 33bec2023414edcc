"""Starting, sending, reminding and closing a campaign, and reading where each recipient stands (D76).

Sending runs in staff jobs (``staffjobs``), a batch of recipients per job so several workers share
a large campaign; each recipient is claimed by a conditional UPDATE before its link is made and its
email sent, so a job run twice sends nothing twice. No transaction is open while mail is sent.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Subquery
from django.utils import timezone

from common.emails import send_templated_email
from onboarding.invitations import InvitationRefused, create_invitation, invitation_url, refusal_for, revoke_invitation
from onboarding.models import ClientBusiness, Invitation, LoginAttempt, LoginConfiguration
from staffjobs.jobs import start_job
from tokens.models import AccessToken

from . import selection as selections
from .models import Campaign, Recipient

logger = logging.getLogger(__name__)

SEND_JOB, REMIND_JOB = "campaigns.send", "campaigns.remind"
FAILED_OUTCOMES = (LoginAttempt.Outcome.FAILED, LoginAttempt.Outcome.CANCELLED, LoginAttempt.Outcome.EXPIRED)


def batch_size() -> int:
    return int(getattr(settings, "CAMPAIGN_SEND_BATCH", 200))


class CampaignError(Exception):
    """A campaign that can't be started or acted on, in words for staff."""


@dataclass
class Started:
    campaign: Campaign
    jobs: list = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # sentences for staff


def create_campaign(*, name: str, kind: str, selection: str, params: dict, message: str,
                    target_configuration: LoginConfiguration | None = None, user=None) -> Started:
    """Select the clients, write one recipient per contact who receives reminders, and queue the sending."""
    if kind == Campaign.Kind.MOVE_TO_SYSTEM_USER and (
        target_configuration is None or target_configuration.token_type != LoginConfiguration.TokenType.SYSTEM_USER
    ):
        raise CampaignError("Moving clients to a system user needs the system-user configuration the links open.")
    if target_configuration is not None and not target_configuration.is_active:
        raise CampaignError(f"The configuration “{target_configuration.name}” is not active.")
    targets = selections.select(selection, params)
    clients = selections.clients_of(targets)
    configurations = LoginConfiguration.objects.in_bulk({t.configuration_id for t in targets})
    skipped: list[str] = []
    with transaction.atomic():
        campaign = Campaign.objects.create(
            name=name, kind=kind, selection=selection, selection_params=params, message=message,
            target_configuration=target_configuration if kind == Campaign.Kind.MOVE_TO_SYSTEM_USER else None,
            created_by=user if getattr(user, "pk", None) else None,
        )  # fmt: skip
        rows, seen = [], set()
        contacts = defaultdict(list)
        for contact in Contact_of(clients):
            contacts[contact.client_id].append(contact)
        for target in targets:
            client, source = clients[target.client_id], configurations[target.configuration_id]
            if target.client_id in seen:
                continue  # one link per person: a client with two tokens in the selection is asked once
            refusal = refusal_for(client)
            if refusal:
                skipped.append(refusal)
                continue
            link_configuration, switching_from = source, None
            if kind == Campaign.Kind.MOVE_TO_SYSTEM_USER:
                if source.token_type == LoginConfiguration.TokenType.SYSTEM_USER:
                    continue  # already on a system user: nothing to move
                link_configuration, switching_from = target_configuration, source
            elif not source.is_active:
                skipped.append(f"{client.name}: its configuration “{source.name}” is no longer active.")
                continue
            seen.add(target.client_id)
            people = contacts.get(client.pk, [])
            if not people:
                rows.append(Recipient(campaign=campaign, client=client, configuration=link_configuration,
                                      switching_from=switching_from, status=Recipient.Status.NO_CONTACT,
                                      last_error="No contact receives reminders: add one, then remind."))  # fmt: skip
            for contact in people:
                rows.append(Recipient(campaign=campaign, client=client, configuration=link_configuration,
                                      switching_from=switching_from, contact=contact, email=contact.email))  # fmt: skip
        Recipient.objects.bulk_create(rows, batch_size=1000)
        ids = list(campaign.recipients.filter(status=Recipient.Status.PENDING).order_by("pk")
                   .values_list("pk", flat=True))  # fmt: skip
        jobs = queue(campaign, SEND_JOB, ids, user=user, verb="Send")
        if not ids:
            campaign.status = Campaign.Status.OPEN
            campaign.save(update_fields=["status"])
    return Started(campaign, jobs, skipped)


def Contact_of(clients: dict[int, ClientBusiness]):  # noqa: N802 (reads as what it returns)
    from onboarding.models import Contact

    return Contact.objects.filter(client__in=list(clients), receives_reminders=True).order_by("client", "email")


def queue(campaign: Campaign, kind: str, recipient_ids: list[int], *, user=None, verb: str) -> list:
    """One staff job per batch of recipients (queued after the commit): workers share the campaign."""
    size = batch_size()
    batches = [recipient_ids[start:start + size] for start in range(0, len(recipient_ids), size)]
    return [
        start_job(kind, title=f"{verb} “{campaign.name}”: recipients {n * size + 1}-{n * size + len(batch)} "
                              f"of {len(recipient_ids)}",
                  target_ids=batch, params={"campaign_id": campaign.pk}, user=user)
        for n, batch in enumerate(batches)
    ]  # fmt: skip


def campaign_jobs(campaign: Campaign):
    from staffjobs.models import StaffJob

    return StaffJob.objects.filter(kind__in=(SEND_JOB, REMIND_JOB), params__campaign_id=campaign.pk)


# --- sending ----------------------------------------------------------------------------------


def claim(recipient_id: int, statuses: Iterable[str]) -> bool:
    return bool(Recipient.objects.filter(pk=recipient_id, status__in=list(statuses)).update(
        status=Recipient.Status.SENDING))  # fmt: skip


def _email(recipient: Recipient, invitation: Invitation, key: str, connection, *, reminder: bool) -> None:
    campaign = recipient.campaign
    context = {
        "campaign": campaign, "client": recipient.client, "contact": recipient.contact, "invitation": invitation,
        "url": invitation_url(key), "expires_at": invitation.expires_at, "reminder": reminder,
        "switching_from": recipient.switching_from, "configuration": recipient.configuration,
        "portal_name": settings.PORTAL_NAME, "support_email": settings.SUPPORT_EMAIL,
    }  # fmt: skip
    send_templated_email("campaign", context, [recipient.email], connection=connection)


def send_one(recipient_id: int, connection, *, reminder: bool = False) -> str:
    """Make the recipient's link and email it. Returns the recipient's status after.

    A reminder replaces the link (the earlier one is revoked, what was done with it kept), so each
    recipient holds one usable single-use link at any time.
    """
    claimable = (Recipient.Status.SENT, Recipient.Status.FAILED) if reminder else (Recipient.Status.PENDING,)
    if not claim(recipient_id, claimable):
        return ""  # taken by another worker, or already sent: a redelivered job sends nothing twice
    recipient = Recipient.objects.select_related("campaign", "client", "contact", "configuration",
                                                 "switching_from", "invitation").get(pk=recipient_id)  # fmt: skip
    try:
        with transaction.atomic():
            old = recipient.invitation
            if old is not None:
                keep = {"opened_at": recipient.opened_at or old.opened_at,
                        "started_at": recipient.started_at or _first_attempt_at(old)}  # fmt: skip
                revoke_invitation(old)
                Recipient.objects.filter(pk=recipient.pk).update(**keep)
            invitation, key = create_invitation(
                recipient.client, recipient.configuration, contact=recipient.contact, email=recipient.email,
                mode=Invitation.Mode.RECONNECT, created_by=recipient.campaign.created_by,
                message=recipient.campaign.message, switching_from=recipient.switching_from,
            )  # fmt: skip
            Recipient.objects.filter(pk=recipient.pk).update(invitation=invitation)
    except InvitationRefused as refusal:
        Recipient.objects.filter(pk=recipient.pk).update(status=Recipient.Status.FAILED, last_error=str(refusal)[:300])
        return Recipient.Status.FAILED
    try:
        _email(recipient, invitation, key, connection, reminder=reminder)
    except Exception as error:  # one bad address must not stop the others
        logger.warning("Campaign recipient %s could not be emailed: %s", recipient.pk, error.__class__.__name__)
        Recipient.objects.filter(pk=recipient.pk).update(
            status=Recipient.Status.FAILED, last_error=f"The mail server refused it ({error.__class__.__name__}).")
        return Recipient.Status.FAILED
    now = timezone.now()
    Invitation.objects.filter(pk=invitation.pk).update(sent_at=now)
    changes = {"status": Recipient.Status.SENT, "last_error": ""}
    if reminder:
        Recipient.objects.filter(pk=recipient.pk).update(reminders_sent=recipient.reminders_sent + 1, **changes)
    else:
        Recipient.objects.filter(pk=recipient.pk).update(sent_at=now, **changes)
    return Recipient.Status.SENT


def _first_attempt_at(invitation: Invitation):
    attempt = LoginAttempt.objects.filter(invitation=invitation).order_by("created_at").first()
    return attempt.created_at if attempt else None


def finish_sending(campaign_id: int) -> None:
    """Once nothing is waiting or being sent, a sending campaign is open."""
    waiting = Recipient.objects.filter(campaign_id=campaign_id,
                                       status__in=(Recipient.Status.PENDING, Recipient.Status.SENDING))  # fmt: skip
    if not waiting.exists():
        Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING).update(status=Campaign.Status.OPEN)


# --- reminding and closing --------------------------------------------------------------------


def not_acted(campaign: Campaign):
    """Recipients who haven't acted: sent (or failed to send), never started the dialog, and their client
    is not reconnected since the campaign began."""
    return (
        _annotated(campaign.recipients.all(), campaign)
        .filter(status__in=(Recipient.Status.SENT, Recipient.Status.FAILED), started=False, renewed=False,
                started_at__isnull=True)
    )  # fmt: skip


def remind(campaign: Campaign, *, user=None) -> list:
    if campaign.is_closed:
        raise CampaignError(f"“{campaign.name}” is closed: nobody is reminded.")
    ids = list(not_acted(campaign).order_by("pk").values_list("pk", flat=True))
    if not ids:
        raise CampaignError("Everyone has acted (or nobody could be sent to): nobody to remind.")
    Campaign.objects.filter(pk=campaign.pk).update(last_reminded_at=timezone.now())
    return queue(campaign, REMIND_JOB, ids, user=user, verb="Remind")


def close(campaign: Campaign) -> bool:
    """No more sending or reminders; the links people hold keep working until they expire."""
    return bool(Campaign.objects.filter(pk=campaign.pk).exclude(status=Campaign.Status.CLOSED).update(
        status=Campaign.Status.CLOSED, closed_at=timezone.now()))  # fmt: skip


# --- where each recipient stands ----------------------------------------------------------------


def _annotated(recipients, campaign: Campaign):
    attempts = LoginAttempt.objects.filter(invitation=OuterRef("invitation_id"))
    renewed = AccessToken.objects.filter(
        client_id=OuterRef("client_id"), configuration_id=OuterRef("configuration_id"),
        status__in=AccessToken.LIVE_STATUSES, created_at__gt=campaign.created_at,
    ).exclude(kind__in=AccessToken.DERIVED_KINDS)  # fmt: skip
    last_attempt = LoginAttempt.objects.filter(invitation=OuterRef("invitation_id")).order_by("-created_at")
    return recipients.annotate(
        started=Exists(attempts),
        renewed=Exists(renewed),
        last_outcome=Subquery(last_attempt.values("outcome")[:1]),
    )  # fmt: skip


@dataclass
class Counts:
    recipients: int = 0
    sent: int = 0
    opened: int = 0
    started: int = 0
    completed: int = 0
    failed: int = 0
    still_broken: int = 0  # clients (in the totals) or 1/0 (per client)

    def add(self, other: Counts) -> None:
        for name in ("recipients", "sent", "opened", "started", "completed", "failed", "still_broken"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class ClientRow:
    client_id: int
    name: str
    counts: Counts
    errors: list[str]


def progress(campaign: Campaign) -> tuple[Counts, list[ClientRow]]:
    """Totals and one row per client: sent, opened, started, completed, failed, still broken. One query."""
    rows = _annotated(campaign.recipients.all(), campaign).values(
        "client_id", "client__name", "status", "last_error", "opened_at", "started_at", "sent_at",
        "invitation__opened_at", "invitation__completed_at", "started", "renewed", "last_outcome",
    ).order_by("client__name", "client_id", "email")  # fmt: skip
    per_client: dict[int, ClientRow] = {}
    for row in rows:
        entry = per_client.get(row["client_id"])
        if entry is None:
            entry = per_client[row["client_id"]] = ClientRow(row["client_id"], row["client__name"], Counts(), [])
        counts = entry.counts
        completed = row["invitation__completed_at"] is not None
        counts.recipients += 1
        counts.sent += row["sent_at"] is not None
        counts.opened += bool(row["opened_at"] or row["invitation__opened_at"])
        counts.started += bool(row["started_at"] or row["started"])
        counts.completed += completed
        counts.failed += (row["status"] in (Recipient.Status.FAILED, Recipient.Status.NO_CONTACT)
                          or (row["last_outcome"] in FAILED_OUTCOMES and not completed))  # fmt: skip
        counts.still_broken = 0 if row["renewed"] else 1
        if row["last_error"] and row["last_error"] not in entry.errors:
            entry.errors.append(row["last_error"])
    totals = Counts()
    for entry in per_client.values():
        totals.add(entry.counts)
    return totals, list(per_client.values())

