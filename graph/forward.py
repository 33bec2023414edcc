"""A service's Graph request passed through to Meta with the portal's token: what goes, what comes back.

The portal's Graph proxy (``tokens.proxy``) hands a request it received here as it came
(method, path, query pairs, raw body, content type). ``prepare`` refuses what must not pass
(a token or proof of the caller's own, the endpoints that mint or inspect tokens, removing the
app), ``add_proof`` puts ``appsecret_proof`` where Meta reads it, and ``read_answer`` reads
Meta's answer for the call ledger and the proxy (one ``CallRecord`` per call, one per item of a
batch; the errors Meta gave). The client's ``GraphClient.forward`` does the sending.

Meta's answer goes back byte for byte with its status and usage headers, with one exception:
an answer that carries an access token (``paging.next`` URLs hold the token the call was made
with; ``/me/accounts`` lists Page tokens) has those removed (``redact``), because the token
never leaves the portal. Such an answer is re-encoded and says so in ``REDACTED_HEADER``.
"""

from __future__ import annotations

import email.policy
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from graph.errors import GraphError, classify_error
from graph.hooks import CallRecord
from graph.usage import AD_ACCOUNT_USAGE_HEADER, APP_USAGE_HEADER, BUSINESS_USAGE_HEADER, regain_access_seconds_from

# Headers of Meta's answer the caller gets: the body's type, Meta's ids for support, the usage
# (rate-limit) headers and what Meta says about authentication. Hop-by-hop headers, cookies and
# encodings are the proxy's own business.
PASSED_HEADERS = (
    "Content-Type",
    "facebook-api-version",
    "x-fb-trace-id",
    "x-fb-rev",
    "x-fb-debug",
    "x-fb-request-id",
    "X-App-Usage",
    "X-Business-Use-Case-Usage",
    "X-Ad-Account-Usage",
    "x-fb-ads-insights-throttle",
    "WWW-Authenticate",
    "Retry-After",
    "ETag",
    "Cache-Control",
    "Expires",
    "Pragma",
    "Location",
)
REDACTED_HEADER = "X-Portal-Redacted"
METHODS = ("GET", "POST", "DELETE")
# The caller never brings a token or a proof: the portal adds its own.
SECRET_PARAMS = frozenset({"access_token", "appsecret_proof", "appsecret_time", "client_secret"})
# Endpoints that mint, exchange or inspect tokens, or remove the app: the portal's own work.
_REFUSED_FIRST = frozenset({"oauth", "debug_token"})
_REFUSED_ANYWHERE = frozenset({"system_user_access_tokens"})
_VERSION_RE = re.compile(r"^v\d+(\.\d+)?$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_.\-:@]+$")


class ForwardRefused(ValueError):
    """The request cannot go to Meta as it is; ``code`` and the message say why (a 4xx)."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Outgoing:
    """A request ready for Meta, but for the token and its proof."""

    method: str
    path: str  # starts with the Graph version
    query: tuple[tuple[str, str], ...]
    body: bytes | None
    content_type: str | None
    batch: tuple[dict[str, Any], ...] | None = None  # the items, when this is a batch request


@dataclass
class Answer:
    """Meta's answer as the caller gets it, and what the portal learnt from it."""

    status: int
    headers: dict[str, str]
    content: bytes
    records: list[CallRecord] = field(default_factory=list)
    errors: list[GraphError] = field(default_factory=list)  # the envelope's, or each failed batch item's
    redacted: bool = False
    usage: list[dict[str, str]] = field(default_factory=list)  # the usage headers of the answer, then of each item


# --- the request ---------------------------------------------------------------------------------


def _segments(path: str) -> list[str]:
    return [s for s in path.strip("/").split("/") if s]


def _check_path(method: str, path: str) -> list[str]:
    segments = _segments(path)
    for segment in segments:
        if segment in (".", "..") or not _SEGMENT_RE.match(segment):
            raise ForwardRefused("bad_path", f"The Graph path has a segment Meta would not accept: {segment[:40]!r}.")
    rest = segments[1:] if segments and _VERSION_RE.match(segments[0]) else segments
    if rest and rest[0] in _REFUSED_FIRST or _REFUSED_ANYWHERE & set(rest):
        raise ForwardRefused(
            "path_not_proxied",
            "The proxy does not pass calls that exchange, create or inspect tokens; the portal makes those itself.",
            status=403,
        )
    if method == "DELETE" and rest and rest[-1] == "permissions":
        raise ForwardRefused(
            "path_not_proxied",
            "Removing the app's permissions ends the connection; staff do that from the portal (Revoke).",
            status=403,
        )
    return segments


