"""The Graph API as Meta serves it: routing, nodes, fields, edges, pagination, batch.

HTTP-free: a `Call` goes in, a `Reply` comes out. `views.graph` adapts HTTP; batch items
run through the same `execute()` so an item behaves exactly like a single request.
"""

from __future__ import annotations

import base64
import functools
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from django.db import transaction

from . import core
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
MAX_BATCH_ITEMS = 50
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


@dataclass
class Context:
    """What a call touched, for the usage headers."""

    caller: Caller | None = None
    ad_account_id: str | None = None
    asset_kind: str | None = None


# --- entry points ------------------------------------------------------------------------------


def serve(call: Call) -> Reply:
    """One HTTP request: latency, counting, faults, then the call itself (or a batch)."""
    with core.request_memo():
        return _serve(call)


def _serve(call: Call) -> Reply:
    current = core.state()
    memo = core.current_memo()
    if memo is not None:
        memo.clock_offset = current.clock_offset_seconds  # core.now() needn't read the row again
    if current.latency_ms:
        time.sleep(current.latency_ms / 1000)
    at = core.now()
    if not call.path.strip("/") and call.method == "POST" and "batch" in call.params:
        return run_batch(call, current, at)
    # `?ids=a,b,c` counts as three calls (a malformed list is refused later, in route()).
    calls = len([part for part in call.params.get("ids", "").split(",") if part.strip()]) or 1
    current = core.record_calls(calls, at)
    fault = core.draw_fault(current)
    if fault:
        return fault_reply(fault, call, current)
    return execute(call, at, current)


def execute(call: Call, at: datetime, current: SimState) -> Reply:
    ctx = Context()
    try:
        body = route(call, at, ctx)
        return Reply(200, body, usage_headers(current, ctx))
    except GraphFault as fault:
        return Reply(fault.status, fault.payload(), {**usage_headers(current, ctx), **fault.headers})


def fault_reply(kind: str, call: Call, current: SimState) -> Reply:
    ctx = Context(ad_account_id=ad_account_in(call.path))
    if kind == "timeout":
        if current.timeout_hang_ms:
            time.sleep(current.timeout_hang_ms / 1000)
        fault = core.timeout_fault()
        return Reply(fault.status, fault.payload(), usage_headers(current, ctx), timed_out=True)
    if kind == "error":
        fault = core.transient_fault(current.call_count)
        return Reply(fault.status, fault.payload(), usage_headers(current, ctx))
    try:
        ctx.caller = core.resolve_caller(call.token, core.now()) if call.token else None
    except GraphFault:
        ctx.caller = None
    fault = core.rate_limit_fault(rate_limit_code(current, call, ctx))
    return Reply(fault.status, fault.payload(), usage_headers(current, ctx, throttled=True))


def rate_limit_code(current: SimState, call: Call, ctx: Context) -> int:
    if current.rate_limit_code:
        return current.rate_limit_code
    if ctx.ad_account_id:
        return 80004
    if ctx.caller is None or ctx.caller.is_app:
        return 4
    first = next((s for s in call.path.split("/") if s), "")
    kind = SimAsset.objects.filter(asset_id=first).values_list("kind", flat=True).first()
    # Page calls are throttled per Page (32); WhatsApp per business account (80008).
    return {SimAsset.Kind.PAGE: 32, SimAsset.Kind.WHATSAPP_BUSINESS_ACCOUNT: 80008}.get(kind, 17)


def ad_account_in(path: str) -> str | None:
    for segment in path.split("/"):
        if segment.startswith("act_"):
            return segment.removeprefix("act_")
    return None


BUSINESS_USE_CASE_TYPES = {
    SimAsset.Kind.AD_ACCOUNT: "ads_management",
    SimAsset.Kind.PAGE: "pages",
    SimAsset.Kind.INSTAGRAM_ACCOUNT: "instagram",
    SimAsset.Kind.WHATSAPP_BUSINESS_ACCOUNT: "whatsapp_business_management",
    SimAsset.Kind.CATALOG: "catalog_management",
}


