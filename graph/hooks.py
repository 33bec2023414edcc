"""Observers of Graph calls, so the client stays ignorant of who counts them.

The verification app registers a hook in its AppConfig.ready() to feed the API-call
ledger. A hook must be cheap and must never raise into the caller: errors are logged
and swallowed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallRecord:
    family: str  # e.g. "debug_token", "oauth", "me", "assets", "system_user_access_tokens", "ads"
    http_status: int  # 0 when no response arrived (timeout, connection error)
    error_code: int | None  # Meta's error code, or None for success
    is_marketing: bool  # a Marketing API call (ad accounts, ads, campaigns, insights...)


# A hook gets the records of one HTTP response at once (a batch answers up to 50 calls).
CallHook = Callable[[Sequence[CallRecord]], None]
_hooks: list[CallHook] = []


def register_call_hook(hook: CallHook) -> None:
    if hook not in _hooks:
        _hooks.append(hook)


def unregister_call_hook(hook: CallHook) -> None:
    if hook in _hooks:
        _hooks.remove(hook)


def notify_call(record: CallRecord) -> None:
    notify_calls([record])


def notify_calls(records: Sequence[CallRecord]) -> None:
    if not records:
        return
    for hook in list(_hooks):
        try:
            hook(records)
        except Exception:  # a ledger problem must never break a Graph call
            logger.exception("Graph call hook %r failed", getattr(hook, "__name__", hook))
