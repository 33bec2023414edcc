"""common.smtp writes exactly the bytes Django's serialiser writes, and its backend delivers them."""

import email
import random
import smtplib
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


@pytest.fixture
def sink():
    """The lean SMTP server (it offers PIPELINING) in a thread; ``serve(refuse=...)`` starts it."""
    import asyncio
    import threading

    from testsupport.smtp_sink import SinkProtocol

    received, loops = [], []

    def serve(refuse=None) -> int:
        loop = asyncio.new_event_loop()
        server = loop.run_until_complete(
            loop.create_server(lambda: SinkProtocol(received.append, refuse=refuse), "127.0.0.1", 0)
        )
        threading.Thread(target=loop.run_forever, daemon=True).start()
        loops.append((loop, server))
        return server.sockets[0].getsockname()[1]

    yield serve, received
    for loop, server in loops:
        loop.call_soon_threadsafe(loop.stop)
        server.close()


def _talking(connection, spoken: list[str]):
    """Record, in order, each write to the server and each reply read."""
    send, getreply = connection.send, connection.getreply

    def sending(data):
        spoken.append("send")
        return send(data)

    def replying():
        spoken.append("reply")
        return getreply()

    connection.send, connection.getreply = sending, replying


def test_to_a_server_offering_pipelining_a_message_takes_two_round_trips(sink):
    serve, received = sink
    backend = get_connection("common.smtp.EmailBackend", host="127.0.0.1", port=serve(), use_tls=False)
    first, second = MESSAGES[0](), MESSAGES[4]()
    with backend:
        assert backend.send_messages([first]) == 1
        spoken = []
        _talking(backend.connection, spoken)
        assert backend.send_messages([second]) == 1
        assert spoken == ["send", "reply", "reply", "reply", "send", "reply"]  # MAIL+RCPT+DATA, then the message
    assert [email.message_from_bytes(data)["Subject"] for data in received] == [first.subject, ""]
    assert email.message_from_bytes(received[1]).get_payload()[0].get_payload() == "\r\n.\r\n..\r\nFrom here\r\n"


@pytest.mark.parametrize(
    "refuse, error, code",
    [
        ({b"MAIL": b"550 5.7.1 sender refused\r\n"}, smtplib.SMTPSenderRefused, 550),
        ({b"RCPT": b"550 5.1.1 no such user\r\n"}, smtplib.SMTPRecipientsRefused, None),
        ({b"DATA": b"554 5.3.0 not now\r\n"}, smtplib.SMTPDataError, 554),
        ({b".": b"554 5.7.1 message refused\r\n"}, smtplib.SMTPDataError, 554),
        ({b"RCPT": b"452 4.5.3 too many recipients\r\n"}, smtplib.SMTPRecipientsRefused, None),
    ],
)
def test_a_refusal_raises_what_smtplib_raises_and_the_session_goes_on(sink, refuse, error, code):
    serve, received = sink
    refusing = dict(refuse)
    backend = get_connection("common.smtp.EmailBackend", host="127.0.0.1", port=serve(refusing), use_tls=False)
    with backend:
        with pytest.raises(error) as raised:
            backend.send_messages([MESSAGES[0]()])
        if code:
            assert raised.value.smtp_code == code
        else:
            assert [c for c, _ in raised.value.recipients.values()] == [int(refuse[b"RCPT"][:3])]
        assert received == []
        # Every reply was read and the session reset: once the server accepts again, the next
        # message goes through on the same connection.
        refusing.clear()
        assert backend.send_messages([MESSAGES[1]()]) == 1
    assert len(received) == 1


def test_a_server_closing_with_421_closes_the_connection(sink):
    serve, received = sink
    backend = get_connection("common.smtp.EmailBackend", host="127.0.0.1", port=serve({b"MAIL": b"421 4.3.2 bye\r\n"}),
                             use_tls=False)  # fmt: skip
    backend.open()
    with pytest.raises(smtplib.SMTPSenderRefused) as raised:
        backend.send_messages([MESSAGES[0]()])
    assert raised.value.smtp_code == 421 and backend.connection.sock is None
    assert received == []