def usage_headers(current: SimState, ctx: Context, *, throttled: bool = False) -> dict[str, str]:
    percent = 100 if throttled else core.usage_percent(current)
    regain_minutes = 5 if throttled else 0
    headers = {
        "X-App-Usage": json.dumps(
            {"call_count": percent, "total_cputime": percent // 2, "total_time": percent // 2}, separators=(",", ":")
        )
    }
    token = ctx.caller.token if ctx.caller else None
    if token is not None and token.business_id:
        use_case = BUSINESS_USE_CASE_TYPES.get(
            SimAsset.Kind.AD_ACCOUNT if ctx.ad_account_id else ctx.asset_kind, "business_management"
        )
        headers["X-Business-Use-Case-Usage"] = json.dumps(
            {
                token.business.business_id: [
                    {
                        "type": use_case,
                        "call_count": percent,
                        "total_cputime": percent // 2,
                        "total_time": percent // 2,
                        "estimated_time_to_regain_access": regain_minutes,
                        "ads_api_access_tier": "standard_access",
                    }
                ]
            },
            separators=(",", ":"),
        )
    if ctx.ad_account_id:
        headers["X-Ad-Account-Usage"] = json.dumps(
            {
                "acc_id_util_pct": percent,
                "reset_time_duration": 300 if throttled else 0,
                "ads_api_access_tier": "standard_access",
            },
            separators=(",", ":"),
        )
    return headers


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
    node = load_node(segments[0], caller, at)
    ctx.asset_kind = node.obj.kind if isinstance(node.obj, SimAsset) else None
    if len(segments) == 1:
        if method != "GET":
            raise core.missing_object(segments[0], method.lower())
        return render(node, parse_fields(call.params.get("fields", "")), call, caller, at)
    edge = segments[1]
    if edge == "permissions" and node.kind == "user_like":
        if method == "DELETE":
            return revoke_permissions(caller, segments[2] if len(segments) > 2 else None)
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
    rows = [render(item, parse_fields(call.params.get("fields", "")), call, caller, at) for item in items]
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
# user_access_expire_time exists on Page, AdAccount, Business, AdsPixel and ProductCatalog (Meta's SDK).
EXPIRE_TIME_KINDS = {SimAsset.Kind.PAGE, SimAsset.Kind.AD_ACCOUNT, SimAsset.Kind.CATALOG, SimAsset.Kind.PIXEL}


def load_node(object_id: str, caller: Caller, at: datetime) -> Node:
    token = caller.token
    if object_id == "me":
        if token is None:
            raise GraphFault(2500, "An active access token must be used to query information about the current user.")
        if token.type == SimToken.Type.SYSTEM_USER:
            return Node("SystemUser", "user_like", token.system_user)
        return Node("User", "user_like", token.person)
    memo = core.current_memo()
    if object_id.startswith("act_"):
        if memo is not None:
            found = memo.assets_among([object_id.removeprefix("act_")])
            asset = found[0] if found and found[0].kind == SimAsset.Kind.AD_ACCOUNT else None
        else:
            asset = SimAsset.objects.filter(
                asset_id=object_id.removeprefix("act_"), kind=SimAsset.Kind.AD_ACCOUNT
            ).first()
        if asset is None or not can_see_asset(token, asset, at):
            raise core.missing_object(object_id)
        return Node("AdAccount", "asset", asset)
    if object_id == caller.app.app_id:
        return Node("Application", "app", caller.app)
    if token is not None:
        if memo is not None:
            found = memo.assets_among([object_id])
            asset = found[0] if found else None
        else:
            asset = SimAsset.objects.select_related("owner").filter(asset_id=object_id).first()
        if asset is not None and asset.kind != SimAsset.Kind.AD_ACCOUNT and can_see_asset(token, asset, at):
            return Node(ASSET_TYPE_NAMES[asset.kind], "asset", asset)
        if memo is not None:
            found_businesses = memo.businesses_among([object_id])
            business = found_businesses[0] if found_businesses else None
        else:
            business = SimBusiness.objects.filter(business_id=object_id).first()
        if business is not None and object_id in core.token_business_ids(token):
            return Node("Business", "business", business)
        if token.person and token.person.user_id == object_id:
            return Node("User", "user_like", token.person)
        if token.system_user and token.system_user.system_user_id == object_id:
            return Node("SystemUser", "user_like", token.system_user)
    raise core.missing_object(object_id)


def can_see_asset(token: SimToken | None, asset: SimAsset, at: datetime) -> bool:
    if token is None or asset.asset_id not in token.asset_ids:
        return False
    ends = core.personal_access_ends(token, asset.owner)
    return ends is None or ends > at


def node_fields(node: Node, caller: Caller) -> dict[str, Any]:
    """Every field a node type has; a None value is omitted from the response, as Meta does."""
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
    elif asset.kind == SimAsset.Kind.INSTAGRAM_ACCOUNT:
        values["username"] = asset.name.lower().replace(" ", "_")
    elif asset.kind == SimAsset.Kind.WHATSAPP_BUSINESS_ACCOUNT:
        values["currency"] = "USD"
    return values


DEFAULT_FIELDS = {"AdAccount": ["account_id", "id"], "SystemUser": ["id", "name"]}


def assets_of(ids: list[str], kind: str, token: SimToken | None, at: datetime) -> list[Node]:
    memo = core.current_memo()
    if memo is not None:
        assets = [a for a in memo.assets_among(ids) if a.kind == kind]
    else:
        assets = SimAsset.objects.select_related("owner").filter(asset_id__in=ids, kind=kind)
    return [Node(ASSET_TYPE_NAMES[a.kind], "asset", a) for a in assets if can_see_asset(token, a, at)]


def node_edges(node: Node, caller: Caller, at: datetime) -> dict[str, Any]:
    token = caller.token
    granted = token.asset_ids if token else []
    if node.type_name == "User":
        return {
            "accounts": lambda: assets_of(granted, SimAsset.Kind.PAGE, token, at),
            "adaccounts": lambda: assets_of(granted, SimAsset.Kind.AD_ACCOUNT, token, at),
            "businesses": lambda: [Node("Business", "business", b) for b in businesses_of(token)],
        }
    if node.type_name == "SystemUser":
        return {
            "assigned_pages": lambda: assets_of(granted, SimAsset.Kind.PAGE, token, at),
            "assigned_ad_accounts": lambda: assets_of(granted, SimAsset.Kind.AD_ACCOUNT, token, at),
            "assigned_whatsapp_business_accounts": lambda: assets_of(
                granted, SimAsset.Kind.WHATSAPP_BUSINESS_ACCOUNT, token, at
            ),
            "assigned_product_catalogs": lambda: assets_of(granted, SimAsset.Kind.CATALOG, token, at),
            "assigned_instagram_accounts": lambda: assets_of(granted, SimAsset.Kind.INSTAGRAM_ACCOUNT, token, at),
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
            elif value is not None:
                result[name] = value
            continue
        if edges is None:
            edges = node_edges(node, caller, at)
        if name not in edges:
            raise GraphFault(100, f"(#100) Tried accessing nonexisting field ({name}) on node type ({node.type_name})")
        rows = [render(item, sub or [], call, caller, at) for item in edges[name]()]
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
    data: dict[str, Any] = {
        "app_id": token.app.app_id,
        "type": token.type,
        "application": token.app.name,
        "data_access_expires_at": core.unix(token.data_access_expires_at),
        "expires_at": core.unix(token.expires_at),
        "is_valid": True,
        "issued_at": core.unix(token.issued_at),
        "scopes": list(token.scopes),
        "granular_scopes": core.granular_scopes(token),
        "user_id": token.system_user.system_user_id if token.system_user else token.person.user_id,
    }
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
    return [{"permission": scope, "status": "granted"} for scope in caller.token.scopes]


def revoke_permissions(caller: Caller, permission: str | None) -> dict:
    token = caller.token
    if token.type == SimToken.Type.SYSTEM_USER:
        tokens = SimToken.objects.filter(app=token.app, system_user=token.system_user)
    else:
        tokens = SimToken.objects.filter(app=token.app, person=token.person, type=SimToken.Type.USER)
    if permission:
        for each in tokens:
            if permission in each.scopes:
                each.scopes = [s for s in each.scopes if s != permission]
                each.save(update_fields=["scopes"])
        return {"success": True}
    core.invalidate_tokens(tokens, 458)
    return {"success": True}


# --- system user token management ---------------------------------------------------------------


def system_user_access_tokens(business: SimBusiness, caller: Caller, params: dict, at: datetime) -> dict:
    # Meta requires the proof on this endpoint whatever the app's setting.
    core.check_proof(caller, params, required=True)
    token = caller.token
    if token is None or "business_management" not in token.scopes:
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


# --- batch -------------------------------------------------------------------------------------


def run_batch(call: Call, current: SimState, at: datetime) -> Reply:
    ctx = Context()
    try:
        items = json.loads(call.params["batch"])
    except ValueError:
        items = None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        current = core.record_calls(1, at)
        fault = GraphFault(100, "(#100) The parameter batch must be a JSON array of request objects")
        return Reply(fault.status, fault.payload(), usage_headers(current, ctx))
    if len(items) > MAX_BATCH_ITEMS:
        current = core.record_calls(1, at)
        fault = GraphFault(1, "(#1) Too many requests in batch message. Maximum batch size is 50")
        return Reply(fault.status, fault.payload(), usage_headers(current, ctx))
    current = core.record_calls(max(len(items), 1), at)
    if call.token:
        try:
            ctx.caller = core.resolve_caller(call.token, at)
            core.check_proof(ctx.caller, call.params)
        except GraphFault as fault:
            return Reply(fault.status, fault.payload(), usage_headers(current, ctx))
    include_headers = str(call.params.get("include_headers", "true")).lower() != "false"
    subs = [batch_item_call(item, call) for item in items]
    memo = core.current_memo()
    if memo is not None:
        # Every token the items name, read in one query (a sweep's 50 tokens, or 50 inspected).
        memo.load_tokens([sub.token for sub in subs if sub.token and "|" not in sub.token])
        memo.load_tokens([sub.params["input_token"] for sub in subs if "|" not in sub.params.get("input_token", "|")])
    results: list[dict | None] = []
    timed_out = False
    for sub in subs:
        if timed_out:
            results.append(None)
            continue
        fault = core.draw_fault(current)
        if fault == "timeout":
            # Meta returns null for every item it did not finish.
            timed_out = True
            results.append(None)
            continue
        reply = fault_reply(fault, sub, current) if fault else execute(sub, at, current)
        if not is_read(sub):
            core.forget()
        entry: dict[str, Any] = {"code": reply.status}
        if include_headers:
            headers = {"Content-Type": "text/javascript; charset=UTF-8", **reply.headers}
            entry["headers"] = [{"name": k, "value": v} for k, v in headers.items()]
        entry["body"] = json.dumps(reply.body)
        results.append(entry)
    return Reply(200, results, usage_headers(current, ctx))


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
