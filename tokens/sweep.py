"""Health sweep: is every token still valid, when does it end, and what does it still cover?

The beat task (``start_health_sweep``) only picks the due token ids, moves their
``next_check_at`` forward (a claim, so an overlapping sweep skips them) and enqueues
chunks of ids. A chunk (``check_tokens``) runs anywhere:

- ``debug_token`` for every token through ``client.debug_tokens`` (Graph batches of 50);
- what each token covers, one batch item per token carrying that token in the item body:
  field expansion of the asset edges with ``user_access_expire_time`` for user tokens
  (``me?fields=accounts{...},adaccounts{...},businesses{...}``), the ``assigned_*`` edges
  of the system user for system-user tokens. HTTP requests grow with tokens/50 (plus
  pages of very long edges), not with assets;
- then every change is written in a few bulk statements: queries per chunk are constant.

A chunk that runs twice, or two workers on overlapping chunks, changes nothing twice:
each token is claimed by a conditional ``UPDATE ... WHERE last_checked_at < run start``.
Only an ``InvalidTokenError`` (190/102) marks a token invalid; transient errors and rate
limits only move the next check; rate limits (and usage headers near the budget) stop the
chunk and push the remaining tokens back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection as db_connection
from django.db import transaction
from django.db.models import BinaryField, Count, F, Q
from django.db.models.functions import Cast
from django.utils import timezone

from common.bulk import bulk_set
from graph.client import AssetRef, BatchItem, numeric_id, parse_graph_datetime
from graph.errors import GraphError, InvalidTokenError, RateLimitError, TransientError

from . import crypto
from .crypto import TokenDecryptionError
from .install import granted_assets
from .models import AccessToken, Asset, AssetGrant, SweepRun, TokenEvent
from .signals import tokens_invalidated

logger = logging.getLogger(__name__)

JOB = "health_sweep"
META_BATCH = 50  # Graph batch limit: one HTTP request per 50 tokens
EDGE_PAGE = 500  # items asked per edge in field expansion; longer edges are paged
MIN_INTERVAL = timedelta(hours=1)
FAILURE_BACKOFF = timedelta(minutes=15)
RATE_LIMIT_PAUSE = timedelta(minutes=15)  # when Meta gives no estimate

USER_EDGES = {"accounts": Asset.Kind.PAGE, "adaccounts": Asset.Kind.AD_ACCOUNT, "businesses": Asset.Kind.BUSINESS}
SYSTEM_USER_EDGES = {
    "assigned_pages": Asset.Kind.PAGE,
    "assigned_ad_accounts": Asset.Kind.AD_ACCOUNT,
    "assigned_whatsapp_business_accounts": Asset.Kind.WHATSAPP_BUSINESS_ACCOUNT,
    "assigned_product_catalogs": Asset.Kind.CATALOG,
}
# Meta refuses a field a node type doesn't have (``account_id`` exists on ad accounts only).
USER_FIELDS = {
    "accounts": "id,name,user_access_expire_time",
    "adaccounts": "id,account_id,name,user_access_expire_time",
    "businesses": "id,name,user_access_expire_time",
}
SYSTEM_USER_FIELDS = {
    "assigned_pages": "id,name",
    "assigned_ad_accounts": "id,account_id,name",
    "assigned_whatsapp_business_accounts": "id,name",
    "assigned_product_catalogs": "id,name",
}


# ---------------------------------------------------------------------------------------------
# Starting a sweep


def due_tokens(now: datetime):
    return AccessToken.objects.filter(status__in=AccessToken.LIVE_STATUSES, next_check_at__lte=now)


def start_sweep(now: datetime | None = None, chunk_size: int | None = None) -> tuple[SweepRun, list[list[int]]]:
    """Record a SweepRun, claim the due tokens and split them into chunks of ids.

    The claim moves ``next_check_at`` forward by SWEEP_CLAIM_SECONDS, so the next beat does
    not pick the same tokens while these chunks are queued; a chunk that is lost lets its
    tokens come due again after that.
    """
    now = now or timezone.now()
    chunk_size = chunk_size or settings.SWEEP_CHUNK_SIZE
    claim_until = now + timedelta(seconds=settings.SWEEP_CLAIM_SECONDS)
    with transaction.atomic():
        # A run whose chunks were lost (worker killed, queue purged) would show "running" forever.
        SweepRun.objects.filter(
            job=JOB,
            status=SweepRun.Status.RUNNING,
            started_at__lt=now - timedelta(seconds=settings.SWEEP_CLAIM_SECONDS),
        ).update(
            status=SweepRun.Status.FAILED,
            finished_at=now,
            last_error="Some chunks never reported; their tokens came due again and were swept later.",
        )
        ids = list(due_tokens(now).order_by("next_check_at", "pk").values_list("pk", flat=True))
        if ids:
            # Bounded IN lists: SQLite caps bound parameters.
            for start in range(0, len(ids), 5000):
                due_tokens(now).filter(pk__in=ids[start : start + 5000]).update(next_check_at=claim_until)
        chunks = [ids[start : start + chunk_size] for start in range(0, len(ids), chunk_size)]
        run = SweepRun.objects.create(
            job=JOB,
            started_at=now,
            chunks_total=len(chunks),
            items_total=len(ids),
            status=SweepRun.Status.RUNNING if chunks else SweepRun.Status.FINISHED,
            finished_at=None if chunks else now,
        )
    return run, chunks


# ---------------------------------------------------------------------------------------------
# Checking a chunk


@dataclass
class ChunkResult:
    checked: int = 0
    skipped: int = 0  # already checked in this run by another chunk, or not live any more
    active: int = 0
    expiring: int = 0
    invalid: int = 0
    errors: int = 0
    deferred: int = 0  # pushed back by a rate limit or high usage
    assets_added: int = 0
    assets_removed: int = 0
    requests_paused: float = 0.0
    finished_run: bool = False
    events: list[TokenEvent] = field(default_factory=list, repr=False)

    def totals(self) -> dict[str, int]:
        return {
            "checked": self.checked,
            "active": self.active,
            "expiring": self.expiring,
            "invalid": self.invalid,
            "errors": self.errors,
            "deferred": self.deferred,
            "assets_added": self.assets_added,
            "assets_removed": self.assets_removed,
        }


@dataclass
class Coverage:
    """What one token reaches now, as read from Meta."""

    refs: list = field(default_factory=list)  # GrantedAsset
    expiry: dict[str, datetime | None] = field(default_factory=dict)  # meta_id -> user_access_expire_time
    kinds_read: set[str] = field(default_factory=set)  # edges read completely: their absence means removed


def claim_tokens(token_ids: Sequence[int], since: datetime, now: datetime) -> list[AccessToken]:
    """Take the tokens not yet checked since ``since``; a duplicate chunk gets none of them."""
    fresh = Q(last_checked_at__isnull=True) | Q(last_checked_at__lt=since)
    candidates = AccessToken.objects.filter(pk__in=list(token_ids), status__in=AccessToken.LIVE_STATUSES).filter(fresh)
    with transaction.atomic():
        if db_connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        # The value is read apart (ciphertexts): one unreadable ciphertext must not sink the chunk.
        tokens = list(candidates.defer("value").order_by("pk"))
        # Row locks (PostgreSQL) or the write lock of an IMMEDIATE transaction (SQLite) make
        # these rows ours; the stamp makes any later duplicate of this chunk skip them.
        AccessToken.objects.filter(pk__in=[token.pk for token in tokens]).update(last_checked_at=now)
    for token in tokens:
        token.last_checked_at = now
    return tokens


def check_tokens(
    token_ids: Sequence[int],
    *,
    run_id: int | None = None,
    client=None,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ChunkResult:
    """Check these tokens against Meta and store what changed. Safe to run twice."""
    now = now or timezone.now()
    run = SweepRun.objects.filter(pk=run_id).first() if run_id else None
    since = run.started_at if run else now
    result = ChunkResult()
    tokens = claim_tokens(token_ids, since, now)
    result.skipped = len(set(token_ids)) - len(tokens)
    if not tokens:
        _record_progress(run, result, len(token_ids))
        return result
    if client is None:
        from common.meta import graph_client

        client = graph_client()

    grants = _grants_by_token(tokens)
    stored = ciphertexts(tokens)
    token_updates: dict[int, AccessToken] = {}
    coverage: dict[int, Coverage] = {}
    stop: GraphError | None = None
    for start in range(0, len(tokens), META_BATCH):
        batch = tokens[start : start + META_BATCH]
        if stop is None:
            stop = _usage_stop(client, result, sleep)
        if stop is not None:
            for token in batch:
                _defer(token, stop, now, result)
                token_updates[token.pk] = token
            continue
        values = token_values(batch, stored)
        infos = client.debug_tokens([values[token.pk] for token in batch])
        valid = []
        for token, info in zip(batch, infos, strict=True):
            token_updates[token.pk] = token
            if isinstance(info, RateLimitError):
                stop = info
                _defer(token, info, now, result)
            elif isinstance(info, GraphError):
                _failed(token, info, now, result)
            elif not values[token.pk]:
                _failed(token, TransientError("The stored token could not be decrypted."), now, result)
            elif not info.is_valid:
                if isinstance(info.error, InvalidTokenError):
                    _invalidate(token, info.error, now, result)
                else:
                    _failed(token, info.error or TransientError("Meta said not valid, without a reason."), now, result)
            else:
                _refresh(token, info, now)
                valid.append(token)
        if valid and stop is None:
            coverage.update(_read_coverage(client, valid, values, result))

    with transaction.atomic():
        for token in token_updates.values():
            if token.status in AccessToken.LIVE_STATUSES:
                token_coverage = coverage.get(token.pk)
                token_grants = grants.get(token.pk, [])
                if token_coverage is not None:
                    _apply_coverage(token, token_grants, token_coverage, now, result)
                _schedule(token, token_grants, now, result)
        _save(list(token_updates.values()), grants, result)
        _record_progress(run, result, len(token_ids))
    return result


def ciphertexts(tokens: list[AccessToken]) -> dict[int, bytes | None]:
    """The stored (encrypted) values of a chunk's tokens, in one query."""
    raw = (
        AccessToken.objects.filter(pk__in=[token.pk for token in tokens])
        .annotate(ciphertext=Cast("value", output_field=BinaryField()))
        .values_list("pk", "ciphertext")
    )
    return {pk: bytes(ciphertext) if ciphertext is not None else None for pk, ciphertext in raw}


