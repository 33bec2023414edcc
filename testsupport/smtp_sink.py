"""A lean SMTP server for benchmarks: it accepts every well-formed message and keeps what it accepted.

It speaks what a client that delivers needs (RFC 5321): the greeting, EHLO/HELO, MAIL, RCPT, DATA
(the message ends at ``CRLF.CRLF``; a line starting with a dot loses that dot), BDAT (RFC 3030
CHUNKING: ``BDAT <size> [LAST]`` and exactly that many bytes, read whatever the reply), RSET, NOOP,
QUIT, with PIPELINING; ``chunking=False`` leaves CHUNKING out of what it offers;
commands out of order get 503, unknown ones 500. A message is counted only once it has arrived whole,
just before its 250, so what it reports accepted is exactly what a client was told was accepted.
``on_message(data)`` receives each message's bytes (unstuffed, CRLF line ends). ``refuse`` makes it
answer a command (``b"MAIL"``, ``b"RCPT"``, ``b"DATA"``, or ``b"."`` for the end of a message) with
a reply of the test's choosing instead; a 421 also closes the connection, as a server shutting down.

aiosmtpd, the other server the benchmark can use, spends about 0.9 CPU ms per message in Python;
this one about a quarter of that, which leaves the cores to what is being measured (the senders).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

GREETING = b"220 bench-smtp-sink ESMTP\r\n"
MAX_LINE = 4096  # a command line longer than this is refused (RFC 5321 says 512 at least)


class SinkProtocol(asyncio.Protocol):
    def __init__(
        self,
        on_message: Callable[[bytes], None],
        on_connection: Callable[[], None] | None = None,
        refuse: dict[bytes, bytes] | None = None,
        chunking: bool = True,
    ) -> None:
        self.on_message = on_message
        self.on_connection = on_connection
        self.refuse = refuse or {}
        self.chunking = chunking
        self.chunks: list[bytes] = []
        self.chunk_left = 0  # bytes of a BDAT chunk still to read
        self.chunk_reply = b""  # what to answer once they are read
        self.buffer = b""
        self.in_data = False
        self.sender_given = False
        self.recipients = 0
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        if self.on_connection:
            self.on_connection()
        transport.write(GREETING)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies = []
        while self.buffer:
            if self.chunk_left:
                taken, self.buffer = self.buffer[: self.chunk_left], self.buffer[self.chunk_left :]
                self.chunk_left -= len(taken)
                self.chunks.append(taken)
                if not self.chunk_left:
                    replies.append(self._chunk_done())
                continue
            if self.in_data:
                if not self._take_message(replies):
                    break
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                if len(self.buffer) > MAX_LINE:
                    replies.append(b"500 Line too long\r\n")
                    self.buffer = b""
                break
            line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
            if line[:5].upper() == b"BDAT ":
                reply = self._chunk(line)
                if reply is not None:
                    replies.append(reply)
                continue
            reply = self._command(line)
            replies.append(b"221 Bye\r\n" if reply is None else reply)  # None: QUIT
            if reply is None or reply.startswith(b"421"):
                break
        if replies:
            self.transport.write(b"".join(replies))  # pipelined commands: their replies in one write
        if replies and replies[-1].startswith((b"221", b"421")):
            self.transport.close()

    def _take_message(self, replies: list[bytes]) -> bool:
        """The message in the buffer if it has arrived whole (False: wait for more)."""
        if self.buffer.startswith(b".\r\n"):
            end, content = 0, b""
        else:
            end = self.buffer.find(b"\r\n.\r\n")
            if end < 0:
                return False
            content = self.buffer[: end + 2]
            end += 2
        self.buffer = self.buffer[end + 3 :]
        if content.startswith(b"."):
            content = content[1:]
        self._reset()
        if b"." in self.refuse:
            replies.append(self.refuse[b"."])
            return True
        self.on_message(content.replace(b"\r\n..", b"\r\n."))
        replies.append(b"250 OK: queued\r\n")
        return True

    def _chunk(self, line: bytes) -> bytes | None:
        """A BDAT command: its chunk is read next, and answered once read (None until then)."""
        words = line.split()
        if not self.chunking or len(words) not in (2, 3) or not words[1].isdigit():
            return b"501 Syntax: BDAT <size> [LAST]\r\n"
        last = len(words) == 3 and words[2].upper() == b"LAST"
        if len(words) == 3 and not last:
            return b"501 Syntax: BDAT <size> [LAST]\r\n"
        if b"BDAT" in self.refuse:
            self.chunk_reply = self.refuse[b"BDAT"]
        elif not self.recipients:
            self.chunk_reply = b"503 RCPT first\r\n"
        else:
            self.chunk_reply = b"LAST" if last else b"250 OK: chunk\r\n"
        self.chunk_left = int(words[1])
        if not self.chunk_left:
            return self._chunk_done()
        return None

    def _chunk_done(self) -> bytes:
        reply, self.chunk_reply = self.chunk_reply, b""
        if reply != b"LAST":
            if not reply.startswith(b"250"):
                self.chunks = []
            return reply
        content, self.chunks = b"".join(self.chunks), []
        self._reset()
        if b"." in self.refuse:
            return self.refuse[b"."]
        self.on_message(content)
        return b"250 OK: queued\r\n"

    def _reset(self) -> None:
        self.in_data = False
        self.sender_given = False
        self.recipients = 0

    def _command(self, line: bytes) -> bytes | None:
        verb = line[:4].upper()
        if verb in self.refuse:
            return self.refuse[verb]
        if verb in (b"EHLO", b"HELO"):
            self._reset()
            if verb == b"EHLO":
                chunking = b"250-CHUNKING\r\n" if self.chunking else b""
                return b"250-bench-smtp-sink\r\n250-8BITMIME\r\n" + chunking + b"250 PIPELINING\r\n"
            return b"250 bench-smtp-sink\r\n"
        if verb == b"MAIL":
            if not line[4:].upper().lstrip().startswith(b"FROM:"):
                return b"501 Syntax: MAIL FROM:<address>\r\n"
            if self.sender_given:
                return b"503 Sender already given\r\n"
            self.sender_given = True
            return b"250 OK\r\n"
        if verb == b"RCPT":
            if not line[4:].upper().lstrip().startswith(b"TO:"):
                return b"501 Syntax: RCPT TO:<address>\r\n"
            if not self.sender_given:
                return b"503 MAIL first\r\n"
            self.recipients += 1
            return b"250 OK\r\n"
        if verb == b"DATA":
            if not self.recipients:
                return b"503 RCPT first\r\n"
            self.in_data = True
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if verb == b"RSET":
            self._reset()
            self.chunks = []
            return b"250 OK\r\n"
        if verb == b"NOOP":
            return b"250 OK\r\n"
        if verb == b"QUIT":
            return None
        return b"500 Command not recognized\r\n"


def header(message: bytes, name: bytes) -> str:
    """One header's value from a message's head (unfolded), "" when it has none."""
    head = message.split(b"\r\n\r\n", 1)[0]
    wanted = name.lower() + b":"
    value = None
    for line in head.split(b"\r\n"):
        if value is not None:
            if line[:1] in (b" ", b"\t"):
                value += line  # unfolding removes the line break only (RFC 5322 2.2.3)
                continue
            break
        if line.lower().startswith(wanted):
            value = line[len(wanted) :].strip()
    return (value or b"").strip().decode("ascii", "replace")
