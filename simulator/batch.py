"""Graph batch requests (developers.facebook.com/docs/graph-api/batch-requests).

A batch is `POST` with `batch=[...]` at any node path (Meta's sample posts to `/me`); at most
50 items, each run through `endpoints.execute` exactly as a request of its own and counted as
one call. Items may depend on earlier ones:

- an item with `"name": "pages"` can be referenced by a later item as
  `{result=pages:$.data.*.id}` (JSONPath) in its `relative_url` or `body`; several values are
  joined with commas;
- `"depends_on": "pages"` runs an item only once `pages` has succeeded;
- a named item that another item depends on is answered `null` on success unless it sets
  `"omit_response_on_success": false`.
An item whose dependency failed answers an error of its own (D14). On a timeout the unfinished
items are `null`.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from . import core
from .core import GraphFault
from .endpoints import VERSION_RE, Call, Context, Reply, error_reply, execute, fault_reply, usage_headers
from .models import SimState

MAX_BATCH_ITEMS = 50
REFERENCE = re.compile(r"\{result=([^:{}]+):(\$[^{}]*)\}")
_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(\*|\d+)\]")


def is_batch(call: Call) -> bool:
    return call.method == "POST" and "batch" in call.params


def run_batch(call: Call, current: SimState, at: datetime, *, throttled: bool = False) -> Reply:
    """A batch's items in order; ``throttled`` (a rate-limit burst) refuses every item with the throttle."""
    ctx = Context()
    try:
        items = json.loads(call.params["batch"])
    except ValueError:
        items = None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        current = core.record_calls(1, at)
        fault = GraphFault(100, "(#100) The parameter batch must be a JSON array of request objects")
        return error_reply(fault, usage_headers(current, ctx, at))
    if len(items) > MAX_BATCH_ITEMS:
        current = core.record_calls(1, at)
        fault = GraphFault(
            1, "(#1) Too many requests in batch message. Maximum batch size is 50", error_type="GraphBatchException"
        )
        return error_reply(fault, usage_headers(current, ctx, at))
    current = core.record_calls(max(len(items), 1), at)
    if call.token:
        try:
            ctx.caller = core.resolve_caller(call.token, at)
            core.check_proof(ctx.caller, call.params)
        except GraphFault as fault:
            return error_reply(fault, usage_headers(current, ctx, at))
    include_headers = str(call.params.get("include_headers", "true")).lower() != "false"
    subs = [batch_item_call(item, call) for item in items]
    memo = core.current_memo()
    if memo is not None:
        # Every token the items name, read in one query (a sweep's 50 tokens, or 50 inspected).
        memo.load_tokens([sub.token for sub in subs if sub.token and "|" not in sub.token])
        memo.load_tokens([sub.params["input_token"] for sub in subs if "|" not in sub.params.get("input_token", "|")])
    depended_on = {name for item in items for name in dependencies(item)}
    done: dict[str, Reply] = {}  # named items run so far
    results: list[dict | None] = []
    timed_out = False
    for item, sub in zip(items, subs, strict=True):
        if timed_out:
            results.append(None)
            continue
        fault = "rate_limit" if throttled else core.draw_fault(current)
        if fault == "timeout":
            # Meta returns null for every item it did not finish, after holding the request.
            if current.timeout_hang_ms:
                time.sleep(current.timeout_hang_ms / 1000)
            timed_out = True
            results.append(None)
            continue
        try:
            sub = resolve(sub, item, done)
        except GraphFault as refused:
            reply = error_reply(refused, {})
        else:
            reply = fault_reply(fault, sub, current) if fault else execute(sub, at, current)
        if not is_read(sub):
            core.forget()
        name = item.get("name")
        if isinstance(name, str) and name:
            done[name] = reply
            if reply.status == 200 and name in depended_on and omits_response(item):
                results.append(None)
                continue
        entry: dict[str, Any] = {"code": reply.status}
        if include_headers:
            headers = {"Content-Type": "text/javascript; charset=UTF-8", **reply.headers}
            entry["headers"] = [{"name": k, "value": v} for k, v in headers.items()]
        entry["body"] = json.dumps(reply.body)
        results.append(entry)
    return Reply(200, results, usage_headers(current, ctx, at))


def dependencies(item: dict) -> set[str]:
    """The names an item depends on: its depends_on and every {result=name:...} it holds."""
    names = {match.group(1) for match in REFERENCE.finditer(str(item.get("relative_url", "")))}
    names |= {match.group(1) for match in REFERENCE.finditer(json.dumps(item.get("body") or ""))}
    if isinstance(item.get("depends_on"), str) and item["depends_on"]:
        names.add(item["depends_on"])
    return names


def omits_response(item: dict) -> bool:
    return str(item.get("omit_response_on_success", True)).lower() != "false"


def resolve(sub: Call, item: dict, done: dict[str, Reply]) -> Call:
    """The item with its references to earlier answers filled in; refused if one didn't succeed."""
    for name in dependencies(item):
        reply = done.get(name)
        if reply is None or reply.status != 200:
            raise GraphFault(
                100,
                f"(#100) The batch item this one depends on ('{name}') did not succeed",
                error_type="GraphBatchException",
            )

    def fill(text: str) -> str:
        return REFERENCE.sub(lambda match: ",".join(json_path(done[match.group(1)].body, match.group(2))), text)

    sub.path = fill(sub.path)
    sub.params = {key: fill(value) if isinstance(value, str) else value for key, value in sub.params.items()}
    return sub


def json_path(document: Any, path: str) -> list[str]:
    """The values a JSONPath (`$.data.*.id`, `$.data[0].id`, `$.id`) picks from an answer."""
    steps = path[1:]
    matches = list(_PATH_STEP.finditer(steps))
    if "".join(m.group(0) for m in matches) != steps:
        raise GraphFault(100, f"(#100) Invalid JSONPath in a batch reference: {path}", error_type="GraphBatchException")
    values = [document]
    for match in matches:
        key = match.group(1) if match.group(1) is not None else match.group(2)
        picked = []
        for value in values:
            if key == "*" and isinstance(value, dict):
                picked += list(value.values())
            elif key == "*" and isinstance(value, list):
                picked += value
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                picked.append(value[int(key)])
            elif isinstance(value, dict) and key in value:
                picked.append(value[key])
        values = picked
    return [value if isinstance(value, str) else json.dumps(value) for value in values]


def is_read(call: Call) -> bool:
    """A call that writes nothing Meta keeps (a code exchange is a GET that does)."""
    method = (call.params.get("method") or call.method).upper()
    return method == "GET" and [s for s in call.path.split("/") if s][:1] != ["oauth"]


def batch_item_call(item: dict, outer: Call) -> Call:
    relative_url = str(item.get("relative_url", "")).lstrip("/")
    path, _, query = relative_url.partition("?")
    version = outer.version
    first, _, rest = path.partition("/")
    if VERSION_RE.match(first):
        version, path = first, rest
    params = dict(parse_qsl(query, keep_blank_values=True))
    body = item.get("body")
    if isinstance(body, str):
        params.update(parse_qsl(body, keep_blank_values=True))
    elif isinstance(body, dict):
        params.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()})
    token = params.pop("access_token", None)
    if token is None:
        token = outer.token
        for key in ("appsecret_proof", "appsecret_time"):
            if key in outer.params and key not in params:
                params[key] = outer.params[key]
    return Call(
        method=str(item.get("method", "GET")).upper(),
        path=path,
        params=params,
        token=token,
        version=version,
        base_url=outer.base_url,
    )