def token_values(tokens: list[AccessToken], stored: dict[int, bytes | None]) -> dict[int, str]:
    """Decrypted values by id, a batch at a time; "" for a value no configured key can read
    (checked as a failure, never invalid)."""
    values = dict.fromkeys((token.pk for token in tokens), "")
    for token in tokens:
        ciphertext = stored.get(token.pk)
        try:
            values[token.pk] = crypto.decrypt(ciphertext) if ciphertext is not None else ""
        except TokenDecryptionError:
            logger.warning("Token %s: stored value unreadable with the configured keys", token.pk)
    return values


@dataclass(slots=True)
class _Grant:
    """The columns of an AssetGrant (and its asset) the sweep reads and writes, without a model instance.

    Thousands of grants per chunk: model instances (and their assets) cost more CPU than the
    rest of the check. The attribute names are the model's, so ``bulk_set`` writes them.
    """

    pk: int
    token_id: int
    status: str
    user_access_expire_time: datetime | None
    scopes: list
    removed_at: datetime | None
    last_checked_at: datetime | None
    kind: str
    meta_id: str
    changed: bool = False


def _grants_by_token(tokens: list[AccessToken]) -> dict[int, list[_Grant]]:
    grants: dict[int, list[_Grant]] = {token.pk: [] for token in tokens}
    rows = AssetGrant.objects.filter(token_id__in=list(grants)).values_list(
        "pk", "token_id", "status", "user_access_expire_time", "scopes", "removed_at", "last_checked_at",
        "asset__kind", "asset__meta_id",
    )  # fmt: skip
    for row in rows:
        grant = _Grant(*row)
        grants[grant.token_id].append(grant)
    return grants


