"""Django's SMTP backend, writing each message's bytes with a third of the CPU (the same bytes).

Django serialises a message with the standard library's ``BytesGenerator`` under the compat32
policy, which passes every header through ``email.header.Header`` to fold it, and compiles a
regular expression per multipart message to check its random boundary against the text. That was
about 0.5 CPU ms of a reminder email's 2 (docs/benchmarks.md, reminders). Here a header that is
ASCII, on one line and short enough to need no folding is written as is (exactly what the fold
gives for it: tested on every header of the portal's emails and on random ones), any other goes
through the policy's fold as before, and the boundary is checked with a substring search (a
stricter test than the regular expression's "at the start of a line"). EMAIL_URL ``smtp://``
selects this backend (config/settings.py).
"""

from __future__ import annotations

import smtplib
from email.generator import BytesGenerator
from io import BytesIO

from django.conf import settings
from django.core.mail.backends import smtp
from django.core.mail.message import sanitize_address

FOLD_AT = 78  # compat32's max_line_length: a longer header line may be folded


class QuickHeaderGenerator(BytesGenerator):
    def _write_headers(self, msg) -> None:
        lines = []
        for name, value in msg.raw_items():
            if (
                isinstance(value, str)
                and len(name) + 2 + len(value) <= FOLD_AT
                and value.isascii()
                and "\n" not in value
                and "\r" not in value
            ):
                lines.append(f"{name}: {value}{self._NL}".encode("ascii"))
            else:
                lines.append(self.policy.fold_binary(name, value))
        self._fp.write(b"".join(lines))
        self.write(self._NL)  # the blank line that ends the header section

    @classmethod
    def _make_boundary(cls, text=None) -> str:
        while True:
            boundary = BytesGenerator._make_boundary()  # random, not checked against any text
            if text is None or (boundary if isinstance(text, str) else boundary.encode("ascii")) not in text:
                return boundary


def message_bytes(message, linesep: str = "\r\n") -> bytes:
    """What ``message.as_bytes(linesep=...)`` gives for a message of django.core.mail (the boundary aside)."""
    out = BytesIO()
    QuickHeaderGenerator(out, mangle_from_=False).flatten(message, linesep=linesep)
    return out.getvalue()


class EmailBackend(smtp.EmailBackend):
    """``django.core.mail.backends.smtp.EmailBackend`` with ``message_bytes``; everything else as Django's."""

    def _send(self, email_message) -> bool:
        if not email_message.recipients():
            return False
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        from_email = sanitize_address(email_message.from_email, encoding)
        recipients = [sanitize_address(address, encoding) for address in email_message.recipients()]
        try:
            self.connection.sendmail(from_email, recipients, message_bytes(email_message.message()))
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True
