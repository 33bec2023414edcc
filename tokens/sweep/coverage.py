"""Reading what each token covers from Meta's answers: one batch item per token, edge by edge as a fallback.

Only the edges the token's permissions let it read are asked (a refused edge would fail the
whole field expansion); a kind whose permission the person removed is reported as such, so its
grants are shown "permission removed", not "removed". A user token's assets that no user edge
lists (WhatsApp, Instagram, catalogs, pixels) get their ``user_access_expire_time`` from one
``?ids=`` item, so a managed-accounts migration is seen on them as on Pages.
"""

from __future__ import annotations

import logging
from datetime import datetime

from graph.edges import ACCESS_EXPIRY_FIELD, SYSTEM_USER_EDGES, USER_EDGES, AssetEdge
from graph.errors import GraphError, RateLimitError, TransientError
from graph.permissions import readable_kinds
from graph.types import AssetRef, BatchItem, graph_id, numeric_id, parse_graph_datetime

from ..install import granted_assets
from ..models import AccessToken, AssetGrant
from .state import ChunkResult, Coverage, GrantRow

logger = logging.getLogger(__name__)

EDGE_PAGE = 500  # items asked per edge in field expansion; longer edges are paged
USER_EDGE_KINDS = {edge.kind for edge in USER_EDGES}
LIVE_GRANTS = (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING, AssetGrant.Status.ENDED)


def _edges(token: AccessToken) -> tuple[tuple[AssetEdge, ...], str, dict[str, str]]:
    """The token's readable asset edges, the node they hang off, and the fields asked of each."""
    readable = readable_kinds(token.scopes)
    if token.kind == AccessToken.Kind.USER:
        edges = tuple(edge for edge in USER_EDGES if edge.kind in readable)
        return edges, "me", {edge.name: f"{edge.fields},{ACCESS_EXPIRY_FIELD}" for edge in edges}
    edges = tuple(edge for edge in SYSTEM_USER_EDGES if edge.kind in readable)
    return edges, token.meta_user_id or "me", {edge.name: edge.fields for edge in edges}


def removed_kinds(token: AccessToken) -> set[str]:
    """Asset kinds the token could read before the person removed a permission, and can't now."""
    return readable_kinds(token.missing_permissions) - readable_kinds(token.scopes)


def _body(client, value: str) -> dict[str, str]:
    # The token rides in the item's body (a POST body), never in a URL.
    return {"access_token": value, **client.appsecret_proof(value)}


def coverage_item(token: AccessToken, value: str, client) -> BatchItem | None:
    edges, node, fields = _edges(token)
    if not edges:
        return None
    expansion = ",".join(f"{edge.name}.limit({EDGE_PAGE}){{{fields[edge.name]}}}" for edge in edges)
    return BatchItem("GET", f"{node}?fields={expansion}", body=_body(client, value))


def expiry_ids(token: AccessToken, grants: list[GrantRow]) -> list[str]:
    """A user token's granted assets that no user edge lists, and that its permissions let it read."""
    if token.kind != AccessToken.Kind.USER:
        return []
    readable = readable_kinds(token.scopes)
    return sorted(
        graph_id(grant.kind, grant.meta_id)
        for grant in grants
        if grant.kind not in USER_EDGE_KINDS and grant.kind in readable and grant.status in LIVE_GRANTS
    )


def _ask(client, items: list[BatchItem], secrets: list[str]) -> list:
    return client.batch(client.app_token, items, secrets=secrets) if items else []


