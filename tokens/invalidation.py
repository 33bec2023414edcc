"""A token Meta refused with a 190 (or 102), seen outside the sweep: invalid at once, told once.

The sweep writes invalid tokens a chunk at a time (``tokens.sweep.chunk.save``); anything else
that calls Meta with a stored token (the API's Graph proxy) calls ``invalidate_token`` with the
error. Like the sweep it writes the token's status and Meta's code, audits it, and sends
``tokens_invalidated`` in the writing transaction, so the client moves to "needs
reauthorization" (onboarding), reminders follow, and outbound records ``connection.broken``.
The write is conditional on the token still being live, so two callers seeing the same 190 at
once (two proxied calls) mark it, audit it and signal it exactly once.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from graph.errors import InvalidTokenError

from .models import AccessToken, TokenEvent
from .signals import tokens_invalidated

DEFAULT_REASON = "Meta says this token is no longer valid."


def invalidate_token(token_id: int, error: InvalidTokenError, *, seen_by: str) -> bool:
    """Mark a live token invalid; True if this call did it (False: it was not live any more).

    ``seen_by`` says where Meta's answer came from ("proxy"), for the audit trail.
    """
    now = timezone.now()
    reason = (error.message or DEFAULT_REASON)[:300]
    with transaction.atomic():
        changed = AccessToken.objects.filter(pk=token_id, status__in=AccessToken.LIVE_STATUSES).update(
            status=AccessToken.Status.INVALID,
            error_code=error.code,
            error_subcode=error.subcode,
            status_reason=reason,
            consecutive_check_failures=0,
            next_check_at=None,
            updated_at=now,
        )
        if not changed:
            return False
        client_id = AccessToken.objects.filter(pk=token_id).values_list("client_id", flat=True).get()
        TokenEvent.objects.create(
            kind=TokenEvent.Kind.INVALIDATED,
            client_id=client_id,
            token_id=token_id,
            actor="meta",
            message=f"Meta: invalid token ({error.code}/{error.subcode or '-'}), seen by the {seen_by}: {reason}"[:500],
            data={"code": error.code, "subcode": error.subcode, "seen_by": seen_by},
            created_at=now,
        )
        tokens_invalidated.send(sender=AccessToken, token_ids=[token_id])
    return True