def _usage_stop(client, result: ChunkResult, sleep) -> GraphError | None:
    """Slow down as Meta's usage headers approach the budget; stop before it is spent."""
    usage = client.usage
    percent = usage.max_percent()
    if percent >= settings.SWEEP_USAGE_STOP_PERCENT:
        wait = usage.regain_access_seconds() or RATE_LIMIT_PAUSE.total_seconds()
        return RateLimitError(f"Usage at {percent:.0f}% of Meta's budget", retry_after=wait)
    if percent >= settings.SWEEP_USAGE_SLOWDOWN_PERCENT:
        # Linear from no pause at the threshold to 5 s a batch just below the stop level.
        span = max(settings.SWEEP_USAGE_STOP_PERCENT - settings.SWEEP_USAGE_SLOWDOWN_PERCENT, 1)
        pause = 5.0 * (percent - settings.SWEEP_USAGE_SLOWDOWN_PERCENT) / span
        result.requests_paused += pause
        sleep(pause)
    return None


def _event(kind: str, token: AccessToken, now: datetime, message: str, data: dict | None = None) -> TokenEvent:
    """An audit entry, created with the chunk's other writes (bulk_create in _save)."""
    return TokenEvent(
        kind=kind, client_id=token.client_id, token=token, message=message[:500], data=data or {}, created_at=now
    )


