"""The Graph proxy's service: a service's call to Meta made with the working token, which never leaves the portal.

``forward_call(call, ...)`` is all the API endpoint does (``api.routers.graph``), in this order:

1. ``graph.forward.prepare`` checks the request (no token or proof of the caller's own, no
   token-minting paths) and gives it the Graph version;
2. the token: the working token for the asset named (``tokens.selection.working_token``, as the
   token endpoint chooses it), or the client's own token when a client is named (``client_token``);
3. the throttle (``common.meta_throttle``): a scope Meta's usage headers or errors blocked (the
   app, the asset's business, the ad account, the token) answers 429 with ``Retry-After``
   without calling Meta;
4. the call, with no database transaction open (``GraphClient.forward``: the token in the header,
   ``appsecret_proof`` added, one attempt); the Graph hook counts it in the ledger (one record per
   call, one per answered batch item, Marketing API by path);
5. what the answer says: usage at the stop level or a throttle blocks the scope for the time Meta
   gave; a 190 (or 102) marks the token invalid at once through ``tokens.invalidation`` (one
   ``tokens_invalidated`` signal: the client needs reauthorization, reminders, ``connection.broken``).

Meta's status, body and headers go back as they came (``ProxyAnswer``), except that access tokens
are taken out of a body that holds any (``graph.forward.redact``). The token and the proof are
never in a log line, a URL the portal logs, an exception or an answer.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.utils import timezone

from common import meta_throttle
from common.meta import graph_client
from graph.client import GraphClient
from graph.errors import InvalidTokenError, TransientError
from graph.forward import ForwardRefused, prepare

from . import selection
from .invalidation import invalidate_token
from .models import AccessToken, Asset

logger = logging.getLogger(__name__)

# Kinds a client's own calls (``/me``, its business's edges) are made with, best first.
CLIENT_TOKEN_KINDS = (AccessToken.Kind.SYSTEM_USER, AccessToken.Kind.USER)
OFFBOARDED = selection.OFFBOARDED


class ProxyRefused(Exception):
    """The portal's own "no" (not Meta's): status, code, a sentence, and headers (``Retry-After``)."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict | None = None, **extra) -> None:
        super().__init__(code)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.extra = extra
        self.client_id: int | None = extra.pop("client_id", None)


@dataclass(frozen=True)
class ProxyCall:
    method: str
    path: str
    query: Sequence[tuple[str, str]]
    body: bytes | None
    content_type: str | None
    asset_meta_id: str | None = None
    client_id: int | None = None
    purpose: str | None = None
    scopes: Sequence[str] = ()


@dataclass
class ProxyAnswer:
    status: int
    headers: dict[str, str]
    content: bytes
    token_id: int
    client_id: int
    invalidated: bool = False
    errors: list = field(default_factory=list)


@dataclass(frozen=True)
class Chosen:
    token_id: int
    client_id: int
    value: str
    business_id: str | None
    ad_account_id: str | None


@functools.lru_cache(maxsize=4)
def _client(options: tuple) -> GraphClient:
    """One pooled client per process and settings: a new connection per proxied call would cost more than the goal."""
    return graph_client(**dict(options), pool_maxsize=settings.API_PROXY_POOL_SIZE)


def proxy_client() -> GraphClient:
    return _client(
        (
            ("app_id", settings.META_APP_ID),
            ("app_secret", settings.META_APP_SECRET),
            ("version", settings.META_GRAPH_VERSION),
            ("graph_url", settings.META_GRAPH_URL),
            ("proof_mode", settings.META_APPSECRET_PROOF_MODE),
            ("timeout", settings.META_HTTP_TIMEOUT),
        )
    )


def client_token(
    client_id: int, *, client_ids: Collection[int] | None, configuration_ids: Collection[int] | None
) -> Chosen:
    """The client's own working token: its live system-user token, else its newest live user token."""
    clients = AccessToken.client.field.related_model.objects  # onboarding's model, by the relation (no import)
    found = clients.filter(pk=client_id).values_list("status", "meta_business_id").first()
    if found is None or (client_ids is not None and client_id not in client_ids):
        raise ProxyRefused(404, "client_not_found", "No client with this id is known to this credential.")
    status, business_id = found
    if status == OFFBOARDED:
        code = selection.CLIENT_OFFBOARDED
        raise ProxyRefused(409, code, selection.MESSAGES[code], client_id=client_id)
    now = timezone.now()
    tokens = AccessToken.objects.filter(client_id=client_id, kind__in=CLIENT_TOKEN_KINDS,
                                        status__in=AccessToken.LIVE_STATUSES).defer("value")  # fmt: skip
    if configuration_ids is not None:
        tokens = tokens.filter(configuration_id__in=list(configuration_ids))
    working = [t for t in tokens.order_by("-created_at", "-pk")[:50] if not (t.ends_at() and t.ends_at() <= now)]
    if not working:
        code = selection.NEEDS_REAUTHORIZATION
        raise ProxyRefused(409, code, selection.MESSAGES[code], client_id=client_id)
    token = min(working, key=lambda t: CLIENT_TOKEN_KINDS.index(t.kind))
    value = AccessToken.objects.filter(pk=token.pk).values_list("value", flat=True).get()
    return Chosen(token.pk, client_id, value, business_id or None, None)


