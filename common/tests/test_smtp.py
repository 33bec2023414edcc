"""common.smtp writes exactly the bytes Django's serialiser writes, and its backend delivers them."""

import email
import itertools
import random
import re
import smtplib
import socket
import string
from datetime import timedelta
from email.message import Message
from email.policy import compat32

import pytest
from aiosmtpd.controller import Controller
from django.core.mail import EmailMultiAlternatives, get_connection
from django.utils import timezone

from common.smtp import message_bytes, mime_bytes
from testsupport.factories import make_client, make_contact, make_token

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


BOUNDARY = re.compile(rb"={15}\d{19}==")
CHANGING = re.compile(rb"(?m)^(Date|Message-ID): [^\r\n]*")


def _same_but_boundary_date_and_id(data: bytes) -> bytes:
    return CHANGING.sub(rb"\1: -", BOUNDARY.sub(b"B", data))


def assert_djangos_bytes(message):
    ours = message_bytes(message)
    assert _same_but_boundary_date_and_id(ours) == _same_but_boundary_date_and_id(
        message.message().as_bytes(linesep="\r\n")
    )
    mime = message.message()
    expected = mime.as_bytes(linesep="\r\n")  # sets the boundary, which the second run reuses
    assert mime_bytes(mime) == expected
    return ours


@pytest.mark.parametrize("make", MESSAGES)
def test_the_bytes_are_djangos_own(make):
    assert_djangos_bytes(make())


@pytest.mark.django_db
def test_the_portals_reminder_emails_are_djangos_bytes(stub_links):
    from tokens.emails import reminder_email
    from tokens.models import Reminder
    from tokens.reminders import _with_subjects, group_reminders, plan_reminders

    now = timezone.now()
    for name, ends in (("Café Müller & Söhne, Bäckerei und Konditorei seit 1892", now + timedelta(days=2)),
                       ("Acme", now - timedelta(hours=3))):  # fmt: skip
        client = make_client(name=name, notification_emails="ops@acme.test, zoë@café.test")
        make_token(client, granted_by=make_contact(client, email=f"ana{len(name)}@acme.test"), expires_at=ends)
    plan_reminders()
    groups = group_reminders(list(_with_subjects(Reminder.objects.exclude(recipient_email="")).order_by("pk")))
    assert len(groups) == 6
    for group in groups:
        assert_djangos_bytes(reminder_email(group, link="https://portal.test/invite/key.signature/"))


def test_random_emails_are_djangos_bytes():
    randomly = random.Random(7)
    text = string.ascii_letters + "   ..\n\n\r\n\r=-_:;<>\"'éü€😀\t"
    for _ in range(300):
        words = "".join(randomly.choice(text) for _ in range(randomly.randint(1, 400)))
        subject = " ".join(words.split())[: randomly.randint(0, 120)]
        assert_djangos_bytes(_email(subject, words, to=randomly.choice(["a@b.test", "Zoë <zoe@b.test>"]),
                                    **{"X-Portal-Reminder": str(randomly.randint(1, 10**40))}))  # fmt: skip


def test_a_short_ascii_header_written_as_is_is_what_the_fold_gives():
    randomly = random.Random(13)
    for _ in range(20000):
        name = randomly.choice(["Subject", "To", "X-Portal-Reminder", "Message-ID", "From"])
        value = "".join(randomly.choice(ALPHABET) for _ in range(randomly.randint(0, 85 - len(name))))
        message = Message()
        message[name] = value
        message.set_payload("body\n")
        assert mime_bytes(message) == message.as_bytes(policy=compat32.clone(linesep="\r\n")), (name, value)


def test_the_multipart_header_is_what_the_fold_gives_for_every_boundary():
    from email.generator import BytesGenerator

    from common.smtp import COMPAT32_CRLF, multipart_header

    randomly = random.Random(17)
    boundaries = [BytesGenerator._make_boundary() for _ in range(3000)]
    boundaries += ["=" * randomly.randint(0, 60) + str(randomly.randint(0, 10**30)) + "==" for _ in range(3000)]
    boundaries += ["=====free==", "a b;c", "x" * 90, ""]  # not of the standard library's kind: folded as they are
    for boundary in boundaries:
        value = f'multipart/alternative; boundary="{boundary}"'
        assert multipart_header(boundary) == COMPAT32_CRLF.fold_binary("Content-Type", value), boundary


