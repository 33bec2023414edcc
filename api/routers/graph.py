"""The Graph proxy (scope graph:proxy): a call to Meta made with the working token, which stays in the portal.

Thin: read the request as it came, let ``tokens.proxy.forward_call`` do everything, answer Meta's
status, headers and body as they are (D47).
"""

import re

from django.http import HttpResponse
from django.views.decorators.debug import sensitive_variables
from ninja import Router

from common import meta_throttle
from tokens import proxy, selection

from .. import audit
from ..auth import allowed_client_ids, allowed_configuration_ids, require_scope
from ..errors import ApiError
from ..links import reconnect_link
from ..models import Scope

router = Router(tags=["graph"])

ASSET_HEADER = "X-Portal-Asset"
CLIENT_HEADER = "X-Portal-Client"
PURPOSE_HEADER = "X-Portal-Purpose"
METHODS = ["GET", "POST", "DELETE"]

DESCRIPTION = f"""Meta's Graph API through the portal. Call it as you would `https://graph.facebook.com/`
(with or without the version in the path: the portal's Graph version by default), without
`access_token` or `appsecret_proof`: name the asset in `{ASSET_HEADER}` (its Meta id; an ad account
as `act_<n>` or `<n>`) and the portal uses the token that works for it now (the token endpoint's
choice; `{PURPOSE_HEADER}` picks a granular system-user token by purpose), or name the client in
`{CLIENT_HEADER}` (the portal's client id) for the client's own token.

The answer is Meta's: its status, body and usage headers (`X-App-Usage`,
`X-Business-Use-Case-Usage`, `X-Ad-Account-Usage`) unchanged. The one exception: a body carrying an
access token (paging links, Page tokens) has it removed, `paging` links point at this proxy, and the
answer carries `X-Portal-Redacted: access_token`. Batch requests (`batch=[...]`) pass through and
count per item.

The portal's own answers are JSON errors: 404 for an asset or client this credential may not see,
409 when no token works (with the reconnect link), 429 with `Retry-After` while Meta's usage limits
for the app, the business, the ad account or the token are reached, 502 when Meta could not be
reached, 400/403 for what cannot be sent (a token of your own, token-minting endpoints)."""

RESPONSES = {"default": {"description": "Meta's answer (any status, its body as it is), or the portal's JSON error."}}


def _client_id(request) -> int | None:
    raw = request.headers.get(CLIENT_HEADER)
    if raw is None:
        return None
    if not raw.strip().isdigit() or len(raw.strip()) > 18:
        raise ApiError(400, "bad_client", f"{CLIENT_HEADER} is the portal's client id, a number.")
    return int(raw.strip())


@sensitive_variables("answer")
def _forward(request, graph_path: str) -> HttpResponse:
    credential = request.auth
    asset = (request.headers.get(ASSET_HEADER) or "").strip() or None
    if asset is not None and not re.fullmatch(selection.META_ID_PATTERN, asset):
        raise ApiError(400, "bad_asset", f"{ASSET_HEADER} is the asset's Meta id: digits, an ad account as act_<n>.")
    client_id = _client_id(request)
    audit.about(request, client_id=client_id, asset_meta_id=asset)
    call = proxy.ProxyCall(
        method=request.method,
        path=graph_path,
        query=[(name, value) for name, values in request.GET.lists() for value in values],
        body=request.body if request.method != "GET" else None,
        content_type=request.META.get("CONTENT_TYPE") if request.body else None,  # with its boundary, if any
        asset_meta_id=asset,
        client_id=client_id,
        purpose=(request.headers.get(PURPOSE_HEADER) or "").strip()[:200] or None,
    )
    try:
        answer = proxy.forward_call(
            call,
            proxy_base=request.build_absolute_uri("/api/v1/graph/"),
            client_ids=allowed_client_ids(credential),
            configuration_ids=allowed_configuration_ids(credential),
            throttle_generation=getattr(request, "api_markers", {}).get(meta_throttle.CHANGED),
        )
    except proxy.ProxyRefused as refused:
        if refused.client_id is not None:
            audit.about(request, client_id=refused.client_id)
        extra = dict(refused.extra)
        if "reconnect_token" in extra:
            token = extra.pop("reconnect_token")
            extra["reconnect_url"] = reconnect_link(token) if token is not None else None
        if not extra.get("missing_scopes"):
            extra.pop("missing_scopes", None)
        raise ApiError(refused.status, refused.code, refused.message, headers=refused.headers, **extra) from None
    audit.about(request, client_id=answer.client_id)
    if answer.status >= 400:
        request.api_outcome = f"meta_{answer.status}"
    response = HttpResponse(answer.content, status=answer.status)
    for name, value in answer.headers.items():
        response[name] = value
    return response


@router.api_operation(METHODS, "", auth=require_scope(Scope.GRAPH_PROXY), url_name="graph_proxy_root",
                      summary="Meta's Graph API root (batches, ?ids=) through the portal", description=DESCRIPTION,
                      openapi_extra={"responses": RESPONSES})  # fmt: skip
def graph_proxy_root(request):
    return _forward(request, "")


@router.api_operation(METHODS, "{path:graph_path}", auth=require_scope(Scope.GRAPH_PROXY), url_name="graph_proxy",
                      summary="Meta's Graph API through the portal", description=DESCRIPTION,
                      openapi_extra={"responses": RESPONSES})  # fmt: skip
def graph_proxy(request, graph_path: str):
    return _forward(request, graph_path)
