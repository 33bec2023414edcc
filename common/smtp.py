"""Django's SMTP backend, writing each message's bytes with a fifth of the CPU (the same bytes), in two
round trips to a server that offers PIPELINING.

Django builds a message as standard-library MIME objects and serialises them with ``BytesGenerator``
under the compat32 policy, which passes every header through ``email.header.Header`` to fold it and
compiles a regular expression per multipart message to check its random boundary against the text:
about 0.5 CPU ms of a reminder email's 2 (docs/benchmarks.md, reminders). Here an email of the shape
the portal sends (plain text and one HTML alternative, ``common.emails.templated_email``) is written
straight from its parts, with Django's own header checks and encodings (``forbid_multi_line_headers``)
and the policy's fold for any header that needs one; a header that is ASCII, on one line and short
enough is written as is (what the fold gives for it). The boundary is checked with a substring search,
a stricter test than the regular expression's. Any other email goes through Django's ``message()``
and the same quicker generator. Tested byte for byte against Django's bytes.

To a server that offers PIPELINING (RFC 2920), MAIL, RCPT and DATA go in one write and their
replies are read together, then the message: two round trips, not three plus one per recipient,
with smtplib's checks, exceptions and 421 handling; to one that also offers CHUNKING (RFC 3030),
MAIL, RCPT and ``BDAT <size> LAST`` with the message go in one write: one round trip. EMAIL_URL
``smtp://`` selects this backend (config/settings.py).
"""

from __future__ import annotations

import functools
import re
import smtplib
from email.generator import BytesGenerator
from email.policy import compat32
from email.utils import formatdate, make_msgid
from io import BytesIO

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.backends import smtp
from django.core.mail.message import RFC5322_EMAIL_LINE_LENGTH_LIMIT, forbid_multi_line_headers, sanitize_address
from django.core.mail.utils import DNS_NAME

LEADING_DOT = re.compile(rb"(?m)^\.")
FOLD_AT = 78  # compat32's max_line_length: a longer header line may be folded


COMPAT32_CRLF = compat32.clone(linesep="\r\n")
NEWLINES = re.compile(r"\r\n|\r|\n")


def header_line(name: str, value, policy=COMPAT32_CRLF) -> bytes:
    """One header as the compat32 policy writes it, without its fold when there is nothing to fold."""
    if (
        isinstance(value, str)
        and len(name) + 2 + len(value) <= FOLD_AT
        and value.isascii()
        and "\n" not in value
        and "\r" not in value
    ):
        return f"{name}: {value}{policy.linesep}".encode("ascii")
    return policy.fold_binary(name, value)


def new_boundary(text: bytes) -> str:
    """A random boundary, as the standard library makes them, that occurs nowhere in ``text``."""
    while True:
        boundary = BytesGenerator._make_boundary()  # random, not checked against any text
        if boundary.encode("ascii") not in text:
            return boundary


class QuickHeaderGenerator(BytesGenerator):
    def _write_headers(self, msg) -> None:
        self._fp.write(b"".join(header_line(name, value, self.policy) for name, value in msg.raw_items()))
        self.write(self._NL)  # the blank line that ends the header section

    @classmethod
    def _make_boundary(cls, text=None) -> str:
        if text is None:
            return BytesGenerator._make_boundary()
        return new_boundary(text if isinstance(text, bytes) else text.encode("ascii", "surrogateescape"))


def mime_bytes(message, linesep: str = "\r\n") -> bytes:
    """What ``message.as_bytes(linesep=...)`` gives for a MIME message of django.core.mail (the boundary aside)."""
    out = BytesIO()
    QuickHeaderGenerator(out, mangle_from_=False).flatten(message, linesep=linesep)
    return out.getvalue()


def _text_and_html(email_message) -> bool:
    """An email of the shape the portal sends (templated_email): plain text and one HTML alternative, UTF-8,
    no attachment, no Cc or Reply-To, no line too long for 8bit. Others go through Django's ``message()``."""
    if type(email_message) is not EmailMultiAlternatives:
        return False
    alternatives = email_message.alternatives
    named = {name.lower() for name in email_message.extra_headers}
    return (
        len(alternatives) == 1
        and alternatives[0].mimetype == "text/html"
        and not email_message.attachments
        and not email_message.cc
        and not email_message.reply_to
        and not named & {"from", "to", "cc", "reply-to"}
        and (email_message.encoding or settings.DEFAULT_CHARSET) == "utf-8"
        and isinstance(email_message.body, str)
        and isinstance(alternatives[0].content, str)
        and email_message.body != ""
        and not _has_long_lines(email_message.body)
        and not _has_long_lines(alternatives[0].content)
    )


def _has_long_lines(text: str) -> bool:
    # Django sends such a part quoted-printable (SafeMIMEText.set_payload).
    limit = RFC5322_EMAIL_LINE_LENGTH_LIMIT
    return any(len(line.encode(errors="surrogateescape")) > limit for line in text.splitlines())


def _text_part(subtype: str, text: str) -> bytes:
    encoding = "7bit" if text.isascii() else "8bit"  # email.encoders.encode_7or8bit
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"MIME-Version: 1.0\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    return head.encode("ascii") + NEWLINES.sub("\r\n", text).encode("utf-8")


BOUNDARY_CHARACTERS = re.compile("[=0-9]+")


