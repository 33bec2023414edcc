"""Reading what each token covers from Meta's answers: one batch item per token, edge by edge as a fallback."""

from __future__ import annotations

import logging
from datetime import datetime

from graph.edges import ACCESS_EXPIRY_FIELD, SYSTEM_USER_EDGES, USER_EDGES, AssetEdge
from graph.errors import GraphError, RateLimitError, TransientError
from graph.types import AssetRef, BatchItem, numeric_id, parse_graph_datetime

from ..install import granted_assets
from ..models import AccessToken
from .state import ChunkResult, Coverage

logger = logging.getLogger(__name__)

EDGE_PAGE = 500  # items asked per edge in field expansion; longer edges are paged


def _edges(token: AccessToken) -> tuple[tuple[AssetEdge, ...], str, dict[str, str]]:
    """The token's asset edges, the node they hang off, and the fields asked of each."""
    if token.kind == AccessToken.Kind.USER:
        return USER_EDGES, "me", {edge.name: f"{edge.fields},{ACCESS_EXPIRY_FIELD}" for edge in USER_EDGES}
    return SYSTEM_USER_EDGES, token.meta_user_id or "me", {edge.name: edge.fields for edge in SYSTEM_USER_EDGES}


def coverage_item(token: AccessToken, value: str, client) -> BatchItem:
    edges, node, fields = _edges(token)
    expansion = ",".join(f"{edge.name}.limit({EDGE_PAGE}){{{fields[edge.name]}}}" for edge in edges)
    # The token rides in the item's body (a POST body), never in a URL.
    return BatchItem("GET", f"{node}?fields={expansion}", body={"access_token": value, **client.appsecret_proof(value)})


def read_coverage(client, tokens: list[AccessToken], values: dict[int, str], result: ChunkResult):
    items = [coverage_item(token, values[token.pk], client) for token in tokens]
    answers = client.batch(client.app_token, items, secrets=[values[token.pk] for token in tokens])
    coverage: dict[int, Coverage] = {}
    for token, answer in zip(tokens, answers, strict=True):
        value = values[token.pk]
        if isinstance(answer, (TransientError, RateLimitError)):
            continue  # nothing learnt: membership stays as it is
        try:
            if isinstance(answer, GraphError):
                # The expansion was refused (a missing permission fails it whole): read edge by edge.
                coverage[token.pk] = _coverage_edge_by_edge(client, token, value)
            else:
                coverage[token.pk] = _coverage_from_expansion(client, token, value, answer)
        except (TransientError, RateLimitError) as error:
            logger.info("Token %s coverage not read (%s)", token.pk, type(error).__name__)
        except GraphError as error:
            logger.info("Token %s coverage not read (%s)", token.pk, type(error).__name__)
            result.errors += 1
    return coverage


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
        for graph_id, expires in client.asset_access_expiry(value, list(asked)).items():
            if isinstance(expires, GraphError):
                raise expires
            expiry[asked[graph_id]] = expires
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
    return Coverage(refs=from_edges + from_scopes, expiry=expiry, kinds_read=kinds_read)