def test_the_boundary_never_occurs_in_the_text(monkeypatch):
    from email.generator import BytesGenerator

    boundaries = itertools.cycle(["=====taken==", "=====free=="])
    monkeypatch.setattr(BytesGenerator, "_make_boundary", classmethod(lambda cls, text=None: next(boundaries)))
    message = _email("Boundary", "this text names =====taken== in the middle of a line\n")
    assert b'boundary="=====free=="' in message_bytes(message)
    assert b'boundary="=====taken=="' not in mime_bytes(message.message())  # the other writer too


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
    """The lean SMTP server (PIPELINING, and CHUNKING unless told) in a thread; ``serve(...)`` starts one."""
    import asyncio
    import threading

    from testsupport.smtp_sink import SinkProtocol

    received, loops = [], []

    def serve(refuse=None, chunking=True) -> int:
        loop = asyncio.new_event_loop()
        server = loop.run_until_complete(
            loop.create_server(lambda: SinkProtocol(received.append, refuse=refuse, chunking=chunking), "127.0.0.1", 0)
        )
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        loops.append((loop, server, thread))
        return server.sockets[0].getsockname()[1]

    yield serve, received
    for loop, server, thread in loops:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


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


@pytest.mark.parametrize("chunking, spoken_per_message", [
    (False, ["send", "reply", "reply", "reply", "send", "reply"]),  # MAIL+RCPT+DATA, then the message
    (True, ["send", "reply", "reply", "reply"]),  # MAIL+RCPT+BDAT with the message
])  # fmt: skip
def test_to_a_server_offering_pipelining_a_message_takes_two_round_trips_or_one_chunked(
    sink, chunking, spoken_per_message
):
    serve, received = sink
    backend = get_connection("common.smtp.EmailBackend", host="127.0.0.1", port=serve(chunking=chunking),
                             use_tls=False)  # fmt: skip
    first, second = MESSAGES[0](), MESSAGES[4]()
    with backend:
        assert backend.send_messages([first]) == 1
        spoken = []
        _talking(backend.connection, spoken)
        assert backend.send_messages([second]) == 1
        assert spoken == spoken_per_message
    assert [email.message_from_bytes(data)["Subject"] for data in received] == [first.subject, ""]
    assert email.message_from_bytes(received[1]).get_payload()[0].get_payload() == "\r\n.\r\n..\r\nFrom here\r\n"


@pytest.mark.parametrize(
    "refuse, error, code, chunking",
    [
        *(
            case + (chunking,)
            for chunking in (False, True)
            for case in [
                ({b"MAIL": b"550 5.7.1 sender refused\r\n"}, smtplib.SMTPSenderRefused, 550),
                ({b"RCPT": b"550 5.1.1 no such user\r\n"}, smtplib.SMTPRecipientsRefused, None),
                ({b".": b"554 5.7.1 message refused\r\n"}, smtplib.SMTPDataError, 554),
                ({b"RCPT": b"452 4.5.3 too many recipients\r\n"}, smtplib.SMTPRecipientsRefused, None),
            ]
        ),
        ({b"DATA": b"554 5.3.0 not now\r\n"}, smtplib.SMTPDataError, 554, False),
        ({b"BDAT": b"552 5.3.4 too big\r\n"}, smtplib.SMTPDataError, 552, True),
    ],
)
def test_a_refusal_raises_what_smtplib_raises_and_the_session_goes_on(sink, refuse, error, code, chunking):
    serve, received = sink
    refusing = dict(refuse)
    backend = get_connection("common.smtp.EmailBackend", host="127.0.0.1", port=serve(refusing, chunking),
                             use_tls=False)  # fmt: skip
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


@pytest.fixture
def stub_links(monkeypatch):
    from testsupport.factories import reconnect_url_stub

    monkeypatch.setattr("tokens.links._builder", reconnect_url_stub)
    monkeypatch.setattr("tokens.links._many_builder", None)


def test_an_address_is_sanitised_and_quoted_as_django_and_smtplib_do():
    from django.core.mail.message import sanitize_address

    from common.smtp import PLAIN_ADDRESS, quoted, sanitized

    randomly = random.Random(5)
    pieces = string.ascii_letters + string.digits + "..--__++@@ <>\"'!#é" + "x" * 30
    addresses = ["ops@acme.test", "Ops@ACME.test", "a.b+c@x-y.example", "Zoë <zoe@café.test>", "a..b@x.test",
                 ".a@x.test", "a@-x.test", "a@x..test", "a@" + "x" * 64 + ".test", "a@x.test.", '"a b"@x.test']
    addresses += ["".join(randomly.choice(pieces) for _ in range(randomly.randint(1, 30))) for _ in range(3000)]
    atom, label = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-.", string.ascii_letters + "0123-."
    addresses += [
        "".join(randomly.choice(atom) for _ in range(randomly.randint(1, 12))) + "@"
        + "".join(randomly.choice(label) for _ in range(randomly.randint(1, 70)))
        for _ in range(3000)
    ]  # fmt: skip
    assert sum(bool(PLAIN_ADDRESS.fullmatch(address)) for address in addresses) > 1000  # the quick path is tried
    for address in addresses:
        try:
            expected = sanitize_address(address, "utf-8")
        except Exception as refused:  # ValueError, or what the standard library's parser raises
            with pytest.raises(type(refused)):
                sanitized.__wrapped__(address, "utf-8")
        else:
            assert sanitized.__wrapped__(address, "utf-8") == expected, address
        assert quoted(address) == smtplib.quoteaddr(address), address