def multipart_header(boundary: str) -> bytes:
    """``header_line("Content-Type", 'multipart/alternative; boundary="<boundary>"')``, folded once per shape.

    The fold only looks at a character's class (space, a split character, anything else) and at lengths,
    so for a boundary of ``=`` and digits (the standard library's) the folded line is that of another
    boundary of the same characters with its digits changed (tested on random boundaries).
    """
    if not BOUNDARY_CHARACTERS.fullmatch(boundary):
        return header_line("Content-Type", f'multipart/alternative; boundary="{boundary}"')
    before, after = _multipart_header_around(re.sub("[0-9]", "0", boundary))
    return before + boundary.encode("ascii") + after


@functools.lru_cache(maxsize=16)
def _multipart_header_around(shape: str) -> tuple[bytes, bytes]:
    folded = header_line("Content-Type", f'multipart/alternative; boundary="{shape}"')
    before, after = folded.split(f'"{shape}"'.encode("ascii"))
    return before + b'"', b'"' + after


def message_bytes(email_message) -> bytes:
    """The bytes of ``email_message.message().as_bytes(linesep="\\r\\n")``, for an email of django.core.mail.

    An email of the portal's shape (``_text_and_html``) is written straight from its parts, in the
    order and with the headers Django's ``message()`` gives them; any other goes through it.
    """
    if not _text_and_html(email_message):
        return mime_bytes(email_message.message())
    parts = [_text_part("plain", email_message.body), _text_part("html", email_message.alternatives[0].content)]
    boundary = new_boundary(b"\r\n".join(parts))
    headers = [
        ("MIME-Version", "1.0"),
        ("Subject", email_message.subject),
        ("From", email_message.from_email),
    ]
    if email_message.to:
        headers.append(("To", ", ".join(str(address) for address in email_message.to)))
    named = {name.lower() for name in email_message.extra_headers}
    if "date" not in named:
        headers.append(("Date", formatdate(localtime=settings.EMAIL_USE_LOCALTIME)))
    if "message-id" not in named:
        headers.append(("Message-ID", make_msgid(domain=DNS_NAME)))
    headers += email_message.extra_headers.items()
    lines = [header_line(*forbid_multi_line_headers(name, value, "utf-8")) for name, value in headers]
    head = b"".join([multipart_header(boundary), *lines])
    delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
    return b"".join(
        [head, b"\r\n", delimiter[2:], delimiter.join(parts), f"\r\n--{boundary}--\r\n".encode("ascii")]
    )


def sendmail(connection: smtplib.SMTP, from_addr: str, to_addrs: list[str], msg: bytes) -> dict:
    """``connection.sendmail(from_addr, to_addrs, msg)``, pipelined (and chunked) when the server offers it.

    Returns the recipients refused (the others got the message), or raises as smtplib does: the
    sender refused, every recipient refused, DATA or the message refused (RSET after, or the
    connection closed on a 421).
    """
    connection.ehlo_or_helo_if_needed()
    if not (connection.does_esmtp and connection.has_extn("pipelining")):
        return connection.sendmail(from_addr, to_addrs, msg)
    size = f" size={len(msg)}" if connection.has_extn("size") else ""
    commands = [f"mail FROM:{quoted(from_addr)}{size}\r\n"]
    commands += [f"rcpt TO:{quoted(address)}\r\n" for address in to_addrs]
    chunking = connection.has_extn("chunking")
    if chunking:  # RFC 3030: the message itself in the same write, as one last chunk
        connection.send("".join([*commands, f"BDAT {len(msg)} LAST\r\n"]).encode(connection.command_encoding) + msg)
    else:
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
    elif data[0] != (250 if chunking else 354):
        failure = smtplib.SMTPDataError(*data)
    if failure is not None:
        if data[0] == 354 and not chunking:  # DATA accepted all the same: end it empty (RFC 2920 3.1)
            connection.send(b".\r\n")
            reply()
        connection._rset()
        raise failure
    if chunking:
        return refused  # the message went with the commands, and the server said 250
    stuffed = LEADING_DOT.sub(b"..", msg)
    connection.send(stuffed + (b".\r\n" if stuffed.endswith(b"\r\n") else b"\r\n.\r\n"))
    code, text = reply()
    if code != 250:
        if code != 421:
            connection._rset()
        raise smtplib.SMTPDataError(code, text)
    return refused


ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
PLAIN_ADDRESS = re.compile(rf"{ATOM}(?:\.{ATOM})*@[A-Za-z0-9-]{{1,63}}(?:\.[A-Za-z0-9-]{{1,63}})*")


@functools.lru_cache(maxsize=4096)
def sanitized(address, encoding: str) -> str:
    """``sanitize_address(address, encoding)``: a plain ASCII address (a dot-atom, no display name) is
    already what it gives; others are parsed, and remembered (the sender is the same on every message).
    """
    if isinstance(address, str) and PLAIN_ADDRESS.fullmatch(address):
        return address
    return sanitize_address(address, encoding)


def quoted(address: str) -> str:
    """``smtplib.quoteaddr(address)``: a plain address (a dot-atom, no display name) is itself in angle
    brackets, which the standard library's parser gives for it (tested on the addresses of ``sanitized``)."""
    if PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


class EmailBackend(smtp.EmailBackend):
    """``django.core.mail.backends.smtp.EmailBackend`` with ``message_bytes`` and ``sendmail``; the rest is Django's."""

    def _send(self, email_message) -> bool:
        if not email_message.recipients():
            return False
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        from_email = sanitized(email_message.from_email, encoding)
        recipients = [sanitized(address, encoding) for address in email_message.recipients()]
        try:
            sendmail(self.connection, from_email, recipients, message_bytes(email_message))
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True
