"""What the token lifecycle tells other apps. Receivers connect in their ``AppConfig.ready()``.

Every signal here is sent *inside* the transaction that records its cause, so what a receiver
writes commits or rolls back with it (an outbox row, a client's status), and a receiver that
raises undoes the cause. A receiver must not call anything slow or remote: it records, and
leaves the remote work to run after the commit. Each is sent with ``sender=AccessToken`` (or
``Reminder`` for ``reminder_stages_due``).

``tokens_invalidated(token_ids: list[int])``
    Meta stopped accepting these tokens (a 190 seen by a sweep chunk, or by anything else that
    asks Meta with a token). Sent in the transaction that wrote ``status=invalid``. A token
    revoked meanwhile may be listed: receivers re-read the status.

``token_installed(token_id: int, replaced_token_id: int | None)``
    ``tokens.install.install_token`` stored a new token (onboarding's callback, a reconnect).
    ``replaced_token_id`` is the live token of the same client and configuration it superseded,
    if any. Sent in ``install_token``'s transaction once the token, its assets and grants and the
    supersession are written. Installing a token value already stored sends nothing.

``tokens_revoked(token_ids: list[int], cause: str)``
    Tokens moved to ``revoked`` by ``tokens.install``: ``cause`` is ``"deauthorized"`` (the person
    removed the app: deauthorize callback), ``"data_deletion"`` (Meta's data deletion request) or
    ``"app_removed"`` (the business uninstalled the integration: webhook) or ``"revoked_by_staff"``
    (staff's Revoke, after Meta removed the app's permissions). Sent in the revoking
    transaction, once per call, listing only the tokens that call revoked (granular tokens derived
    from them included), never one already revoked.

``reminder_stages_due(stages: list[StageDue])``
    ``tokens.reminders.plan_reminders`` found these subjects (a token, or an asset grant) at a
    reminder stage now: ``"14d"`` ... ``"1d"``, or ``"ended"``. Sent once per page of subjects, in
    the transaction that stores that page's reminder rows, on *every* planning run while the
    stage is current (planning is idempotent, and so must receivers be: key what you record by
    subject, reason, stage and end). Sent whether or not the subject has anyone to email.

``connection_states_changed(changes: list[StateChange])``
    ``tokens.health.refresh_clients`` recomputed these clients' connections (sender
    ``ClientHealth``): each change names the client, the state before and after
    (``ClientHealth.State``; equal when it did not move: receivers keep what follows the state in
    step either way). Sent in the transaction that wrote the health rows, which is the
    transaction of the change to the tokens or grants that caused it (or the periodic recompute's,
    for what time and the provider's standing changed). Receivers: onboarding's client status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.dispatch import Signal

tokens_invalidated = Signal()
token_installed = Signal()
tokens_revoked = Signal()
reminder_stages_due = Signal()
connection_states_changed = Signal()

REVOKED_DEAUTHORIZED = "deauthorized"
REVOKED_DATA_DELETION = "data_deletion"
REVOKED_APP_REMOVED = "app_removed"
REVOKED_BY_STAFF = "revoked_by_staff"


@dataclass(frozen=True)
class StageDue:
    """One subject at one reminder stage (``reminder_stages_due``)."""

    token_id: int
    grant_id: int | None  # set for an asset grant's end (reason "asset_access_ending")
    reason: str  # tokens.models.Reminder.Reason
    stage: str  # "14d", "7d", ... or "ended"
    ends_at: datetime


@dataclass(frozen=True)
class StateChange:
    """One client's connection state moving (``connection_states_changed``)."""

    client_id: int
    before: str  # tokens.models.ClientHealth.State
    after: str