def _defer(token: AccessToken, error: GraphError, now: datetime, result: ChunkResult) -> None:
    wait = getattr(error, "retry_after", None) or RATE_LIMIT_PAUSE.total_seconds()
    token.next_check_at = now + timedelta(seconds=max(wait, 60))
    token._sweep_fields = {"next_check_at"}
    result.deferred += 1


def _failed(token: AccessToken, error: GraphError, now: datetime, result: ChunkResult) -> None:
    """A check that told us nothing: try again sooner, never touch the status."""
    token.consecutive_check_failures += 1
    delay = min(FAILURE_BACKOFF * 2 ** (token.consecutive_check_failures - 1), _interval())
    token.next_check_at = now + delay
    token._sweep_fields = {"consecutive_check_failures", "next_check_at"}
    result.errors += 1
    logger.info("Token %s check failed (%s); next try in %s", token.pk, type(error).__name__, delay)


def _invalidate(token: AccessToken, error: InvalidTokenError, now: datetime, result: ChunkResult) -> None:
    token.status = AccessToken.Status.INVALID
    token.error_code = error.code
    token.error_subcode = error.subcode
    token.status_reason = (error.message or "Meta says this token is no longer valid.")[:300]
    token.consecutive_check_failures = 0
    token.next_check_at = None
    token._sweep_fields = {
        "status",
        "error_code",
        "error_subcode",
        "status_reason",
        "consecutive_check_failures",
        "next_check_at",
    }
    result.invalid += 1
    result.events.append(
        _event(
            TokenEvent.Kind.INVALIDATED,
            token,
            now,
            f"Meta: invalid token ({error.code}/{error.subcode or '-'}) {token.status_reason}",
            {"code": error.code, "subcode": error.subcode},
        )
    )


def _refresh(token: AccessToken, info, now: datetime) -> None:
    """Take what debug_token says; only what differs is written (most days nothing but the next check)."""
    fresh = {
        "expires_at": info.expires_at,
        "data_access_expires_at": info.data_access_expires_at,
        "scopes": list(info.scopes),
        "granular_scopes": list(info.granular_scopes),
        "consecutive_check_failures": 0,
        "error_code": None,
        "error_subcode": None,
    }
    token._refreshed = True
    token._sweep_fields = set()
    for name, value in fresh.items():
        if getattr(token, name) != value:
            setattr(token, name, value)
            token._sweep_fields.add(name)


# --- what each token covers -------------------------------------------------------------------


def _coverage_item(token: AccessToken, value: str, client) -> BatchItem:
    if token.kind == AccessToken.Kind.USER:
        edges, fields, node = USER_EDGES, USER_FIELDS, "me"
    else:
        edges, fields, node = SYSTEM_USER_EDGES, SYSTEM_USER_FIELDS, token.meta_user_id or "me"
    expansion = ",".join(f"{edge}.limit({EDGE_PAGE}){{{fields[edge]}}}" for edge in edges)
    # The token rides in the item's body (a POST body), never in a URL.
    return BatchItem("GET", f"{node}?fields={expansion}", body={"access_token": value, **client.appsecret_proof(value)})


def _read_coverage(client, tokens: list[AccessToken], values: dict[int, str], result: ChunkResult):
    items = [_coverage_item(token, values[token.pk], client) for token in tokens]
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
    edges = USER_EDGES if token.kind == AccessToken.Kind.USER else SYSTEM_USER_EDGES
    node = "me" if token.kind == AccessToken.Kind.USER else token.meta_user_id
    fields = USER_FIELDS if token.kind == AccessToken.Kind.USER else SYSTEM_USER_FIELDS
    refs, expiry = [], {}
    # The expansion succeeded, so every edge asked was readable; Meta leaves an empty edge
    # out of the answer, which therefore means "none of this kind any more".
    kinds = set(edges.values()) if isinstance(answer, dict) else set()
    for edge, kind in edges.items():
        page = answer.get(edge) if isinstance(answer, dict) else None
        if not isinstance(page, dict):
            continue
        items = list(page.get("data") or [])
        after = ((page.get("paging") or {}).get("cursors") or {}).get("after")
        if (page.get("paging") or {}).get("next") and after:
            items += list(client.paginate(value, f"{node}/{edge}", {"fields": fields[edge], "after": after}))
        for item in items:
            if isinstance(item, dict) and item.get("id"):
                meta_id = numeric_id(item.get("account_id") or item["id"])
                refs.append(AssetRef(kind, meta_id, str(item.get("name") or "")))
                expiry[meta_id] = parse_graph_datetime(item.get("user_access_expire_time"))
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


