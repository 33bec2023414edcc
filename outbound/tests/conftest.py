"""A real HTTP receiver on a local port, the README's verification recipe, endpoints and inline delivery."""

from __future__ import annotations

import functools
import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from outbound import delivery, endpoints
from outbound.models import EventType, WebhookEndpoint

ROOT = Path(__file__).resolve().parents[2]
PORTS = range(55200, 55300)  # this work's port range on the shared machine


@functools.cache
def readme_recipe():
    """The first Python block under "## Verifying a webhook" in README.md, executed: its verify_webhook."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Verifying a webhook", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md (Verifying a webhook)", "exec"), namespace)
    return namespace["verify_webhook"]


@dataclass
class Received:
    headers: dict
    body: bytes
    answered: int
    verified: bool

    @property
    def event(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """The provider's product: verifies each request with the README's recipe, answers as scripted.

    ``answers`` are taken in order (then ``default``), unless ``decide(event_id)`` is set; a request
    whose signature does not verify is answered 400 whatever the script says, as a careful receiver
    would.
    """

    url: str = ""
    secret: str = ""
    answers: list[int] = field(default_factory=list)
    default: int = 200
    decide: Callable[[str], int] | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict, body: bytes) -> int:
        verified = readme_recipe()(self.secret, headers.get("Portal-Signature", ""), body)
        with self.lock:
            if self.decide is not None:
                code = self.decide(headers.get("Portal-Event-Id", ""))
            else:
                code = self.answers.pop(0) if self.answers else self.default
            code = code if verified else 400
            self.received.append(Received(headers, body, code, verified))
        return code

    def delivered(self) -> Counter:
        """Event id -> how many requests for it were answered 2xx."""
        with self.lock:
            return Counter(item.event["id"] for item in self.received if 200 <= item.answered < 300)

    def events(self, type_: str | None = None) -> list[dict]:
        with self.lock:
            return [item.event for item in self.received if type_ is None or item.event["type"] == type_]


def _bind(handler) -> ThreadingHTTPServer:
    for port in PORTS:
        try:
            return ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:
            continue
    raise RuntimeError("No free port in 55200-55299")


@pytest.fixture
def receiver():
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            code = state.answer(dict(self.headers.items()), body)
            self.send_response(code)
            if 300 <= code < 400:  # somewhere that would answer 200, if a client followed it
                self.send_header("Location", "/moved")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format, *args):  # noqa: A002
            pass

    server = _bind(Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/portal"
    yield state
    server.shutdown()
    server.server_close()


def make_endpoint(url: str, event_types=None, name: str = "Product") -> tuple[WebhookEndpoint, str]:
    endpoint = WebhookEndpoint(name=name, url=url, event_types=list(event_types or EventType.values))
    secret = endpoints.issue_secret(endpoint)
    endpoint.save()
    return endpoint, secret


@pytest.fixture
def endpoint(receiver, db):
    """An endpoint hearing every type, pointed at the receiver (which knows its secret)."""
    registered, receiver.secret = make_endpoint(receiver.url)
    return registered


def deliver_all() -> list[str]:
    """What the beat task and its workers do, inline: every due delivery attempted once."""
    return [delivery.attempt_delivery(pk) for pk in delivery.due_deliveries()]
