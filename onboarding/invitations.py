"""Invitations: signed, expiring, single-use links bound to one client and configuration."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone

from common.emails import send_templated_email

from .keys import hash_key, new_key
from .models import ClientBusiness, Contact, Invitation, LoginConfiguration

logger = logging.getLogger(__name__)

_SIGNER_SALT = "onboarding.invitation"
# token_urlsafe(32) is 43 characters; the signature adds a dot and 27 more.
_LINK_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{20,100}$")


class InvitationError(Exception):
    """Why a link can't be used. ``kind`` picks the page the person sees."""

    MALFORMED = "malformed"
    EXPIRED = "expired"
    REVOKED = "revoked"
    USED = "used"

    def __init__(self, kind: str, invitation: Invitation | None = None):
        super().__init__(kind)
        self.kind = kind
        self.invitation = invitation


class InvitationRefused(Exception):
    """No invitation may be made for this client: the portal would refuse it (D74)."""


def refusal_for(client: ClientBusiness) -> str:
    """Why no invitation can be sent to this client, in words for staff ("" when one can)."""
    if client.status == ClientBusiness.Status.OFFBOARDED:
        return (
            f"{client.name} is offboarded, so the portal would refuse any link sent to it. "
            "Change its status to invited first if it is coming back."
        )
    return ""


def _signer() -> signing.Signer:
    return signing.Signer(salt=_SIGNER_SALT, sep=".")


def sign_key(raw: str) -> str:
    """The key as it appears in the link: the random part and its signature.

    A link mangled by an email client fails the signature and is reported as
    malformed without touching the database.
    """
    return _signer().sign(raw)


def invitation_path(link_key: str) -> str:
    return f"/invite/{link_key}/"


def invitation_url(link_key: str) -> str:
    return settings.PORTAL_BASE_URL + invitation_path(link_key)


def ttl_days() -> int:
    return int(getattr(settings, "INVITATION_TTL_DAYS", 14))


def new_invitation(
    client: ClientBusiness,
    configuration: LoginConfiguration,
    *,
    contact: Contact | None = None,
    email: str = "",
    mode: str = Invitation.Mode.ONBOARD,
    created_by=None,
    message: str = "",
    switching_from: LoginConfiguration | None = None,
) -> tuple[Invitation, str]:
    """An invitation not saved yet and the key for its link (the only time the key exists in clear).

    Raises ``InvitationRefused`` for a client the portal would refuse (offboarded). Save it (or
    ``bulk_create`` several) before the link leaves the process.
    """
    refusal = refusal_for(client)
    if refusal:
        raise InvitationRefused(refusal)
    raw = new_key()
    invitation = Invitation(
        client=client,
        configuration=configuration,
        contact=contact,
        email=email or (contact.email if contact else ""),
        mode=mode,
        key_hash=hash_key(raw),
        created_by=created_by,
        expires_at=timezone.now() + timedelta(days=ttl_days()),
        message=message,
        switching_from=switching_from,
    )
    return invitation, sign_key(raw)


def create_invitation(client: ClientBusiness, configuration: LoginConfiguration, **fields) -> tuple[Invitation, str]:
    """A new invitation, stored, and the key for its link (``new_invitation``'s arguments)."""
    invitation, link_key = new_invitation(client, configuration, **fields)
    invitation.save(force_insert=True)
    return invitation, link_key


def resolve_invitation(link_key: str, *, allow_used: bool = False) -> Invitation:
    """The invitation behind a link key, or InvitationError saying why it can't be used."""
    if not isinstance(link_key, str) or not _LINK_KEY_RE.match(link_key):
        raise InvitationError(InvitationError.MALFORMED)
    try:
        raw = _signer().unsign(link_key)
    except signing.BadSignature:
        raise InvitationError(InvitationError.MALFORMED)
    invitation = (
        Invitation.objects.select_related("client", "configuration", "contact").filter(key_hash=hash_key(raw)).first()
    )
    if invitation is None:
        raise InvitationError(InvitationError.MALFORMED)
    check_usable(invitation, allow_used=allow_used)
    return invitation


def check_usable(invitation: Invitation, *, allow_used: bool = False) -> None:
    if invitation.revoked_at is not None or invitation.client.status == ClientBusiness.Status.OFFBOARDED:
        raise InvitationError(InvitationError.REVOKED, invitation)
    if not invitation.configuration.is_active:
        raise InvitationError(InvitationError.REVOKED, invitation)
    if invitation.completed_at is not None and not allow_used:
        raise InvitationError(InvitationError.USED, invitation)
    if invitation.is_expired():
        raise InvitationError(InvitationError.EXPIRED, invitation)


def mark_opened(invitation: Invitation) -> None:
    if invitation.opened_at is None:
        Invitation.objects.filter(pk=invitation.pk, opened_at__isnull=True).update(opened_at=timezone.now())
        invitation.refresh_from_db(fields=["opened_at"])


def revoke_invitation(invitation: Invitation) -> None:
    Invitation.objects.filter(pk=invitation.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def send_invitation_email(invitation: Invitation, link_key: str, *, connection=None) -> None:
    """The invitation email (subject, text and HTML templates) to the invitation's address."""
    context = {
        "invitation": invitation,
        "client": invitation.client,
        "configuration": invitation.configuration,
        "contact": invitation.contact,
        "url": invitation_url(link_key),
        "expires_at": invitation.expires_at,
        "portal_name": settings.PORTAL_NAME,
        "support_email": settings.SUPPORT_EMAIL,
    }
    send_templated_email("invitation", context, [invitation.email], connection=connection)
    Invitation.objects.filter(pk=invitation.pk).update(sent_at=timezone.now())


@dataclass
class InvitationBatch:
    sent: list[Invitation]
    clients_without_contacts: list[ClientBusiness]
    failed: list[tuple[str, str]]  # (email, error class name)
    refused: list[tuple[ClientBusiness, str]] = field(default_factory=list)  # (client, why, for staff)


def send_invitations(clients, configuration: LoginConfiguration, *, created_by=None) -> InvitationBatch:
    """One invitation per contact of each client, each recorded before its email is sent."""
    from django.core.mail import get_connection

    batch = InvitationBatch(sent=[], clients_without_contacts=[], failed=[])
    connection = get_connection()
    with connection:
        for client in clients:
            refusal = refusal_for(client)
            if refusal:
                batch.refused.append((client, refusal))
                continue
            contacts = list(client.contacts.all())
            if not contacts:
                batch.clients_without_contacts.append(client)
                continue
            for contact in contacts:
                with transaction.atomic():
                    invitation, link_key = create_invitation(
                        client, configuration, contact=contact, created_by=created_by
                    )
                try:
                    send_invitation_email(invitation, link_key, connection=connection)
                except Exception as exc:  # one bad address must not stop the others
                    logger.warning("Invitation %s could not be sent: %s", invitation.pk, exc.__class__.__name__)
                    batch.failed.append((contact.email, exc.__class__.__name__))
                    continue
                batch.sent.append(invitation)
    return batch
