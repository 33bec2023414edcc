"""The benchmark's SMTP server accepts exactly what a client delivers, and says no to what is out of order."""

from __future__ import annotations

import asyncio
import smtplib
import threading
from email.message import EmailMessage

import pytest

from testsupport.smtp_sink import SinkProtocol, header


@pytest.fixture
def sink():
    received: list[bytes] = []
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(lambda: SinkProtocol(received.append), "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield server.sockets[0].getsockname()[1], received
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    server.close()
    loop.run_until_complete(server.wait_closed())
    loop.close()


def _message(body: str, reminder: str) -> bytes:
    message = EmailMessage()
    message["From"] = "portal@example.test"
    message["To"] = "ops@example.test"
    message["Subject"] = "Access ends in 3 days"
    message["X-Portal-Reminder"] = reminder
    message.set_content(body)
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def test_each_message_arrives_byte_for_byte_with_dot_lines_unstuffed(sink):
    port, received = sink
    bodies = [".starts with a dot\n..two dots\n.\nend\n", "", "one line\n"]
    sent = [_message(body, str(i)) for i, body in enumerate(bodies)]
    with smtplib.SMTP("127.0.0.1", port) as client:
        for data in sent:
            client.sendmail("portal@example.test", ["ops@example.test"], data)
    assert received == sent
    assert [header(data, b"X-Portal-Reminder") for data in received] == ["0", "1", "2"]


def test_a_message_split_across_many_writes_is_one_message(sink):
    port, received = sink
    data = _message("x" * 70 + "\n" + ".\n" * 200, "7")
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.mail("portal@example.test")
        client.rcpt("ops@example.test")
        client.putcmd("DATA")
        assert client.getreply()[0] == 354
        stuffed = data.replace(b"\r\n.", b"\r\n..") + b".\r\n"
        for start in range(0, len(stuffed), 7):
            client.sock.sendall(stuffed[start : start + 7])
        assert client.getreply()[0] == 250
    assert received == [data]


def test_commands_out_of_order_are_refused_and_nothing_is_accepted(sink):
    port, received = sink
    with smtplib.SMTP("127.0.0.1", port) as client:
        assert client.rcpt("ops@example.test")[0] == 503
        assert client.docmd("DATA")[0] == 503
        assert client.mail("portal@example.test")[0] == 250
        assert client.mail("portal@example.test")[0] == 503
        assert client.rset()[0] == 250
        assert client.rcpt("ops@example.test")[0] == 503  # RSET forgot the sender
        assert client.noop()[0] == 250
        assert client.docmd("VRFY", "ops")[0] == 500
    assert received == []


def test_a_folded_header_is_read_unfolded():
    data = b"Subject: x\r\nX-Portal-Reminder: 1,2,\r\n 3\r\nTo: a@b\r\n\r\nX-Portal-Reminder: 9\r\n"
    assert header(data, b"X-Portal-Reminder") == "1,2, 3"
    assert header(data, b"Cc") == ""


def test_a_chunked_message_arrives_byte_for_byte_and_is_never_unstuffed(sink):
    port, received = sink
    data = _message(".a dot stays\n..two stay\n", "9")
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo()
        assert client.has_extn("chunking") and client.has_extn("pipelining")
        client.mail("portal@example.test")
        client.rcpt("ops@example.test")
        half = len(data) // 2
        client.sock.sendall(f"BDAT {half}\r\n".encode() + data[:half])
        assert client.getreply()[0] == 250
        assert received == []  # not the last chunk: nothing accepted yet
        last = f"BDAT {len(data) - half} LAST\r\n".encode() + data[half:]
        for start in range(0, len(last), 5):
            client.sock.sendall(last[start : start + 5])
        assert client.getreply()[0] == 250
        client.sock.sendall(b"BDAT 3 LAST\r\nabc")  # no transaction: read, then refused
        assert client.getreply()[0] == 503
    assert received == [data]
