"""common.smtp writes exactly the bytes Django's serialiser writes, and its backend delivers them."""

import email
import random
import socket
import string
from email.message import Message
from email.policy import compat32

import pytest
from aiosmtpd.controller import Controller
from django.core.mail import EmailMultiAlternatives, get_connection

from common.smtp import message_bytes

ALPHABET = string.ascii_letters + string.digits + "    \t:;,.<>@=?\"'()[]-_"


def _email(subject: str, body: str, to: str = "ops@acme.test", **headers) -> EmailMultiAlternatives:
    message = EmailMultiAlternatives(subject, body, "Portal <portal@localhost>", [to], headers=headers)
    message.attach_alternative(f"<p>{body}</p>", "text/html")
    return message


MESSAGES = [
    lambda: _email("Action needed: Acme's connection ends 6 Dec 2026", "Hello,\n\nIt ends.\n"),
    # Longer than a line: folded by the policy, as before.
    lambda: _email("Action needed: Bench client 0's connection to Tech Provider Portal ends 6 Dec 2026", "x\n"),
    # Not ASCII: Django encodes it (RFC 2047) and the fold goes through the policy.
    lambda: _email("Action requise : l'accès de Café Müller s'arrête le 6 déc.", "Grüße,\n€ 5\n", to="zoë@café.test"),
    lambda: _email("Short", "a line of 1,000 characters: " + "y" * 1000 + "\n", **{"X-Portal-Reminder": "1,2,3"}),
    lambda: _email("", "\n.\n..\nFrom here\n", **{"Message-ID": "<reminder.1.2.3d@portal.test>"}),
]


@pytest.mark.parametrize("make", MESSAGES)
def test_the_bytes_are_djangos_own(make, settings):
    mime = make().message()
    expected = mime.as_bytes(linesep="\r\n")  # sets the boundary, which the second run reuses
    assert message_bytes(mime) == expected


def test_a_short_ascii_header_written_as_is_is_what_the_fold_gives():
    randomly = random.Random(13)
    for _ in range(20000):
        name = randomly.choice(["Subject", "To", "X-Portal-Reminder", "Message-ID", "From"])
        value = "".join(randomly.choice(ALPHABET) for _ in range(randomly.randint(0, 85 - len(name))))
        message = Message()
        message[name] = value
        message.set_payload("body\n")
        assert message_bytes(message) == message.as_bytes(policy=compat32.clone(linesep="\r\n")), (name, value)


def test_the_boundary_never_occurs_in_the_text(monkeypatch):
    from email.generator import BytesGenerator

    boundaries = iter(["=====taken==", "=====free=="])
    monkeypatch.setattr(BytesGenerator, "_make_boundary", classmethod(lambda cls, text=None: next(boundaries)))
    mime = _email("Boundary", "this text names =====taken== in the middle of a line\n").message()
    assert b'boundary="=====free=="' in message_bytes(mime)


class Keep:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.original_content))
        return "250 OK"


def test_the_backend_delivers_the_message(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Keep()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        connection = get_connection("common.smtp.EmailBackend", host="127.0.0.1", port=port, use_tls=False)
        assert connection.send_messages([MESSAGES[2]()]) == 1
    finally:
        controller.stop()
    (sender, recipients, content), = handler.messages
    assert (sender, recipients) == ("portal@localhost", ["zoë@xn--caf-dma.test"])  # as Django sanitises it
    received = email.message_from_bytes(content)
    text, html = (part.get_payload(decode=True).decode() for part in received.get_payload())
    assert (text, html) == ("Grüße,\r\n€ 5\r\n", "<p>Grüße,\r\n€ 5\r\n</p>")  # as sent: CRLF
    assert str(email.header.make_header(email.header.decode_header(received["Subject"]))).startswith("Action requise")
