"""The reminder senders' gate in front of the mail server (decisions.md D66).

A connection failure (refused, reset, timed out, 421, the server refusing our sender) stops the
batch where it is and closes the gate: no sender tries before ``retry_at``, which backs off as a
whole (``REMINDER_OUTAGE_RETRY_BASE_SECONDS`` doubling up to ``..._CAP_SECONDS``), never per
reminder. When it opens again one sender wins the probe (a conditional update) and tries one
batch; its first message delivered reopens the gate for everyone.
"""

from __future__ import annotations

import smtplib
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F

from .models import MailOutage

OUTAGE = "outage"  # the server can't be used at all: stop the batch, close the gate
REFUSED = "refused"  # 5xx for this message: counts against the reminder's attempts
DEFERRED = "deferred"  # 4xx for this message: try it later, never counted
ERROR = "error"  # anything else (our side): counts against the reminder's attempts

# Replies that speak for the server, not the message: service closing, our sender refused, log-in failed.
SERVER_REPLIES = (smtplib.SMTPConnectError, smtplib.SMTPHeloError, smtplib.SMTPAuthenticationError,
                  smtplib.SMTPSenderRefused, smtplib.SMTPNotSupportedError)


def classify(error: BaseException) -> str:
    """What a failure of one message says about the mail server."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in error.recipients.values()]
        if any(code == 421 for code in codes):
            return OUTAGE
        return REFUSED if codes and all(code >= 500 for code in codes) else DEFERRED
    if isinstance(error, SERVER_REPLIES):
        return OUTAGE
    if isinstance(error, smtplib.SMTPResponseException):
        if error.smtp_code == 421:
            return OUTAGE
        return REFUSED if error.smtp_code >= 500 else DEFERRED
    if isinstance(error, OSError):  # refused, reset, timed out, TLS, SMTPServerDisconnected
        return OUTAGE
    return ERROR


def outage_delay(failures: int) -> timedelta:
    seconds = settings.REMINDER_OUTAGE_RETRY_BASE_SECONDS * 2 ** max(failures - 1, 0)
    return timedelta(seconds=min(seconds, settings.REMINDER_OUTAGE_RETRY_CAP_SECONDS))


def _row() -> MailOutage:
    row = MailOutage.objects.filter(pk=1).first()
    return row or MailOutage.objects.get_or_create(pk=1)[0]


def may_send(now: datetime) -> bool:
    """True when this sender may try the mail server now (the gate is open, or it won the probe)."""
    row = _row()
    if not row.failures:
        return True
    if row.retry_at and row.retry_at > now:
        return False
    # The gate has reopened after an outage: one sender probes; the others wait for its outcome.
    return bool(
        MailOutage.objects.filter(pk=1, failures=row.failures, retry_at=row.retry_at).update(
            retry_at=now + timedelta(seconds=settings.REMINDER_LEASE_SECONDS)
        )
    )


def record_outage(now: datetime, error: str) -> MailOutage:
    """A connection failure: close the gate for everyone, backing off from the last failure."""
    row = _row()
    failures = row.failures + 1
    MailOutage.objects.filter(pk=1).update(
        failures=F("failures") + 1,
        since=row.since or now,
        retry_at=now + outage_delay(failures),
        last_error=error[:1000],
    )
    return MailOutage.objects.get(pk=1)


def record_delivery() -> None:
    """A message went through: the outage, if any, is over (one read, no write on a normal day)."""
    if MailOutage.objects.filter(pk=1, failures__gt=0).exists():
        MailOutage.objects.filter(pk=1).update(failures=0, since=None, retry_at=None, last_error="")