def asset_token(call: ProxyCall, *, client_ids, configuration_ids) -> Chosen:
    try:
        chosen = selection.working_token(
            selection.bare_meta_id(call.asset_meta_id or ""), purpose=call.purpose, scopes=call.scopes,
            client_ids=client_ids, configuration_ids=configuration_ids,
        )  # fmt: skip
    except selection.AssetUnknown:
        raise ProxyRefused(404, "asset_not_found", "No asset with this id is known to this credential.") from None
    except selection.NoWorkingToken as refusal:
        raise ProxyRefused(409, refusal.code, refusal.message, client_id=refusal.client_id,
                           reconnect_token=refusal.token, missing_scopes=refusal.missing_scopes) from None  # fmt: skip
    asset = chosen.asset
    return Chosen(
        token_id=chosen.token.pk,
        client_id=chosen.client_id,
        value=chosen.value,
        business_id=chosen.token.client.meta_business_id or None,
        ad_account_id=asset.meta_id if asset.kind == Asset.Kind.AD_ACCOUNT else None,
    )


def _scopes(chosen: Chosen) -> list[str]:
    scopes = [meta_throttle.APP, meta_throttle.token(chosen.token_id)]
    if chosen.business_id:
        scopes.append(meta_throttle.business(chosen.business_id))
    if chosen.ad_account_id:
        scopes.append(meta_throttle.ad_account(chosen.ad_account_id))
    return scopes


def forward_call(
    call: ProxyCall,
    *,
    proxy_base: str,
    client_ids: Collection[int] | None = None,
    configuration_ids: Collection[int] | None = None,
    throttle_generation: str | None = None,
) -> ProxyAnswer:
    """Pass one call to Meta with the working token; raises ``ProxyRefused`` for the portal's own refusals.

    ``throttle_generation``: the throttle's change marker as the caller read it (``meta_throttle.blocked``)."""
    try:
        outgoing = prepare(
            call.method, call.path, call.query, call.body, call.content_type, version=settings.META_GRAPH_VERSION
        )
    except ForwardRefused as refused:
        raise ProxyRefused(refused.status, refused.code, refused.message) from None
    if call.asset_meta_id:
        chosen = asset_token(call, client_ids=client_ids, configuration_ids=configuration_ids)
    elif call.client_id is not None:
        chosen = client_token(call.client_id, client_ids=client_ids, configuration_ids=configuration_ids)
    else:
        raise ProxyRefused(
            400, "asset_required",
            "Name the asset in the X-Portal-Asset header (its Meta id), or the client in X-Portal-Client.",
        )  # fmt: skip
    wait = meta_throttle.blocked(_scopes(chosen), generation=throttle_generation)
    if wait is not None:
        seconds = max(1, math.ceil(wait))
        raise ProxyRefused(
            429, "meta_throttled",
            f"Meta's usage limits for this asset or app are reached; the portal holds calls for {seconds} s.",
            headers={"Retry-After": str(seconds)}, client_id=chosen.client_id,
        )  # fmt: skip
    if connection.in_atomic_block:  # never a transaction held across a call to Meta (the house's rule)
        raise RuntimeError("The Graph proxy must not be called inside a database transaction")
    try:
        answer = proxy_client().forward(outgoing, chosen.value, proxy_base=proxy_base)
    except TransientError:
        raise ProxyRefused(
            502, "meta_unreachable", "Meta could not be reached; nothing was answered. Try again shortly.",
            client_id=chosen.client_id,
        ) from None  # fmt: skip
    blocks = meta_throttle.blocks_from(
        answer.usage, answer.errors,
        business_id=chosen.business_id, ad_account_id=chosen.ad_account_id, token_id=chosen.token_id,
    )  # fmt: skip
    meta_throttle.block(blocks)
    invalidated = False
    invalid = next((error for error in answer.errors if isinstance(error, InvalidTokenError)), None)
    if invalid is not None:
        invalidated = invalidate_token(chosen.token_id, invalid, seen_by="Graph proxy")
    return ProxyAnswer(
        status=answer.status, headers=answer.headers, content=answer.content, token_id=chosen.token_id,
        client_id=chosen.client_id, invalidated=invalidated, errors=answer.errors,
    )  # fmt: skip