def _refuse_secrets(names: Iterable[str], where: str) -> None:
    found = sorted(SECRET_PARAMS & {str(name) for name in names})
    if found:
        raise ForwardRefused(
            "secret_not_allowed",
            f"Remove {', '.join(found)} from the {where}: the portal adds its own token and appsecret_proof.",
        )


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def body_fields(body: bytes | None, content_type: str | None) -> dict[str, Any]:
    """The parameters of a POST or DELETE body (form, JSON object or multipart); {} for others."""
    if not body:
        return {}
    media = _media_type(content_type)
    try:
        if media == "application/json":
            fields = json.loads(body)
            if not isinstance(fields, dict):
                raise ForwardRefused("bad_body", "A JSON body must be an object of Graph parameters.")
            return fields
        if media in ("", "application/x-www-form-urlencoded"):
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        if media == "multipart/form-data":
            message = BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {content_type}\r\n\r\n".encode() + body
            )
            fields = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name and part.get_filename() is None:
                    fields[name] = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
            return fields
    except (UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, ForwardRefused):
            raise
        raise ForwardRefused("bad_body", f"The body could not be read as {media or 'a form'}.") from None
    return {}


def _batch_items(fields: dict[str, Any]) -> tuple[dict[str, Any], ...] | None:
    raw = fields.get("batch")
    if raw is None:
        return None
    try:
        items = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        raise ForwardRefused("bad_batch", "The batch parameter is not a JSON array.") from None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ForwardRefused("bad_batch", "The batch parameter must be a JSON array of objects.")
    for item in items:
        url = str(item.get("relative_url") or "")
        method = str(item.get("method") or "GET").upper()
        path, _, query = url.partition("?")
        _check_path(method, path)
        _refuse_secrets((name for name, _ in parse_qsl(query, keep_blank_values=True)), "batch item's relative_url")
        body = item.get("body")
        if isinstance(body, str):
            _refuse_secrets((name for name, _ in parse_qsl(body, keep_blank_values=True)), "batch item's body")
        elif isinstance(body, dict):
            _refuse_secrets(body, "batch item's body")
    return tuple(items)


def prepare(
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    body: bytes | None,
    content_type: str | None,
    *,
    version: str,
) -> Outgoing:
    """Check a caller's request and give it the Graph version (the path's own, else ``version``)."""
    method = method.upper()
    if method not in METHODS:
        raise ForwardRefused("method_not_allowed", f"The Graph API takes GET, POST and DELETE, not {method}.", 405)
    segments = _check_path(method, path)
    _refuse_secrets((name for name, _ in query), "query")
    batch = None
    if method != "GET":
        fields = body_fields(body, content_type)
        _refuse_secrets(fields, "body")
        if method == "POST":
            batch = _batch_items(fields)
    else:
        body, content_type = None, None
    if not segments or not _VERSION_RE.match(segments[0]):
        segments = [version, *segments]
    return Outgoing(method, "/".join(segments), tuple(query), body or None, content_type, batch)


def add_proof(outgoing: Outgoing, proof: dict[str, str]) -> tuple[list[tuple[str, str]], bytes | None, str | None]:
    """Query, body and content type with ``appsecret_proof`` where Meta reads it.

    A GET carries it in its query (Meta reads a GET's parameters nowhere else); a POST or DELETE
    in its body, which keeps the caller's bytes and adds the proof: after a form body, as a last
    part of a multipart body, as keys of a JSON object. A body of another type (a raw upload)
    leaves the proof in the query.
    """
    query = list(outgoing.query)
    body, content_type = outgoing.body, outgoing.content_type
    if outgoing.method == "GET":
        return query + list(proof.items()), None, None
    media = _media_type(content_type)
    if not body:
        return query, urlencode(proof).encode(), "application/x-www-form-urlencoded"
    if media in ("", "application/x-www-form-urlencoded"):
        return query, body + b"&" + urlencode(proof).encode(), content_type or "application/x-www-form-urlencoded"
    if media == "application/json":
        return query, json.dumps({**json.loads(body), **proof}, separators=(",", ":")).encode(), content_type
    boundary = _boundary(content_type)
    closing = f"--{boundary}--".encode() if boundary else None
    if media == "multipart/form-data" and closing and closing in body:
        parts = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            for name, value in proof.items()
        )
        at = body.rindex(closing)
        return query, body[:at] + parts + body[at:], content_type
    return query + list(proof.items()), body, content_type


def _boundary(content_type: str | None) -> str | None:
    for piece in (content_type or "").split(";")[1:]:
        name, _, value = piece.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"')
    return None


# --- the answer ----------------------------------------------------------------------------------


def _segments_of(url: str) -> list[str]:
    segments = _segments(urlsplit(url).path)
    return segments[1:] if segments and _VERSION_RE.match(segments[0]) else segments


def _error_of(payload: Any, status: int, headers: dict[str, str], secrets: Sequence[str]) -> GraphError | None:
    if status >= 400 or (isinstance(payload, dict) and "error" in payload):
        return classify_error(payload, status, retry_after=regain_access_seconds_from(headers), secrets=secrets)
    return None