def _grant_status(expires: datetime | None, now: datetime) -> str:
    if expires is None:
        return AssetGrant.Status.ACTIVE
    return AssetGrant.Status.ENDED if expires <= now else AssetGrant.Status.EXPIRING


def _apply_coverage(token, grants: list[_Grant], coverage: Coverage, now, result: ChunkResult) -> None:
    by_meta_id = {grant.meta_id: grant for grant in grants}
    wanted = {ref.meta_id: ref for ref in coverage.refs}
    added, removed = [], []
    for meta_id, ref in wanted.items():
        grant = by_meta_id.get(meta_id)
        expires = coverage.expiry.get(meta_id)
        if grant is None:
            token._new_grants = [*getattr(token, "_new_grants", []), (ref, expires)]
            added.append(meta_id)
            continue
        if grant.status in (AssetGrant.Status.REVOKED,):
            continue
        before = (grant.status, grant.user_access_expire_time, grant.scopes, grant.removed_at)
        if grant.status == AssetGrant.Status.REMOVED:
            added.append(meta_id)
            grant.removed_at = None
        grant.user_access_expire_time = expires if meta_id in coverage.expiry else grant.user_access_expire_time
        grant.status = _grant_status(grant.user_access_expire_time, now)
        grant.scopes = ref.scopes or grant.scopes
        # Unchanged grants are not written: rewriting every grant of every token each day was
        # most of the sweep's database time. The token's last_checked_at says when they were read.
        if (grant.status, grant.user_access_expire_time, grant.scopes, grant.removed_at) != before:
            grant.last_checked_at = now
            grant.changed = True
    for meta_id, grant in by_meta_id.items():
        live = grant.status in (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING, AssetGrant.Status.ENDED)
        if meta_id not in wanted and live and grant.kind in coverage.kinds_read:
            grant.status = AssetGrant.Status.REMOVED
            grant.removed_at = now
            grant.last_checked_at = now
            grant.changed = True
            removed.append(meta_id)
    if added or removed:
        result.assets_added += len(added)
        result.assets_removed += len(removed)
        result.events.append(
            _event(
                TokenEvent.Kind.ASSETS_CHANGED,
                token,
                now,
                f"Sweep: {len(added)} asset(s) added, {len(removed)} removed by the client.",
                {"added": added, "removed": removed},
            )
        )


# --- scheduling and saving --------------------------------------------------------------------


def _interval() -> timedelta:
    return timedelta(hours=settings.SWEEP_CHECK_INTERVAL_HOURS)


def next_check(token: AccessToken, grants: list[_Grant], now: datetime) -> datetime:
    """Daily by default; sooner as the nearest end approaches; spread so checks don't bunch."""
    ends = [token.ends_at()] + [
        grant.user_access_expire_time
        for grant in grants
        if grant.status in (AssetGrant.Status.ACTIVE, AssetGrant.Status.EXPIRING)
    ]
    upcoming = [end for end in ends if end and end > now]
    interval = _interval()
    if upcoming:
        interval = max(min(interval, (min(upcoming) - now) / 4), MIN_INTERVAL)
    # Deterministic spread (up to 10% earlier) by id: tokens installed together drift apart.
    spread = interval * ((token.pk * 2654435761) % 1000) / 10000
    moment = now + interval - spread
    if upcoming and min(upcoming) < moment:
        moment = min(upcoming) + timedelta(minutes=5)  # look again right after the end
    return moment


def _schedule(token: AccessToken, grants: list[_Grant], now: datetime, result: ChunkResult) -> None:
    if not getattr(token, "_refreshed", False):  # a failure or deferral already set the next check
        return
    fields = token._sweep_fields
    ends = token.ends_at()
    horizon = now + timedelta(days=max(settings.REMINDER_STAGES_DAYS))
    status = AccessToken.Status.EXPIRING if ends and ends <= horizon else AccessToken.Status.ACTIVE
    if status != token.status:
        if status == AccessToken.Status.EXPIRING:
            result.events.append(
                _event(TokenEvent.Kind.EXPIRING, token, now, f"Ends {ends:%Y-%m-%d %H:%M} UTC.")
            )
        token.status = status
        fields.add("status")
    result.checked += 1
    result.expiring += status == AccessToken.Status.EXPIRING
    result.active += status == AccessToken.Status.ACTIVE
    if token.status_reason:
        token.status_reason = ""
        fields.add("status_reason")
    token.next_check_at = next_check(token, grants, now)
    fields.add("next_check_at")