def read_coverage(client, tokens: list[AccessToken], values: dict[int, str], grants, result: ChunkResult):
    """What each token covers now: {token id: Coverage}, and {token id: RateLimitError} for the
    tokens whose business Meta throttled (nothing learnt about them; the chunk defers them)."""
    secrets = [values[token.pk] for token in tokens]
    asked = [(token, coverage_item(token, values[token.pk], client)) for token in tokens]
    answers = iter(_ask(client, [item for _, item in asked if item is not None], secrets))
    by_ids = [(token, expiry_ids(token, grants.get(token.pk, []))) for token in tokens]
    by_ids = [(token, ids) for token, ids in by_ids if ids]
    id_items = [
        BatchItem("GET", f"?ids={','.join(ids)}&fields={ACCESS_EXPIRY_FIELD}", body=_body(client, values[token.pk]))
        for token, ids in by_ids
    ]
    id_answers = _ask(client, id_items, secrets)
    extra_expiry = {token.pk: answer for (token, _), answer in zip(by_ids, id_answers, strict=True)}

    coverage: dict[int, Coverage] = {}
    throttled: dict[int, RateLimitError] = {}
    for token, item in asked:
        answer = next(answers) if item is not None else {}
        extra = extra_expiry.get(token.pk)
        limited = next((o for o in (answer, extra) if isinstance(o, RateLimitError)), None)
        if limited is not None:
            throttled[token.pk] = limited
            continue
        if isinstance(answer, TransientError):
            continue  # nothing learnt: membership stays as it is
        try:
            token_coverage = _read_one(client, token, values[token.pk], answer)
        except RateLimitError as error:
            throttled[token.pk] = error
            continue
        except GraphError as error:
            logger.info("Token %s coverage not read (%s)", token.pk, type(error).__name__)
            result.errors += not isinstance(error, TransientError)
            continue
        if isinstance(extra, dict):
            for key, node in extra.items():
                if isinstance(node, dict):
                    token_coverage.expiry[numeric_id(key)] = parse_graph_datetime(node.get(ACCESS_EXPIRY_FIELD))
        coverage[token.pk] = token_coverage
    return coverage, throttled


def _read_one(client, token: AccessToken, value: str, answer) -> Coverage:
    if isinstance(answer, GraphError):
        # The expansion was refused all the same: read edge by edge.
        return _coverage_edge_by_edge(client, token, value)
    return _coverage_from_expansion(client, token, value, answer)


def _coverage_from_expansion(client, token: AccessToken, value: str, answer: dict) -> Coverage:
    edges, node, fields = _edges(token)
    refs, expiry = [], {}
    # The expansion succeeded, so every edge asked was readable; Meta leaves an empty edge
    # out of the answer, which therefore means "none of this kind any more".
    kinds = {edge.kind for edge in edges} if isinstance(answer, dict) else set()
    for edge in edges:
        page = answer.get(edge.name) if isinstance(answer, dict) else None
        if not isinstance(page, dict):
            continue
        items = list(page.get("data") or [])
        after = ((page.get("paging") or {}).get("cursors") or {}).get("after")
        if (page.get("paging") or {}).get("next") and after:
            items += list(client.paginate(value, f"{node}/{edge.name}", {"fields": fields[edge.name], "after": after}))
        for item in items:
            if isinstance(item, dict) and item.get("id"):
                meta_id = numeric_id(item.get("account_id") or item["id"])
                refs.append(AssetRef(edge.kind, meta_id, str(item.get("name") or "")))
                expiry[meta_id] = parse_graph_datetime(item.get(ACCESS_EXPIRY_FIELD))
    return _coverage(token, refs, expiry, kinds)


def _coverage_edge_by_edge(client, token: AccessToken, value: str) -> Coverage:
    system_user_id = token.meta_user_id if token.kind != AccessToken.Kind.USER else None
    refs = client.list_assets(value, system_user_id=system_user_id)
    expiry: dict[str, datetime | None] = {}
    if token.kind == AccessToken.Kind.USER and refs:
        asked = {ref.graph_id: ref.meta_id for ref in refs}
        for key, expires in client.asset_access_expiry(value, list(asked)).items():
            if isinstance(expires, GraphError):
                raise expires
            expiry[asked[key]] = expires
    # list_assets skips refused edges, so only the kinds it returned are known complete.
    return _coverage(token, refs, expiry, {ref.kind for ref in refs})


def _coverage(token: AccessToken, refs, expiry, kinds_read: set[str]) -> Coverage:
    # Edges are the truth for the kinds they list (Meta has changed what granular_scopes
    # lists before); granular_scopes speak for the kinds no edge was read for.
    scoped = granted_assets(token.granular_scopes, [])
    from_scopes = [g for g in scoped if g.kind not in kinds_read]
    from_edges = granted_assets([], refs)
    scopes_by_id = {g.meta_id: list(g.scopes) for g in scoped}
    for granted in from_edges:
        granted.scopes = scopes_by_id.get(granted.meta_id, [])
    return Coverage(
        refs=from_edges + from_scopes,
        expiry=expiry,
        kinds_read=kinds_read,
        permission_removed=removed_kinds(token) - kinds_read,
    )
