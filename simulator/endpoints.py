"""The Graph API as Meta serves it: routing, nodes, fields, edges, pagination.

HTTP-free: a `Call` goes in, a `Reply` comes out. `serving.serve` adds what every request
gets (latency, counting, faults) and `batch` runs a batch's items through the same
`execute()`, so an item behaves exactly like a single request.
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.db import transaction

from . import core, limits
from .core import Caller, GraphFault
from .models import (
    SimApp,
    SimAsset,
    SimBusiness,
    SimCode,
    SimConfiguration,
    SimState,
    SimSystemUser,
    SimToken,
)

DEFAULT_VERSION = "v26.0"
# Calls to a version older than the oldest live one are served by it (facts file).
OLDEST_LIVE_VERSION = "v23.0"
DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 500
VERSION_RE = re.compile(r"^v\d+\.\d+$")


def effective_version(requested: str) -> str:
    def key(version: str) -> tuple[int, int]:
        major, minor = version[1:].split(".")
        return int(major), int(minor)

    return max(requested, OLDEST_LIVE_VERSION, key=key)


@dataclass
class Call:
    method: str
    path: str
    params: dict[str, str]
    token: str | None = None
    version: str = DEFAULT_VERSION
    base_url: str = "http://testserver/simulator/graph/"


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    timed_out: bool = False
    # The x-fb-trace-id header; an error body's fbtrace_id is the same value, as Meta's is.
    trace_id: str = field(default_factory=core.fbtrace_id)
    # The edge's own page (HTML, none of Graph's headers) instead of Graph's JSON.
    html: str | None = None


def error_reply(fault: GraphFault, headers: dict[str, str], *, timed_out: bool = False) -> Reply:
    trace_id = core.fbtrace_id()
    return Reply(
        fault.status, fault.payload(trace_id), {**headers, **fault.headers}, timed_out=timed_out, trace_id=trace_id
    )


@dataclass
class Context:
    """What a call touched, for the usage headers and business-use-case throttling."""

    caller: Caller | None = None
    ad_account_id: str | None = None
    asset_kind: str | None = None
    touched: limits.Touched = field(default_factory=limits.Touched)

    @property
    def token(self) -> SimToken | None:
        return self.caller.token if self.caller else None

    def touch(self, asset: SimAsset) -> None:
        self.touched.touch(asset, self.token)


# The call being executed, so rendering any asset (a node, an edge's item, a nested field)
# records the use case it falls under.
_context: ContextVar[Context | None] = ContextVar("simulator_call_context", default=None)


def usage_headers(current: SimState, ctx: Context, at: datetime, *, injected_throttle: bool = False) -> dict:
    return limits.usage_headers(
        current, ctx.touched, at, ad_account_id=ctx.ad_account_id, injected_throttle=injected_throttle
    )


# --- one call ----------------------------------------------------------------------------------


def execute(call: Call, at: datetime, current: SimState) -> Reply:
    ctx = Context()
    reset = _context.set(ctx)
    try:
        body = route(call, at, ctx)
    except GraphFault as fault:
        return error_reply(fault, usage_headers(current, ctx, at))
    finally:
        _context.reset(reset)
    throttled = ctx.touched.throttled(at)
    if throttled is not None:
        # A business throttled on a use case this call falls under: Meta answers the use case's
        # code, and only calls of that business (and use case) are refused.
        _, use_case, _ = throttled
        return error_reply(limits.throttled_fault(use_case), usage_headers(current, ctx, at))
    return Reply(200, body, usage_headers(current, ctx, at))


def fault_reply(kind: str, call: Call, current: SimState) -> Reply:
    """An injected fault (set_faults): a timeout, a transient error or a rate limit."""
    at = core.now()
    ctx = Context(ad_account_id=ad_account_in(call.path))
    if kind == "timeout":
        if current.timeout_hang_ms:
            time.sleep(current.timeout_hang_ms / 1000)
        return error_reply(core.timeout_fault(), usage_headers(current, ctx, at), timed_out=True)
    if kind == "error":
        return error_reply(core.transient_fault(current.call_count), usage_headers(current, ctx, at))
    try:
        ctx.caller = core.resolve_caller(call.token, at) if call.token else None
    except GraphFault:
        ctx.caller = None
    code = rate_limit_code(current, call, ctx)
    return error_reply(limits.rate_limit_fault(code), usage_headers(current, ctx, at, injected_throttle=True))


def rate_limit_code(current: SimState, call: Call, ctx: Context) -> int:
    """The code of an injected rate limit: the one set, else the one Meta uses for that call.

    The asset the path names decides: business-use-case calls get their use case's code
    (80004 ads management, 80000 insights, 80001 Pages with a system-user or Page token...);
    otherwise 4 for app tokens, 32 for Pages with a user token, 17 for the rest.
    """
    segments = [s for s in call.path.split("/") if s]
    asset_id = ctx.ad_account_id or (segments[0] if segments else None)
    asset = SimAsset.objects.select_related("owner").filter(asset_id=asset_id).first() if asset_id else None
    token = ctx.token
    use_case = None
    if asset is not None and token is not None:
        insights = ctx.ad_account_id is not None and "insights" in segments
        use_case = "ads_insights" if insights else limits.use_case_for(asset.kind, token)
        if use_case:
            ctx.touched.add(limits.business_for(token, asset), use_case)
    if current.rate_limit_code:
        return current.rate_limit_code
    if token is None:
        return 4
    if use_case:
        return limits.USE_CASE_CODES[use_case][0]
    return 32 if asset is not None and asset.kind == SimAsset.Kind.PAGE else 17


def ad_account_in(path: str) -> str | None:
    for segment in path.split("/"):
        if segment.startswith("act_"):
            return segment.removeprefix("act_")
    return None


# --- routing -----------------------------------------------------------------------------------


def route(call: Call, at: datetime, ctx: Context) -> Any:
    segments = [s for s in call.path.split("/") if s]
    method = (call.params.get("method") or call.method).upper()
    if segments == ["oauth", "access_token"]:
        return oauth_access_token(call.params, at)
    ctx.ad_account_id = ad_account_in(call.path)
    caller = core.resolve_caller(call.token, at)
    ctx.caller = caller
    core.check_proof(caller, call.params)
    if not segments:
        if "ids" in call.params and method == "GET":
            return read_ids(call, caller, at, ctx)
        raise GraphFault(100, "(#100) Missing or invalid request", error_type="GraphMethodException")
    if segments == ["debug_token"]:
        return debug_token(call.params, caller, at)
    edge = segments[1] if len(segments) > 1 else None
    # Token management answers 200 for a missing permission itself (with its own HTTP status).
    node = load_node(segments[0], caller, at, check_permission=edge != "system_user_access_tokens")
    ctx.asset_kind = node.obj.kind if isinstance(node.obj, SimAsset) else None
    if edge is None:
        if method != "GET":
            raise core.missing_object(segments[0], method.lower())
        return render(node, parse_fields(call.params.get("fields", "")), call, caller, at)
    if edge == "permissions" and node.kind == "user_like":
        if method == "DELETE":
            # The permission may be in the path or, as Meta's SDK sends it, in a parameter.
            permission = segments[2] if len(segments) > 2 else call.params.get("permission")
            return revoke_permissions(caller, permission or None)
        return page_of(permission_rows(caller), call.params, call, f"{segments[0]}/permissions")
    if edge == "system_user_access_tokens" and node.kind == "business":
        if method != "POST":
            raise core.missing_object(f"{segments[0]}/{edge}", method.lower())
        return system_user_access_tokens(node.obj, caller, call.params, at)
    if len(segments) > 2 or method != "GET":
        raise core.missing_object("/".join(segments), method.lower())
    edges = node_edges(node, caller, at)
    if edge not in edges:
        raise GraphFault(100, f"(#100) Tried accessing nonexisting field ({edge}) on node type ({node.type_name})")
    items = edges[edge]()
    spec = parse_fields(call.params.get("fields", "")) or edge_default_fields(edge)
    rows = [render(item, spec, call, caller, at) for item in items]
    return page_of(rows, call.params, call, f"{segments[0]}/{edge}")


def split_list(value: str) -> list[str]:
    value = (value or "").strip()
    if value.startswith("["):
        try:
            return [str(v) for v in json.loads(value)]
        except ValueError:
            raise GraphFault(100, "(#100) Invalid JSON for a list parameter")
    return [part.strip() for part in value.split(",") if part.strip()]


def read_ids(call: Call, caller: Caller, at: datetime, ctx: Context) -> dict:
    ids = split_list(call.params["ids"])
    if not ids:
        raise GraphFault(100, "(#100) The parameter ids is required")
    fields = parse_fields(call.params.get("fields", ""))
    result = {}
    for object_id in ids:
        if object_id.startswith("act_"):
            ctx.ad_account_id = object_id.removeprefix("act_")
        result[object_id] = render(load_node(object_id, caller, at), fields, call, caller, at)
    return result


# --- nodes -------------------------------------------------------------------------------------


@dataclass
class Node:
    type_name: str
    kind: str  # user_like, system_user, business, asset, app
    obj: Any


ASSET_TYPE_NAMES = {
    SimAsset.Kind.PAGE: "Page",
    SimAsset.Kind.AD_ACCOUNT: "AdAccount",
    SimAsset.Kind.WHATSAPP_BUSINESS_ACCOUNT: "WhatsAppBusinessAccount",
    SimAsset.Kind.INSTAGRAM_ACCOUNT: "IGUser",
    SimAsset.Kind.CATALOG: "ProductCatalog",
    SimAsset.Kind.PIXEL: "AdsPixel",
}
# user_access_expire_time: on Page, AdAccount, Business, AdsPixel and ProductCatalog (Meta's SDK),
# and on Instagram and WhatsApp Business accounts, whose personal-account grants end the same way
# in a managed-accounts migration (D14).
EXPIRE_TIME_KINDS = set(SimAsset.Kind.values)
# The tasks a person with full control of a Page can do (the `tasks` field of /me/accounts).
PAGE_TASKS = ["ADVERTISE", "ANALYZE", "CREATE_CONTENT", "MESSAGING", "MODERATE", "MANAGE"]


def _asset(object_id: str, kind: str | None = None) -> SimAsset | None:
    memo = core.current_memo()
    if memo is not None:
        found = memo.assets_among([object_id])
        asset = found[0] if found else None
    else:
        asset = SimAsset.objects.select_related("owner").filter(asset_id=object_id).first()
    if asset is not None and kind is not None and asset.kind != kind:
        return None
    return asset


def _business(object_id: str) -> SimBusiness | None:
    memo = core.current_memo()
    if memo is not None:
        found = memo.businesses_among([object_id])
        return found[0] if found else None
    return SimBusiness.objects.filter(business_id=object_id).first()


def load_node(object_id: str, caller: Caller, at: datetime, *, check_permission: bool = True) -> Node:
    """The node an id names, as this caller may see it; 100/33 for what it may not, and the
    permission error (10 or 200) for what it sees but no longer has the permission to read."""
    token = caller.token
    if object_id == "me":
        if token is None:
            raise GraphFault(2500, "An active access token must be used to query information about the current user.")
        if token.type == SimToken.Type.SYSTEM_USER:
            return Node("SystemUser", "user_like", token.system_user)
        if token.type == SimToken.Type.PAGE:
            return _asset_node(token.page, token, at, "me", check_permission)
        return Node("User", "user_like", token.person)
    if object_id.startswith("act_"):
        asset = _asset(object_id.removeprefix("act_"), SimAsset.Kind.AD_ACCOUNT)
        if asset is None:
            raise core.missing_object(object_id)
        return _asset_node(asset, token, at, object_id, check_permission)
    if object_id == caller.app.app_id:
        return Node("Application", "app", caller.app)
    if token is not None:
        asset = _asset(object_id)
        if asset is not None and asset.kind != SimAsset.Kind.AD_ACCOUNT:
            return _asset_node(asset, token, at, object_id, check_permission)
        business = _business(object_id)
        if business is not None and object_id in core.token_business_ids(token):
            if check_permission:
                core.require_permission(token, "business")
            return Node("Business", "business", business)
        if token.person and token.type == SimToken.Type.USER and token.person.user_id == object_id:
            return Node("User", "user_like", token.person)
        if token.type == SimToken.Type.SYSTEM_USER and token.system_user.system_user_id == object_id:
            return Node("SystemUser", "user_like", token.system_user)
    raise core.missing_object(object_id)


def _asset_node(asset: SimAsset, token: SimToken | None, at: datetime, object_id: str, check_permission: bool) -> Node:
    if not can_see_asset(token, asset, at):
        raise core.missing_object(object_id)
    if check_permission:
        core.require_permission(token, asset.kind)
    return Node(ASSET_TYPE_NAMES[asset.kind], "asset", asset)


def can_see_asset(token: SimToken | None, asset: SimAsset, at: datetime) -> bool:
    if token is None or asset.asset_id not in token.asset_ids:
        return False
    if not core.in_client_business(token, asset):
        return False
    ends = core.personal_access_ends(token, asset.owner)
    return ends is None or ends > at


def node_fields(node: Node, caller: Caller) -> dict[str, Any]:
    """Every field a node type has; a None value is omitted from the response, as Meta does.

    A callable value is computed only when asked for (a Page's access_token makes a token).
    """
    obj = node.obj
    token = caller.token
    if node.type_name == "User":
        return {"id": obj.user_id, "name": obj.name, "email": obj.email or None}
    if node.type_name == "SystemUser":
        return {"id": obj.system_user_id, "name": obj.name, "client_business_id": obj.business.business_id}
    if node.kind == "business":
        ends = core.personal_access_ends(token, obj)
        return {
            "id": obj.business_id,
            "name": obj.name,
            "verification_status": "verified",
            "user_access_expire_time": core.meta_datetime(ends) if ends else None,
        }
    if node.kind == "app":
        return {"id": obj.app_id, "name": obj.name}
    asset: SimAsset = obj
    ctx = _context.get()
    if ctx is not None:
        ctx.touch(asset)
    values: dict[str, Any] = {
        "id": f"act_{asset.asset_id}" if asset.kind == SimAsset.Kind.AD_ACCOUNT else asset.asset_id,
        "name": asset.name,
        "business": Node("Business", "business", asset.owner),
    }
    if asset.kind in EXPIRE_TIME_KINDS:
        ends = core.personal_access_ends(token, asset.owner)
        values["user_access_expire_time"] = core.meta_datetime(ends) if ends else None
    if asset.kind == SimAsset.Kind.AD_ACCOUNT:
        values.update(account_id=asset.asset_id, account_status=1, currency="USD")
    elif asset.kind == SimAsset.Kind.PAGE:
        values["category"] = "Business"
        if token is not None and token.type != SimToken.Type.PAGE:
            values["tasks"] = PAGE_TASKS
            values["access_token"] = lambda: core.page_token_for(token, asset).value
        elif token is not None:
            values["access_token"] = token.value
    elif asset.kind == SimAsset.Kind.INSTAGRAM_ACCOUNT:
        values["username"] = asset.name.lower().replace(" ", "_")
    elif asset.kind == SimAsset.Kind.WHATSAPP_BUSINESS_ACCOUNT:
        values["currency"] = "USD"
    return values


DEFAULT_FIELDS = {"AdAccount": ["account_id", "id"], "SystemUser": ["id", "name"]}
# /me/accounts answers each Page with its token unless fields are asked (Meta's system-user guide).
EDGE_DEFAULT_FIELDS = {"accounts": ["access_token", "category", "name", "id", "tasks"]}


def edge_default_fields(edge: str) -> FieldSpec:
    return [(name, {}, None) for name in EDGE_DEFAULT_FIELDS.get(edge, [])]


def assets_of(ids: list[str], kind: str, token: SimToken | None, at: datetime) -> list[Node]:
    memo = core.current_memo()
    if memo is not None:
        assets = [a for a in memo.assets_among(ids) if a.kind == kind]
    else:
        assets = SimAsset.objects.select_related("owner").filter(asset_id__in=ids, kind=kind)
    return [Node(ASSET_TYPE_NAMES[a.kind], "asset", a) for a in assets if can_see_asset(token, a, at)]


def _granted_edge(token: SimToken | None, kind: str, at: datetime):
    """An edge listing the token's assets of one kind; reading it needs a permission on that kind."""

    def load() -> list[Node]:
        core.require_permission(token, kind)
        return assets_of(token.asset_ids if token else [], kind, token, at)

    return load


def node_edges(node: Node, caller: Caller, at: datetime) -> dict[str, Any]:
    token = caller.token
    if node.type_name == "User":
        return {
            "accounts": _granted_edge(token, SimAsset.Kind.PAGE, at),
            "adaccounts": _granted_edge(token, SimAsset.Kind.AD_ACCOUNT, at),
            "businesses": lambda: _businesses_edge(token),
        }
    if node.type_name == "SystemUser":
        return {
            "accounts": _granted_edge(token, SimAsset.Kind.PAGE, at),
            "assigned_pages": _granted_edge(token, SimAsset.Kind.PAGE, at),
            "assigned_ad_accounts": _granted_edge(token, SimAsset.Kind.AD_ACCOUNT, at),
            "assigned_whatsapp_business_accounts": _granted_edge(token, SimAsset.Kind.WHATSAPP_BUSINESS_ACCOUNT, at),
            "assigned_product_catalogs": _granted_edge(token, SimAsset.Kind.CATALOG, at),
            "assigned_instagram_accounts": _granted_edge(token, SimAsset.Kind.INSTAGRAM_ACCOUNT, at),
        }
    if node.kind == "business":
        business: SimBusiness = node.obj
        edges = {}
        for suffix, kind in (
            ("pages", SimAsset.Kind.PAGE),
            ("ad_accounts", SimAsset.Kind.AD_ACCOUNT),
            ("whatsapp_business_accounts", SimAsset.Kind.WHATSAPP_BUSINESS_ACCOUNT),
            ("product_catalogs", SimAsset.Kind.CATALOG),
            ("instagram_accounts", SimAsset.Kind.INSTAGRAM_ACCOUNT),
            ("pixels", SimAsset.Kind.PIXEL),
        ):
            edges[f"owned_{suffix}"] = _edge_loader(business.owned_assets.filter(kind=kind))
            edges[f"client_{suffix}"] = _edge_loader(business.client_assets.filter(kind=kind))
        edges["adspixels"] = edges["owned_pixels"]
        return edges
    return {}


def _businesses_edge(token: SimToken | None) -> list[Node]:
    core.require_permission(token, "business")
    return [Node("Business", "business", b) for b in businesses_of(token)]


def businesses_of(token: SimToken | None) -> list[SimBusiness]:
    ids = core.token_business_ids(token)
    memo = core.current_memo()
    if memo is not None:
        return memo.businesses_among(ids)
    return list(SimBusiness.objects.filter(business_id__in=ids))


def _edge_loader(queryset):
    return lambda: [Node(ASSET_TYPE_NAMES[a.kind], "asset", a) for a in queryset.select_related("owner")]


# --- fields ------------------------------------------------------------------------------------

FieldSpec = list[tuple[str, dict[str, str], "FieldSpec | None"]]


def parse_fields(text: str) -> FieldSpec:
    """Meta's field syntax: `id,name,owned_pages.limit(5){id,name}`. The spec is shared: read it only."""
    return _parse_fields(text)


@functools.lru_cache(maxsize=256)  # a batch's 50 items ask the same fields
def _parse_fields(text: str) -> FieldSpec:
    spec, rest = _parse_field_list(text.replace(" ", ""), 0)
    if rest != len(text.replace(" ", "")):
        raise GraphFault(100, "(#100) Syntax error in the fields parameter")
    return spec


def _parse_field_list(text: str, pos: int) -> tuple[FieldSpec, int]:
    spec: FieldSpec = []
    while pos < len(text) and text[pos] != "}":
        match = re.match(r"[A-Za-z0-9_]+", text[pos:])
        if not match:
            raise GraphFault(100, "(#100) Syntax error in the fields parameter")
        name = match.group(0)
        pos += len(name)
        modifiers: dict[str, str] = {}
        while pos < len(text) and text[pos] == ".":
            mod = re.match(r"\.([a-z_]+)\(([^)]*)\)", text[pos:])
            if not mod:
                raise GraphFault(100, "(#100) Syntax error in the fields parameter")
            modifiers[mod.group(1)] = mod.group(2)
            pos += len(mod.group(0))
        sub = None
        if pos < len(text) and text[pos] == "{":
            sub, pos = _parse_field_list(text, pos + 1)
            if pos >= len(text) or text[pos] != "}":
                raise GraphFault(100, "(#100) Syntax error in the fields parameter")
            pos += 1
        spec.append((name, modifiers, sub))
        if pos < len(text) and text[pos] == ",":
            pos += 1
    return spec, pos


def render(node: Node, spec: FieldSpec, call: Call, caller: Caller, at: datetime) -> dict:
    values = node_fields(node, caller)
    if not spec:
        names = DEFAULT_FIELDS.get(node.type_name, ["id", "name"])
        spec = [(name, {}, None) for name in names]
    edges = None
    result: dict[str, Any] = {}
    for name, modifiers, sub in spec:
        if name in values:
            value = values[name]
            if isinstance(value, Node):
                result[name] = render(value, sub or [], call, caller, at)
            elif callable(value):
                result[name] = value()
            elif value is not None:
                result[name] = value
            continue
        if edges is None:
            edges = node_edges(node, caller, at)
        if name not in edges:
            raise GraphFault(100, f"(#100) Tried accessing nonexisting field ({name}) on node type ({node.type_name})")
        rows = [render(item, sub or edge_default_fields(name), call, caller, at) for item in edges[name]()]
        params = {"limit": modifiers.get("limit", str(DEFAULT_PAGE_SIZE))}
        if modifiers.get("after"):
            params["after"] = modifiers["after"]
        if rows:
            result[name] = page_of(rows, params, call, f"{values.get('id', '')}/{name}")
    if "id" not in result and "id" in values:
        result["id"] = values["id"]
    return result


# --- pagination --------------------------------------------------------------------------------


def encode_cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"sim:{index}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, index = raw.partition(":")
        if prefix != "sim":
            raise ValueError
        return int(index)
    except ValueError:
        raise GraphFault(100, "(#100) Invalid cursor")


def page_of(rows: list[dict], params: dict, call: Call, path: str) -> dict:
    try:
        limit = int(params.get("limit") or DEFAULT_PAGE_SIZE)
    except ValueError:
        raise GraphFault(100, "(#100) Param limit must be a number")
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    start = 0
    if params.get("after"):
        start = decode_cursor(params["after"]) + 1
    elif params.get("before"):
        start = max(0, decode_cursor(params["before"]) - limit)
    chunk = rows[start : start + limit]
    result: dict[str, Any] = {"data": chunk}
    if not chunk:
        return result
    paging: dict[str, Any] = {
        "cursors": {"before": encode_cursor(start), "after": encode_cursor(start + len(chunk) - 1)}
    }
    if start + limit < len(rows):
        paging["next"] = paging_url(call, path, params, after=paging["cursors"]["after"])
    if start > 0:
        paging["previous"] = paging_url(call, path, params, before=paging["cursors"]["before"])
    result["paging"] = paging
    return result


def paging_url(call: Call, path: str, params: dict, **cursor: str) -> str:
    # Meta puts the access token (and the proof) in paging URLs; a client that follows them
    # sends its token in a URL, which is why ours should follow the cursors instead.
    query = {k: v for k, v in call.params.items() if k not in ("after", "before", "method", "batch")}
    query.update({k: v for k, v in params.items() if k not in ("after", "before")})
    if call.token:
        query["access_token"] = call.token
    query.update(cursor)
    return f"{call.base_url}{call.version}/{path}?{urlencode(query)}"


# --- oauth -------------------------------------------------------------------------------------


def authenticate_client(params: dict) -> SimApp:
    client_id = params.get("client_id")
    if not client_id:
        raise GraphFault(101, "Missing client_id parameter.")
    app = SimApp.objects.filter(app_id=client_id).first()
    if app is None:
        raise GraphFault(101, "Error validating application. Invalid application ID.")
    secret = params.get("client_secret") or ""
    if not secret or not hmac.compare_digest(secret, app.app_secret):
        raise GraphFault(1, "Error validating client secret.")
    return app


def token_reply(token: SimToken, at: datetime) -> dict:
    body: dict[str, Any] = {"access_token": token.value, "token_type": "bearer"}
    if token.expires_at:
        body["expires_in"] = int((token.expires_at - at).total_seconds())
    return body


def oauth_access_token(params: dict, at: datetime) -> dict:
    grant_type = params.get("grant_type", "")
    if grant_type == "client_credentials":
        app = authenticate_client(params)
        return {"access_token": f"{app.app_id}|{app.app_secret}", "token_type": "bearer"}
    app = authenticate_client(params)
    if grant_type == "fb_exchange_token":
        return exchange_long_lived(app, params.get("fb_exchange_token") or "", at)
    value = params.get("code")
    if not value:
        raise core.missing_parameter("code")
    with transaction.atomic():
        code = SimCode.objects.select_for_update().filter(value=value, app=app).first()
        if code is None:
            raise GraphFault(100, "Invalid verification code format.")
        if code.used_at is not None:
            raise GraphFault(100, "This authorization code has been used.", subcode=36009)
        if code.expires_at <= at:
            raise GraphFault(100, "This authorization code has expired.", subcode=36007)
        if params.get("redirect_uri", "") != code.redirect_uri:
            raise GraphFault(
                100,
                "Error validating verification code. Please make sure your redirect_uri is identical to the one "
                "you used in the OAuth dialog request",
                subcode=36008,
            )
        code.used_at = at
        code.save(update_fields=["used_at"])
        token = token_from_code(code, at)
    return token_reply(token, at)


def token_from_code(code: SimCode, at: datetime) -> SimToken:
    configuration = code.configuration
    token_type = (
        SimToken.Type.SYSTEM_USER
        if configuration and configuration.token_type == SimConfiguration.TokenType.SYSTEM_USER
        else SimToken.Type.USER
    )
    if token_type == SimToken.Type.SYSTEM_USER:
        SimToken.objects.filter(app=code.app, business=code.business, is_primary=True).update(is_primary=False)
    return core.create_token(
        code.app,
        token_type=token_type,
        person=code.person,
        business=code.business,
        configuration=configuration,
        scopes=list(configuration.permissions) if configuration else list(code.scopes),
        asset_ids=code.asset_ids,
        at=at,
        expires_in=core.token_lifetime_for(configuration, token_type),
        is_primary=token_type == SimToken.Type.SYSTEM_USER,
    )


def exchange_long_lived(app: SimApp, value: str, at: datetime) -> dict:
    if not value:
        raise core.missing_parameter("fb_exchange_token")
    token = SimToken.objects.select_related("app").filter(value=value, app=app).first()
    if token is None:
        raise core.invalid_token_fault(None, "Invalid OAuth access token - Cannot parse access token")
    problem = core.token_problem(token, at)
    if problem:
        raise core.invalid_token_fault(*problem)
    if token.type != SimToken.Type.USER:
        raise GraphFault(100, "(#100) Only user access tokens can be exchanged for long-lived tokens")
    new = core.create_token(
        app,
        token_type=SimToken.Type.USER,
        person=token.person,
        business=token.business,
        configuration=token.configuration,
        scopes=token.scopes,
        asset_ids=token.asset_ids,
        at=at,
        expires_in=core.LONG_LIVED_TOKEN,
        long_lived=True,
        parent=token,
    )
    return token_reply(new, at)


# --- debug_token -------------------------------------------------------------------------------


def debug_token(params: dict, caller: Caller, at: datetime) -> dict:
    value = params.get("input_token")
    if not value:
        raise core.missing_parameter("input_token")
    if "|" in value:
        app = core.parse_app_token(value)
        if app is not None:
            return {
                "data": {"app_id": app.app_id, "type": "APP", "application": app.name, "is_valid": True, "scopes": []}
            }
    token = core.find_token(value)
    if token is None:
        return {
            "data": {
                "error": {"code": 190, "message": "Invalid OAuth access token - Cannot parse access token"},
                "is_valid": False,
                "scopes": [],
            }
        }
    holder = core.grantor(token)
    data: dict[str, Any] = {
        "app_id": token.app.app_id,
        "type": token.type,
        "application": token.app.name,
        "data_access_expires_at": core.unix(token.data_access_expires_at),
        "expires_at": core.unix(token.expires_at),
        "is_valid": True,
        "issued_at": core.unix(token.issued_at),
        "scopes": core.effective_scopes(token),
        "granular_scopes": core.granular_scopes(token),
        "user_id": holder.system_user.system_user_id if holder.system_user else holder.person.user_id,
    }
    if token.type == SimToken.Type.PAGE and token.page is not None:
        data["profile_id"] = token.page.asset_id
    problem = core.token_problem(token, at)
    if problem:
        subcode, message = problem
        data["is_valid"] = False
        data["error"] = {"code": 190, "message": message}
        if subcode is not None:
            data["error"]["subcode"] = subcode
    return {"data": data}


# --- permissions -------------------------------------------------------------------------------


def permission_rows(caller: Caller) -> list[dict]:
    token = caller.token
    granted = [{"permission": scope, "status": "granted"} for scope in token.scopes]
    declined = [
        {"permission": scope, "status": "declined"} for scope in token.declined_scopes if scope not in token.scopes
    ]
    return granted + declined


def revoke_permissions(caller: Caller, permission: str | None) -> dict:
    """`DELETE /{user}/permissions[/{permission}]`: one permission, or the whole app (190/458 after)."""
    core.revoke(caller.token, permission)
    return {"success": True}


# --- system user token management ---------------------------------------------------------------


def system_user_access_tokens(business: SimBusiness, caller: Caller, params: dict, at: datetime) -> dict:
    # Meta requires the proof on this endpoint whatever the app's setting.
    core.check_proof(caller, params, required=True)
    token = caller.token
    if token is None or token.type != SimToken.Type.SYSTEM_USER:
        # Only the installation's system user manages its tokens; a person's token is refused.
        raise GraphFault(
            200,
            "(#200) Only a business integration system user access token can manage system user access tokens",
            status=403,
        )
    if "business_management" not in token.scopes:
        raise GraphFault(
            200,
            "(#200) Requires business_management permission to manage the object",
            error_type="OAuthException",
            status=403,
        )
    system_user = SimSystemUser.objects.filter(app=caller.app, business=business).first()
    requested_id = params.get("system_user_id")
    if system_user is None or (requested_id and requested_id != system_user.system_user_id):
        raise GraphFault(
            3962,
            "(#3962) The system user is not this app's business integration system user in this business.",
        )
    primary = (
        SimToken.objects.filter(app=caller.app, business=business, system_user=system_user, is_primary=True)
        .order_by("-id")
        .first()
    )
    if primary is None or core.token_problem(primary, at):
        raise GraphFault(452, "(#452) Session key invalid. The business integration token was revoked or has expired.")
    if str(params.get("fetch_only", "")).lower() in ("true", "1"):
        return {"access_token": primary.value}
    assets = [a.removeprefix("act_") for a in split_list(params.get("asset", ""))] or list(primary.asset_ids)
    scopes = split_list(params.get("scope", "")) or list(primary.scopes)
    outside = [a for a in assets if a not in primary.asset_ids] + [s for s in scopes if s not in primary.scopes]
    if outside:
        raise GraphFault(
            3962,
            f"(#3962) Requested assets or scopes are not part of the original grant: {', '.join(outside)}",
        )
    sixty_days = str(params.get("set_token_expires_in_60_days", "")).lower() in ("true", "1")
    new = core.create_token(
        caller.app,
        token_type=SimToken.Type.SYSTEM_USER,
        person=primary.person,
        business=business,
        configuration=primary.configuration,
        scopes=scopes,
        asset_ids=assets,
        at=at,
        expires_in=core.LONG_LIVED_TOKEN if sixty_days else None,
        parent=primary,
    )
    return {"access_token": new.value}
