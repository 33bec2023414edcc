"""Django's SMTP backend, writing each message's bytes with a third of the CPU (the same bytes), in two
round trips to a server that offers PIPELINING.

Django serialises a message with the standard library's ``BytesGenerator`` under the compat32
policy, which passes every header through ``email.header.Header`` to fold it, and compiles a
regular expression per multipart message to check its random boundary against the text. That was
about 0.5 CPU ms of a reminder email's 2 (docs/benchmarks.md, reminders). Here a header that is
ASCII, on one line and short enough to need no folding is written as is (exactly what the fold
gives for it: tested on every header of the portal's emails and on random ones), any other goes
through the policy's fold as before, and the boundary is checked with a substring search (a
stricter test than the regular expression's "at the start of a line"). To a server that offers
PIPELINING (RFC 2920), MAIL, RCPT and DATA go in one write and their replies are read together,
then the message: two round trips, not three plus one per recipient, with smtplib's checks,
exceptions and 421 handling. EMAIL_URL ``smtp://`` selects this backend (config/settings.py).
"""

from __future__ import annotations

import re
import smtplib
from email.generator import BytesGenerator
from io import BytesIO

from django.conf import settings
from django.core.mail.backends import smtp
from django.core.mail.message import sanitize_address

LEADING_DOT = re.compile(rb"(?m)^\.")
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


def sendmail(connection: smtplib.SMTP, from_addr: str, to_addrs: list[str], msg: bytes) -> dict:
    """``connection.sendmail(from_addr, to_addrs, msg)``, pipelined when the server offers it.

    Returns the recipients refused (the others got the message), or raises as smtplib does: the
    sender refused, every recipient refused, DATA or the message refused (RSET after, or the
    connection closed on a 421).
    """
    connection.ehlo_or_helo_if_needed()
    if not (connection.does_esmtp and connection.has_extn("pipelining")):
        return connection.sendmail(from_addr, to_addrs, msg)
    size = f" size={len(msg)}" if connection.has_extn("size") else ""
    commands = [f"mail FROM:{smtplib.quoteaddr(from_addr)}{size}\r\n"]
    commands += [f"rcpt TO:{smtplib.quoteaddr(address)}\r\n" for address in to_addrs]
    connection.send("".join([*commands, "data\r\n"]))

    def reply() -> tuple[int, bytes]:
        code, text = connection.getreply()
        if code == 421:  # the server is closing the connection
            connection.close()
        return code, text

    sender = reply()
    if sender[0] == 421:
        raise smtplib.SMTPSenderRefused(*sender, from_addr)
    refused = {}
    for address in to_addrs:
        code, text = reply()
        if code not in (250, 251):
            refused[address] = (code, text)
        if code == 421:
            raise smtplib.SMTPRecipientsRefused(refused)
    data = reply()
    if data[0] == 421:
        raise smtplib.SMTPDataError(*data)
    failure = None
    if sender[0] != 250:
        failure = smtplib.SMTPSenderRefused(*sender, from_addr)
    elif len(refused) == len(to_addrs):
        failure = smtplib.SMTPRecipientsRefused(refused)
    elif data[0] != 354:
        failure = smtplib.SMTPDataError(*data)
    if failure is not None:
        if data[0] == 354:  # DATA accepted all the same: end it with nothing in it (RFC 2920 3.1)
            connection.send(b".\r\n")
            reply()
        connection._rset()
        raise failure
    quoted = LEADING_DOT.sub(b"..", msg)
    connection.send(quoted + (b".\r\n" if quoted.endswith(b"\r\n") else b"\r\n.\r\n"))
    code, text = reply()
    if code != 250:
        if code != 421:
            connection._rset()
        raise smtplib.SMTPDataError(code, text)
    return refused


class EmailBackend(smtp.EmailBackend):
    """``django.core.mail.backends.smtp.EmailBackend`` with ``message_bytes`` and ``sendmail``; the rest is Django's."""

    def _send(self, email_message) -> bool:
        if not email_message.recipients():
            return False
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        from_email = sanitize_address(email_message.from_email, encoding)
        recipients = [sanitize_address(address, encoding) for address in email_message.recipients()]
        try:
            sendmail(self.connection, from_email, recipients, message_bytes(email_message.message()))
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True