def _save(tokens: list[AccessToken], grants: dict[int, list[_Grant]], result: ChunkResult) -> None:
    # Tokens grouped by what changed: on most days every token is in one group that only
    # moves next_check_at (last_checked_at was stamped by the claim).
    groups: dict[frozenset[str], list[AccessToken]] = {}
    stamp = timezone.now()
    for token in tokens:
        fields = getattr(token, "_sweep_fields", set())
        if fields - {"next_check_at"}:
            token.updated_at = stamp
            fields = fields | {"updated_at"}
        if fields:
            groups.setdefault(frozenset(fields), []).append(token)
    for fields, members in groups.items():
        # The status condition keeps a token revoked meanwhile (deauthorize callback) revoked.
        bulk_set(members, sorted(fields), only_statuses=AccessToken.LIVE_STATUSES)
    changed = [grant for token_grants in grants.values() for grant in token_grants if grant.changed]
    grant_fields = ["status", "user_access_expire_time", "scopes", "last_checked_at", "removed_at"]
    bulk_set(changed, grant_fields, model=AssetGrant)
    new = [(token, ref, expires) for token in tokens for ref, expires in getattr(token, "_new_grants", [])]
    if new:
        _create_grants(new)
    if result.events:
        TokenEvent.objects.bulk_create(result.events, batch_size=500)
    invalid = [token.pk for token in tokens if token.status == AccessToken.Status.INVALID]
    if invalid:
        tokens_invalidated.send(sender=AccessToken, token_ids=invalid)


def _create_grants(new: list[tuple[AccessToken, object, datetime | None]]) -> None:
    """New assets and grants in three statements whatever their number."""
    wanted = {(ref.kind, ref.meta_id): (token, ref) for token, ref, _ in new}
    Asset.objects.bulk_create(
        [
            Asset(kind=kind, meta_id=meta_id, name=ref.name, client_id=token.client_id)
            for (kind, meta_id), (token, ref) in wanted.items()
        ],
        ignore_conflicts=True,
    )
    stored = {
        (asset.kind, asset.meta_id): asset
        for asset in Asset.objects.filter(meta_id__in={meta_id for _, meta_id in wanted})
    }
    now = timezone.now()
    AssetGrant.objects.bulk_create(
        [
            AssetGrant(
                token=token,
                asset=stored[(ref.kind, ref.meta_id)],
                scopes=ref.scopes,
                user_access_expire_time=expires,
                status=_grant_status(expires, now),
                last_checked_at=now,
            )
            for token, ref, expires in new
            if (ref.kind, ref.meta_id) in stored
        ],
        ignore_conflicts=True,
    )


def _record_progress(run: SweepRun | None, result: ChunkResult, asked: int) -> None:
    if run is None:
        return
    SweepRun.objects.filter(pk=run.pk).update(
        chunks_done=F("chunks_done") + 1,
        items_done=F("items_done") + asked,
        errors=F("errors") + result.errors,
    )
    result.finished_run = finish_sweep(run.pk)


def record_chunk_failure(run_id: int | None, asked: int, error: BaseException) -> None:
    """A chunk crashed: count it as done with an error so the run still finishes; its tokens come due again."""
    if not run_id:
        return
    SweepRun.objects.filter(pk=run_id).update(
        chunks_done=F("chunks_done") + 1,
        items_done=F("items_done") + asked,
        errors=F("errors") + 1,
        last_error=f"{type(error).__name__}: {error}"[:1000],
    )
    finish_sweep(run_id)


def finish_sweep(run_id: int) -> bool:
    """Close the run once every chunk reported; the totals are read from the tokens themselves."""
    run = SweepRun.objects.filter(pk=run_id, status=SweepRun.Status.RUNNING).first()
    if run is None or run.chunks_done < run.chunks_total:
        return False
    statuses = dict(
        AccessToken.objects.filter(last_checked_at__gte=run.started_at)
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
    )
    return bool(
        SweepRun.objects.filter(pk=run_id, status=SweepRun.Status.RUNNING).update(
            status=SweepRun.Status.FINISHED, finished_at=timezone.now(), totals={"statuses": statuses}
        )
    )