def _json(raw: Any) -> Any:
    if isinstance(raw, bytes | str):
        try:
            return json.loads(raw)
        except ValueError:
            return None
    return raw


_USAGE_NAMES = {name.lower(): name for name in (APP_USAGE_HEADER, BUSINESS_USAGE_HEADER, AD_ACCOUNT_USAGE_HEADER)}


def _usage_of(headers: dict[str, str]) -> dict[str, str]:
    """The usage headers under graph.usage's names, whatever case Meta (or a batch item) used."""
    return {_USAGE_NAMES[name.lower()]: value for name, value in headers.items() if name.lower() in _USAGE_NAMES}


def read_answer(
    outgoing: Outgoing,
    status: int,
    headers: dict[str, str],
    content: bytes,
    *,
    family_of,
    is_marketing,
    secrets: Sequence[str],
) -> Answer:
    """What Meta's answer says: a record per call (per answered batch item), the errors, the usage."""
    passed = {name: headers[name] for name in PASSED_HEADERS if name in headers}
    answer = Answer(status=status, headers=passed, content=content, usage=[_usage_of(headers)])
    # Only an error answer (or a batch) is parsed: a successful call's body goes back unread.
    payload = _json(content) if status >= 400 or outgoing.batch is not None else None
    if (
        outgoing.batch is not None
        and status < 400
        and isinstance(payload, list)
        and len(payload) == len(outgoing.batch)
    ):
        for item, outcome in zip(outgoing.batch, payload, strict=True):
            if not isinstance(outcome, dict):  # null: Meta did not get to it (a timeout); not a call made
                continue
            url = str(item.get("relative_url") or "")
            item_status = int(outcome.get("code") or 0)
            item_headers = {
                str(h.get("name")): str(h.get("value"))
                for h in outcome.get("headers") or []
                if isinstance(h, dict) and h.get("name")
            }
            answer.usage.append(_usage_of(item_headers))
            error = _error_of(_json(outcome.get("body")), item_status, item_headers, secrets)
            if error is not None:
                answer.errors.append(error)
            answer.records.append(
                CallRecord(family_of(url), item_status, error.code if error else None, is_marketing(url))
            )
        return answer
    error = _error_of(payload, status, headers, secrets) if status >= 400 else None
    if error is not None:
        answer.errors.append(error)
    code = error.code if error else None
    if outgoing.batch is not None:  # the envelope failed: each item Meta was asked to do is counted
        urls = [str(item.get("relative_url") or "") for item in outgoing.batch]
    else:
        urls = [outgoing.path]
    answer.records = [CallRecord(family_of(url), status, code, is_marketing(url)) for url in urls]
    return answer


# --- tokens out of the answer --------------------------------------------------------------------


def _clean_url(url: str, graph_base: str, proxy_base: str) -> str:
    parts = urlsplit(url)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in SECRET_PARAMS])
    cleaned = urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
    if cleaned.startswith(graph_base):
        cleaned = proxy_base + cleaned[len(graph_base) :]
    return cleaned


def _clean(value: Any, graph_base: str, proxy_base: str) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v, graph_base, proxy_base) for k, v in value.items() if k != "access_token"}
    if isinstance(value, list):
        return [_clean(v, graph_base, proxy_base) for v in value]
    if isinstance(value, str) and "access_token=" in value and "://" in value:
        return _clean_url(value, graph_base, proxy_base)
    return value


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def redact(answer: Answer, outgoing: Outgoing, tokens: Sequence[str], graph_base: str, proxy_base: str) -> None:
    """Take every access token out of the answer (in place); the common case costs one byte search.

    ``paging`` URLs are pointed at the proxy (``proxy_base``) without the token, so a caller can
    follow ``next`` through the portal; ``access_token`` fields (Page tokens) are dropped; a
    batch item's body is cleaned the same way. Anything else still holding a token value has it
    replaced.
    """
    needles = [t.encode() for t in tokens if t]
    content = answer.content
    if b"access_token" not in content and not any(needle in content for needle in needles):
        return
    payload = _json(content)
    if payload is not None:
        if outgoing.batch is not None and isinstance(payload, list):
            for outcome in payload:
                if isinstance(outcome, dict) and isinstance(outcome.get("body"), str):
                    body = _json(outcome["body"])
                    if body is not None:
                        outcome["body"] = _dump(_clean(body, graph_base, proxy_base))
        payload = _clean(payload, graph_base, proxy_base)
        content = _dump(payload).encode()
    for needle in needles:
        content = content.replace(needle, b"[redacted]")
    if content != answer.content:
        answer.content = content
        answer.redacted = True
        answer.headers[REDACTED_HEADER] = "access_token"
