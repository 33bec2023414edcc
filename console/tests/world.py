"""A small world of every kind of row the staff console lists, for page and query-count tests."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from onboarding.invitations import create_invitation
from onboarding.models import LoginAttempt
from staffjobs.models import StaffJob
from testsupport.factories import make_asset, make_client, make_configuration, make_contact, make_grant, make_token
from tokens import health
from tokens.events import record_event
from tokens.models import AccessToken, Reminder, SweepRun, TokenEvent


def seed_world(clients: int, configuration=None) -> list[AccessToken]:
    """``clients`` clients, each with a contact, two tokens (one expiring soon), two grants, an
    invitation, a login attempt, a reminder and events; one sweep run and one staff job."""
    now = timezone.now()
    configuration = configuration or make_configuration(name="Pages and ads")
    tokens = []
    for n in range(clients):
        client = make_client(name=f"Client {n:03d}")
        contact = make_contact(client)
        token = make_token(client, configuration=configuration, granted_by=contact,
                           expires_at=now + timedelta(days=3 + n), data_access_expires_at=now + timedelta(days=80))
        old = make_token(client, configuration=configuration, status=AccessToken.Status.SUPERSEDED)
        for kind, suffix in (("page", "Page"), ("ad_account", "Ads")):
            grant = make_grant(token, make_asset(client, f"{client.name} {suffix}", kind=kind),
                               user_access_expire_time=now + timedelta(days=5 + n))
        invitation, _ = create_invitation(client, configuration, contact=contact)
        LoginAttempt.objects.create(state_hash=f"state-{client.pk}", session_key_hash="s", client=client,
                                    configuration=configuration, invitation=invitation, expires_at=now)
        Reminder.objects.create(client=client, grant=grant, reason=Reminder.Reason.ASSET_ACCESS_ENDING, stage="7d",
                                recipient_email=contact.email, due_at=now, ends_at=grant.user_access_expire_time)
        record_event(TokenEvent.Kind.INSTALLED, token=token, message="Installed.")
        record_event(TokenEvent.Kind.SUPERSEDED, token=old, message="Superseded.")
        tokens += [token, old]
    health.refresh_clients({token.client_id for token in tokens})  # as install and the sweep leave them
    SweepRun.objects.create(job="health_sweep", chunks_total=2, chunks_done=1, items_total=clients * 2)
    StaffJob.objects.create(kind="tokens.check_now", title="Check tokens", items_total=clients)
    return tokens
