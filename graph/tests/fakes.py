"""A tiny in-process Meta: a requests transport adapter answering from a handler.

No sockets, no threads: every request the client sends is recorded (so tests can look
at URLs, headers and bodies) and answered by a function or a scripted list.
"""

from __future__ import annotations

import email.policy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from graph.client import GraphClient

APP_ID = "1234567890"
APP_SECRET = "fake-app-secret-0123456789"
GRAPH_URL = "https://graph.example.test"


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-able; a str is sent raw
    headers: dict[str, str] = field(default_factory=dict)


def error_body(code: int, subcode: int | None = None, message: str = "An error", **extra: Any) -> dict[str, Any]:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf123", **extra}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def multipart_fields(content_type: str, body: bytes) -> dict[str, str]:
    """The fields of a multipart/form-data body (no files are ever sent to Meta here)."""
    message = BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    return {
        part.get_param("name", header="content-disposition"): part.get_payload(decode=True).decode()
        for part in message.iter_parts()
    }


class SentRequest:
    """What the client sent, parsed for assertions."""

    def __init__(self, prepared: requests.PreparedRequest) -> None:
        self.method = prepared.method
        self.url = prepared.url or ""
        parts = urlsplit(self.url)
        self.path = parts.path
        self.query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.headers = prepared.headers
        raw = prepared.body or ""
        self.raw_body = raw.decode() if isinstance(raw, bytes) else raw
        content_type = prepared.headers.get("Content-Type", "")
        self.multipart = content_type.startswith("multipart/form-data")
        if self.multipart:
            self.form = multipart_fields(content_type, raw if isinstance(raw, bytes) else raw.encode())
        else:
            self.form = {k: v[0] for k, v in parse_qs(self.raw_body, keep_blank_values=True).items()}

    @property
    def params(self) -> dict[str, str]:
        return {**self.query, **self.form}

    @property
    def batch(self) -> list[dict[str, Any]]:
        return json.loads(self.form["batch"])


Handler = Callable[[SentRequest], "Reply | Exception"]


class FakeMeta(BaseAdapter):
    def __init__(self, handler: Handler | list[Reply | Exception]) -> None:
        super().__init__()
        if isinstance(handler, list):
            script = list(handler)
            handler = lambda request: script.pop(0)  # noqa: E731
        self.handler = handler
        self.sent: list[SentRequest] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        sent = SentRequest(request)
        self.sent.append(sent)
        reply = self.handler(sent)
        if isinstance(reply, Exception):
            raise reply
        response = requests.Response()
        response.status_code = reply.status
        body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
        response._content = body.encode()
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json", **reply.headers})
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


def make_client(meta: FakeMeta, **kwargs: Any) -> tuple[GraphClient, list[float]]:
    """A client talking to ``meta``; returns it with the list of delays it 'slept'."""
    delays: list[float] = []
    session = requests.Session()
    session.mount(GRAPH_URL, meta)
    options: dict[str, Any] = {
        "app_id": APP_ID,
        "app_secret": APP_SECRET,
        "graph_url": GRAPH_URL,
        "sleep": delays.append,
        "jitter": lambda: 1.0,  # the top of the jitter range, so delays are predictable
        "session": session,
    }
    options.update(kwargs)
    return GraphClient(**options), delays


def batch_reply(results: list[Any]) -> Reply:
    """Meta's batch answer: each result a (status, body) pair, or None for unfinished."""
    out = []
    for result in results:
        if result is None:
            out.append(None)
        else:
            status, body, *headers = result
            out.append(
                {
                    "code": status,
                    "headers": [{"name": k, "value": v} for k, v in (headers[0] if headers else {}).items()],
                    "body": json.dumps(body),
                }
            )
    return Reply(200, out)
