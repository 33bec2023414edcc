"""A client's status follows its tokens. The rules that move it after onboarding live here.

- Meta invalidated a token (``tokens.signals.tokens_invalidated``): an active client needs
  someone to reconnect.
- A token was installed for a client that needed reconnecting or was disconnected: active again.
- The last live token was revoked (deauthorize, data deletion, app removed): disconnected.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone

from tokens.models import AccessToken

from .models import ClientBusiness


def clients_need_reauthorization(sender=None, *, token_ids: list[int], **kwargs) -> None:
    """Receiver of ``tokens_invalidated``: active -> needs_reauth, the one allowed edge.

    A conditional update (``WHERE status = 'active'``) on the tokens still invalid, in the
    sender's transaction: a token revoked meanwhile leaves its client as the revocation left it.
    """
    now_invalid = AccessToken.objects.filter(pk__in=token_ids, status=AccessToken.Status.INVALID)
    ClientBusiness.objects.filter(
        pk__in=now_invalid.values("client_id"), status=ClientBusiness.Status.ACTIVE
    ).update(status=ClientBusiness.Status.NEEDS_REAUTH, status_changed_at=timezone.now())


def client_reconnected(sender=None, *, token_id: int, **kwargs) -> None:
    """Receiver of ``token_installed``: a client that needed reconnecting, or was disconnected, is active
    again, whichever way the token came (the callback, or the API's reconnect)."""
    ClientBusiness.objects.filter(
        pk__in=AccessToken.objects.filter(pk=token_id, status__in=AccessToken.LIVE_STATUSES).values("client_id"),
        status__in=(ClientBusiness.Status.NEEDS_REAUTH, ClientBusiness.Status.DISCONNECTED),
    ).update(status=ClientBusiness.Status.ACTIVE, status_changed_at=timezone.now())


def disconnect_clients_without_live_tokens(client_ids: Iterable[int]) -> None:
    """Clients left with no live token are disconnected (call inside the revoking transaction)."""
    for client in ClientBusiness.objects.select_for_update().filter(pk__in=set(client_ids)):
        has_live = AccessToken.objects.filter(client=client, status__in=AccessToken.LIVE_STATUSES).exists()
        if not has_live and client.status in (ClientBusiness.Status.ACTIVE, ClientBusiness.Status.NEEDS_REAUTH):
            client.status = ClientBusiness.Status.DISCONNECTED
            client.save(update_fields=["status", "status_changed_at", "updated_at"])
